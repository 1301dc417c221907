// Real mounts for integration tests: each DmemfsMount runs the real `bin/dmemfs mount` on a fresh temporary
// directory and is torn down by stop(). Anything a failing test leaves behind (a daemon, a mount) is ended
// when the test process exits.

import { ChildProcess, spawn, spawnSync } from 'child_process'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'

export const ROOT = path.resolve(__dirname, '..', '..', '..')
export const BIN = path.join(ROOT, 'bin', 'dmemfs')
const MOUNT_TIMEOUT_MS = 15000
const STOP_TIMEOUT_MS = 10000

const live = new Set<DmemfsMount>()
// Every mount point a test mounted on: whatever is still mounted there after the test is unmounted.
const mountpoints = new Set<string>()
const tempDirs = new Set<string>()

export interface ShResult {
  status: number
  stdout: string
  stderr: string
}

/** Runs a command with bash in `cwd`; never throws. */
export function sh (cmd: string, cwd = ROOT, input?: string): ShResult {
  const r = spawnSync('bash', ['-c', cmd], { cwd, encoding: 'utf8', input, timeout: 120000 })
  return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' }
}

/** Runs a command that must succeed; throws with its stderr otherwise. */
export function ok (cmd: string, cwd = ROOT): string {
  const r = sh(cmd, cwd)
  if (r.status !== 0) throw new Error(`'${cmd}' exited ${r.status}: ${r.stderr.trim()}`)
  return r.stdout
}

export function tempDir (prefix = 'dmemfs-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  tempDirs.add(dir)
  return dir
}

export function isMounted (mnt: string): boolean {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some(l => l.split(' ')[4] === mnt)
}

/** `npm run test:ts-only` (DMEMFS_TEST_NATIVE=0) runs every mount with native=0, so the whole suite also
 *  proves the TypeScript data path; a test that names `native=` itself keeps its choice. */
export function withNativeChoice (options: string): string {
  if (process.env.DMEMFS_TEST_NATIVE !== '0' || /(^|,)native=/.test(options)) return options
  return options ? options + ',native=0' : 'native=0'
}

export class DmemfsMount {
  stdout = ''
  stderr = ''
  exitCode: number | null = null
  private readonly exited: Promise<number | null>

  private constructor (readonly mnt: string, readonly proc: ChildProcess) {
    proc.stdout!.on('data', (d: Buffer) => { this.stdout += d.toString() })
    proc.stderr!.on('data', (d: Buffer) => { this.stderr += d.toString() })
    proc.on('exit', code => { this.exitCode = code })
    // 'close', not 'exit': the daemon's last lines may still be in its pipes when it has exited.
    this.exited = new Promise(resolve => proc.on('close', code => {
      this.exitCode = code
      resolve(code)
    }))
  }

  /** Mounts dmemfs with `-o options` on `mnt` (a new temporary directory by default). */
  static async start (
    options = '', mnt = tempDir(), spawnOpts: { detached?: boolean, env?: NodeJS.ProcessEnv } = {}
  ): Promise<DmemfsMount> {
    options = withNativeChoice(options)
    const args = ['mount', mnt, ...(options ? ['-o', options] : [])]
    // No LD_LIBRARY_PATH from the caller: the binding must find libfuse by itself.
    const env = { ...process.env, LD_LIBRARY_PATH: undefined, ...spawnOpts.env }
    const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOpts, env })
    const m = new DmemfsMount(mnt, proc)
    live.add(m)
    mountpoints.add(mnt)
    await m.waitMounted()
    return m
  }

  private async waitMounted (): Promise<void> {
    const deadline = Date.now() + MOUNT_TIMEOUT_MS
    while (!this.stdout.includes('dmemfs: mounted')) {
      if (this.exitCode !== null) {
        live.delete(this)
        throw new Error(`dmemfs mount exited ${this.exitCode}: ${this.stderr.trim()}`)
      }
      if (Date.now() > deadline) throw new Error(`dmemfs did not mount within ${MOUNT_TIMEOUT_MS} ms`)
      await sleep(20)
    }
  }

  path (name: string): string {
    return path.join(this.mnt, name)
  }

  sh (cmd: string): ShResult {
    return sh(cmd, this.mnt)
  }

  ok (cmd: string): string {
    return ok(cmd, this.mnt)
  }

  /** `.dmem/stat` as a map of numbers. */
  stat (): Record<string, number> {
    return parseStat(fs.readFileSync(this.path('.dmem/stat'), 'utf8'))
  }

  /** Sends a signal and waits for the daemon to exit; returns its exit code. */
  async stop (signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.exitCode === null) this.proc.kill(signal)
    const code = await Promise.race([this.exited, sleep(STOP_TIMEOUT_MS).then(() => 'timeout' as const)])
    if (code === 'timeout') {
      forceCleanup(this)
      throw new Error(`dmemfs did not exit within ${STOP_TIMEOUT_MS} ms of ${signal}`)
    }
    live.delete(this)
    return code
  }

  waitExit (): Promise<number | null> {
    return this.exited
  }
}

export function parseStat (text: string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const line of text.trim().split('\n')) {
    const [name, value] = line.split(': ')
    out[name] = Number(value)
  }
  return out
}

export function sleep (ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}

function forceCleanup (m: DmemfsMount): void {
  if (m.exitCode === null) m.proc.kill('SIGKILL')
  if (isMounted(m.mnt)) spawnSync('umount', ['-l', m.mnt])
  live.delete(m)
}

/** Stops every daemon still running and unmounts anything left mounted; call from an `after` hook so a
 *  failing test leaves nothing behind. */
export async function stopAll (): Promise<void> {
  for (const m of [...live]) await m.stop().catch(() => forceCleanup(m))
  unmountLeftovers()
}

function unmountLeftovers (): void {
  for (const mnt of mountpoints) {
    if (isMounted(mnt)) spawnSync('umount', ['-l', mnt])
  }
}

process.on('exit', () => {
  for (const m of [...live]) forceCleanup(m)
  unmountLeftovers()
  for (const dir of tempDirs) {
    try {
      if (!isMounted(dir)) fs.rmSync(dir, { recursive: true, force: true })
    } catch {
      // a directory still in use is left for the OS to clean
    }
  }
})
