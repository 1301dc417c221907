// The filesystems the benchmark compares, mounted on temporary directories, and a teardown that ends every
// daemon and unmounts every mount it made, on success, on failure, on SIGINT/SIGTERM and at exit.

import { ChildProcess, spawn, spawnSync } from 'child_process'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'

export const ROOT = path.resolve(__dirname, '..', '..')
const BIN = path.join(ROOT, 'bin', 'dmemfs')
const BASELINE = path.join(__dirname, 'baseline.js')
// The work directory is TAG + a unique suffix; every mount point and daemon of a run has it in its path and
// every idle process in its argv[0], so that a run's leftovers can be told apart (see bench.test.ts).
const TAG = 'dmemfs-bench-'
const MOUNT_TIMEOUT_MS = 30000
const STOP_TIMEOUT_MS = 15000

// dmemfs-ts: dmemfs with native=0, every request through TypeScript (what the native data path is measured against).
export type SystemName = 'dmemfs' | 'dmemfs-ts' | 'tuned' | 'naive' | 'tmpfs'

export interface System {
  name: SystemName
  mnt: string
  proc: ChildProcess | null // the FUSE daemon; null for tmpfs
  log: string // the daemon's stdout and stderr
}

const daemons = new Set<ChildProcess>()
const mounts = new Set<string>()
const groups = new Set<number>() // process groups of idle processes
let workDir = ''

/** The benchmark's temporary directory, made on first use; removed by teardown. */
export function work (): string {
  workDir ||= fs.mkdtempSync(path.join(os.tmpdir(), TAG))
  return workDir
}

export function newDir (name: string): string {
  const dir = path.join(work(), name)
  fs.mkdirSync(dir)
  return dir
}

export function isMounted (mnt: string): boolean {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some(l => l.split(' ')[4] === mnt)
}

export function sleep (ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}

/** Runs a command to completion; throws with its stderr if it fails. Returns its stdout. */
export function run (cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, encoding: 'utf8', maxBuffer: 64 << 20 })
  if (r.error) throw r.error
  if (r.status !== 0) {
    const why = r.signal ? `signal ${r.signal}` : `exit ${r.status}`
    throw new Error(`'${[cmd, ...args].join(' ')}' failed (${why}): ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`)
  }
  return r.stdout
}

/** Spawns a daemon with its output going to a file (not a pipe: a pipe nobody drains while the benchmark
 *  sits in spawnSync could stall the daemon) and waits for `ready` in it; returns the milliseconds taken. */
async function startDaemon (cmd: string, args: string[], env: NodeJS.ProcessEnv, log: string, ready: string,
  onSpawn: (proc: ChildProcess) => void): Promise<number> {
  const fd = fs.openSync(log, 'w')
  const t0 = performance.now()
  const proc = spawn(cmd, args, { stdio: ['ignore', fd, fd], env })
  fs.closeSync(fd)
  daemons.add(proc)
  onSpawn(proc)
  for (;;) {
    if (fs.readFileSync(log, 'utf8').includes(ready)) return performance.now() - t0
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`${path.basename(cmd)} exited before mounting: ${fs.readFileSync(log, 'utf8').trim()}`)
    }
    if (performance.now() - t0 > MOUNT_TIMEOUT_MS) throw new Error(`${path.basename(cmd)} did not mount within ${MOUNT_TIMEOUT_MS} ms`)
    await sleep(2)
  }
}

/** Mounts one system on a new directory, with `options` as -o for dmemfs and tmpfs, and as the baseline's
 *  third argument for naive and tuned. For dmemfs, `mountMs` is the time from spawn to "mounted". */
export async function mount (name: SystemName, options = '', label: string = name): Promise<System & { mountMs: number }> {
  const mnt = newDir(`mnt-${label}`)
  const log = path.join(work(), `${label}.log`)
  mounts.add(mnt)
  const sys: System = { name, mnt, proc: null, log }
  let mountMs = 0
  if (name === 'tmpfs') {
    run('mount', ['-t', 'tmpfs', ...(options ? ['-o', options] : []), TAG + label, mnt])
  } else if (name === 'dmemfs' || name === 'dmemfs-ts') {
    // As the tests do: no LD_LIBRARY_PATH from the caller, bin/dmemfs sets what it needs.
    const env = { ...process.env, LD_LIBRARY_PATH: undefined }
    const all = [options, name === 'dmemfs-ts' ? 'native=0' : ''].filter(o => o).join(',')
    const args = ['mount', mnt, ...(all ? ['-o', all] : [])]
    mountMs = await startDaemon(BIN, args, env, log, 'dmemfs: mounted', p => { sys.proc = p })
  } else {
    // The baseline loads fuse-native as dmemfs does; the prebuilt fallback binding (see bin/dmemfs) needs .lib/.
    const lib = path.join(ROOT, '.lib')
    const env = { ...process.env, LD_LIBRARY_PATH: fs.existsSync(lib) ? lib : undefined }
    const args = [BASELINE, mnt, name, ...(options ? [options] : [])]
    mountMs = await startDaemon(process.execPath, args, env, log, 'baseline: mounted', p => { sys.proc = p })
  }
  return { ...sys, mountMs }
}

function exited (proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve()
  return new Promise(resolve => proc.once('exit', () => resolve()))
}

/** Stops a system: its daemon unmounts on SIGTERM and exits; tmpfs is unmounted. Anything left (a daemon
 *  that hangs, a mount that stays) is killed and lazily unmounted. */
export async function unmount (sys: System): Promise<void> {
  if (sys.proc) {
    const proc = sys.proc
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
    const done = await Promise.race([exited(proc).then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)])
    if (!done) proc.kill('SIGKILL')
    daemons.delete(proc)
  }
  if (isMounted(sys.mnt)) {
    if (spawnSync('umount', [sys.mnt]).status !== 0) spawnSync('umount', ['-l', sys.mnt])
  }
  mounts.delete(sys.mnt)
  fs.rmSync(sys.mnt, { recursive: true, force: true })
}

/** Starts `count` idle processes (sleep, named after the work directory); resolves once all exist. */
export async function startIdle (count: number): Promise<number> {
  const name = path.basename(work()) + '-idle'
  const script = `for i in $(seq ${count}); do (exec -a ${name} sleep 3600) & done; echo ready; wait`
  const proc = spawn('bash', ['-c', script], { detached: true, stdio: ['ignore', 'pipe', 'ignore'] })
  groups.add(proc.pid!)
  let out = ''
  proc.stdout!.on('data', (d: Buffer) => { out += d.toString() })
  while (!out.includes('ready')) {
    if (proc.exitCode !== null) throw new Error('could not start the idle processes')
    await sleep(10)
  }
  return proc.pid!
}

export function stopIdle (group: number): void {
  try {
    process.kill(-group, 'SIGKILL')
  } catch {
    // already gone
  }
  groups.delete(group)
}

/** Ends everything the benchmark started, synchronously (usable from an 'exit' handler). */
export function teardownSync (): void {
  for (const g of [...groups]) stopIdle(g)
  for (const proc of daemons) {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
  }
  daemons.clear()
  for (const mnt of mounts) {
    if (isMounted(mnt)) spawnSync('umount', ['-l', mnt])
  }
  mounts.clear()
  if (workDir && !fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(workDir)) {
    fs.rmSync(workDir, { recursive: true, force: true })
    workDir = ''
  }
}
