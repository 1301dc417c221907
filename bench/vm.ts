// A QEMU guest whose RAM is a file: what `npm run test:vm` and the benchmark's `vm` phase boot. The assets
// (QEMU, a Debian kernel, a busybox initramfs) come from Debian's packages through scripts/vm-assets.sh into
// .cache/vm/. The guest's /init prints what it sees (`vm: ...` lines) and then MARKER on the serial console.
// Every guest started here is killed when this process exits, whatever happened.

import { ChildProcess, spawn, spawnSync } from 'child_process'
import * as fs from 'fs'
import * as path from 'path'
import { stats } from './report'

export const ROOT = path.resolve(__dirname, '..', '..')
export const VM_CACHE = process.env.DMEMFS_VM_CACHE ?? path.join(ROOT, '.cache', 'vm')
const ASSETS_SCRIPT = path.join(ROOT, 'scripts', 'vm-assets.sh')
/** What the guest's /init prints once user space runs (scripts/vm-assets.sh writes it). */
export const MARKER = 'DMEMFS-VM-READY'
export const GUEST_MIB = 256

export interface VmAssets {
  qemu: string
  kernel: string
  initrd: string
}

/** The cached assets, or why they are not usable (one line). */
export function vmAssets (): VmAssets | string {
  const r = spawnSync(ASSETS_SCRIPT, ['--check'], { encoding: 'utf8', env: { ...process.env, DMEMFS_VM_CACHE: VM_CACHE } })
  if (r.status !== 0) return (r.stderr || `${ASSETS_SCRIPT} --check failed`).trim()
  return {
    qemu: fs.readFileSync(path.join(VM_CACHE, 'qemu'), 'utf8').trim(),
    kernel: path.join(VM_CACHE, 'vmlinuz'),
    initrd: path.join(VM_CACHE, 'initrd.img')
  }
}

/** Fetches the assets if they are missing (as root, about a minute the first time) and returns them. */
export function fetchVmAssets (): VmAssets {
  const r = spawnSync(ASSETS_SCRIPT, [], { encoding: 'utf8', timeout: 600000, env: { ...process.env, DMEMFS_VM_CACHE: VM_CACHE } })
  if (r.status !== 0) throw new Error(`${ASSETS_SCRIPT} failed: ${(r.stderr || r.error?.message || '').trim()}`)
  const assets = vmAssets()
  if (typeof assets === 'string') throw new Error(assets)
  return assets
}

export interface GuestOptions {
  memPath: string // the file that backs guest RAM (made by QEMU, GUEST_MIB long)
  poweroff?: boolean // the guest powers off after the marker (default: it waits)
}

/** The QEMU command line: RAM is a shared mapping of `memPath`, TCG (a KVM guest hangs at boot on the
 *  project's machines), the serial console on stdout, no network (its option ROM only slows the boot). */
export function qemuArgs (assets: VmAssets, opts: GuestOptions): string[] {
  return [
    '-m', String(GUEST_MIB),
    '-object', `memory-backend-file,id=ram,size=${GUEST_MIB}M,mem-path=${opts.memPath},share=on`,
    '-machine', 'q35,memory-backend=ram',
    '-accel', 'tcg',
    '-nographic', '-no-reboot', '-nic', 'none',
    '-kernel', assets.kernel, '-initrd', assets.initrd,
    '-append', `console=ttyS0 quiet${opts.poweroff ? ' vm.then=poweroff' : ''}`
  ]
}

export interface GuestExit {
  code: number | null
  signal: NodeJS.Signals | null
}

const live = new Set<ChildProcess>()

/** A running QEMU, its console output so far and how it ended. */
export class Guest {
  output = ''
  exit: GuestExit | null = null
  readonly exited: Promise<GuestExit>
  readonly startedAt = performance.now()

  constructor (readonly proc: ChildProcess) {
    live.add(proc)
    const take = (d: Buffer) => { this.output += d.toString() }
    proc.stdout!.on('data', take)
    proc.stderr!.on('data', take)
    this.exited = new Promise(resolve => proc.on('exit', (code, signal) => {
      live.delete(proc)
      this.exit = { code, signal }
      resolve(this.exit)
    }))
  }

  get pid (): number {
    return this.proc.pid!
  }

  /** Milliseconds from spawn until the console shows `text`; throws if QEMU exits first or time runs out. */
  async waitFor (text: string, timeoutMs: number): Promise<number> {
    const deadline = this.startedAt + timeoutMs
    for (;;) {
      if (this.output.includes(text)) return performance.now() - this.startedAt
      if (this.exit) throw new Error(`QEMU exited (${describeExit(this.exit)}) before printing ${text}:\n${this.tail()}`)
      if (performance.now() > deadline) throw new Error(`no ${text} from the guest within ${timeoutMs} ms:\n${this.tail()}`)
      await new Promise(resolve => setTimeout(resolve, 20))
    }
  }

  /** How QEMU ended, waiting at most `timeoutMs`; null if it still runs. */
  async waitExit (timeoutMs: number): Promise<GuestExit | null> {
    const timer = new Promise<null>(resolve => setTimeout(() => resolve(null), timeoutMs).unref())
    return Promise.race([this.exited, timer])
  }

  /** Kills QEMU (SIGKILL) and waits for it. */
  async kill (): Promise<GuestExit> {
    if (!this.exit) this.proc.kill('SIGKILL')
    return this.exited
  }

  /** The last lines of the console, for error messages. */
  tail (lines = 15): string {
    return this.output.split('\n').slice(-lines).join('\n')
  }

  /** The guest's own `vm: ...` lines. */
  guestLines (): string[] {
    return this.output.split(/\r?\n/).filter(l => l.startsWith('vm: ')).map(l => l.slice(4))
  }
}

export function describeExit (e: GuestExit): string {
  return e.signal ? `killed by ${e.signal}` : `exit ${e.code}`
}

export function startGuest (assets: VmAssets, opts: GuestOptions): Guest {
  // Its own process group is not needed: QEMU starts no helper processes with these options.
  return new Guest(spawn(assets.qemu, qemuArgs(assets, opts), { stdio: ['ignore', 'pipe', 'pipe'] }))
}

/** Kills every guest still running (synchronous, for 'exit' handlers and teardown). */
export function killGuests (): void {
  for (const proc of live) proc.kill('SIGKILL')
}

process.on('exit', killGuests)

/** The mapping of `file` in process `pid`, from /proc/PID/maps. */
export interface Mapping {
  start: bigint
  end: bigint
  perms: string
  offset: bigint
}

export function mappingOf (pid: number, file: string): Mapping | null {
  for (const line of fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) \S+ \d+\s+(.*)$/.exec(line)
    if (m && m[5] === file) return { start: BigInt('0x' + m[1]), end: BigInt('0x' + m[2]), perms: m[3], offset: BigInt('0x' + m[4]) }
  }
  return null
}

// ---- the benchmark's figure ----

export interface VmFigure {
  label: string
  unit: 's'
  dmemfs: number[] // seconds from spawning QEMU to the guest's marker, RAM on dmemfs
  tmpfs: number[] // the same, RAM on tmpfs
}

/** Boots the guest `reps` times with its RAM on each of the two mounts in turn (the order alternating),
 *  a fresh file each time, and returns the seconds each boot took to reach the marker. */
export async function measureBoot (assets: VmAssets, mounts: { dmemfs: string, tmpfs: string }, reps: number,
  progress: (line: string) => void): Promise<VmFigure> {
  const fig: VmFigure = { label: `guest boot to user space (QEMU TCG, ${GUEST_MIB} MiB RAM on the mount)`, unit: 's', dmemfs: [], tmpfs: [] }
  for (let rep = 0; rep < reps; rep++) {
    const order = rep % 2 === 0 ? ['dmemfs', 'tmpfs'] as const : ['tmpfs', 'dmemfs'] as const
    for (const sys of order) {
      progress(`vm boot ${rep + 1}/${reps}: RAM on ${sys}`)
      fig[sys].push(await bootOnce(assets, path.join(mounts[sys], 'vm0')) / 1000)
    }
  }
  return fig
}

const BOOT_TIMEOUT_MS = 180000

async function bootOnce (assets: VmAssets, memPath: string): Promise<number> {
  fs.rmSync(memPath, { force: true })
  const guest = startGuest(assets, { memPath, poweroff: true })
  try {
    const ms = await guest.waitFor(MARKER, BOOT_TIMEOUT_MS)
    const end = await guest.waitExit(30000)
    if (!end || end.code !== 0) throw new Error(`QEMU did not power off cleanly (${end ? describeExit(end) : 'still running'}):\n${guest.tail()}`)
    return ms
  } finally {
    await guest.kill()
    fs.rmSync(memPath, { force: true })
  }
}

function num (x: number): string {
  return x >= 10 ? x.toFixed(1) : x.toFixed(2)
}

/** One table: median (min–max) on each mount and the ratio of medians. */
export function renderVm (f: VmFigure): string {
  const cell = (xs: number[]) => {
    const s = stats(xs)
    return s.n === 1 ? num(s.median) : `${num(s.median)} (${num(s.min)}–${num(s.max)})`
  }
  const ratio = stats(f.dmemfs).median / stats(f.tmpfs).median
  return [
    `A virtual machine's memory: seconds from starting QEMU to the guest's marker; lower is faster (${f.dmemfs.length} boots each).`,
    '',
    '| figure | unit | dmemfs | tmpfs | dmemfs/tmpfs |',
    '|---|---|---|---|---|',
    `| ${f.label} | ${f.unit} | ${cell(f.dmemfs)} | ${cell(f.tmpfs)} | ${ratio.toPrecision(3)} |`
  ].join('\n')
}
