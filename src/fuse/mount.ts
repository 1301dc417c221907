// Mounting and unmounting: checks on the mount point, stale-mount cleanup, the fuse-native session, and
// the daemon's life: a clean unmount on SIGINT/SIGTERM/SIGHUP, on a fatal error, or when someone unmounts
// from outside.

import { ChildProcess, execFileSync, spawn } from 'child_process'
import * as fs from 'fs'
import * as path from 'path'
import { ControlDir } from '../control/control'
import { textBytes } from '../fs/name'
import { Superblock, XATTR_PREFIX } from '../fs/super'
import { DEFAULT_POISON_FILE, MountOptions } from '../options'
import { fmtSize, layoutPool, PoolLayout } from '../pool/layout'
import { parsePoisonFile, renderPoisonFile } from '../pool/persist'
import { DmemPool } from '../pool/pool'
import { MceEnvironment } from '../mce/memory-failure'
import { findHolders, invocationOf, mountIdentity, openerFamily, MountIdentity, processOfThread, sysctlEarlyKill, threadFlags } from '../mce/procfs'
import { revokeFile } from '../mce/revoke'
import { sendMceSigbus } from '../mce/siginfo'
import { Log, releaseTerminals } from './daemon-log'
import { FuseAdapter } from './operations'
import { DataPath, DataPathBinding } from '../fs/datapath'

export const FSTYPE = 'fuse.dmemfs'
const ENOTCONN = 'ENOTCONN'
const UNMOUNT_POLL_MS = 1000
const FATAL_POLL_MS = 10
const FATAL_UNMOUNT_TIMEOUT_MS = 5000

export class MountError extends Error {}

export interface MountEntry {
  mountpoint: string
  fstype: string
  dev: string // major:minor in decimal, as mountinfo gives it
}

/** Mount points from /proc/self/mountinfo, with the kernel's octal escapes undone. */
export function readMounts (): MountEntry[] {
  const text = fs.readFileSync('/proc/self/mountinfo', 'utf8')
  const entries: MountEntry[] = []
  for (const line of text.split('\n')) {
    if (!line) continue
    const [left, right] = line.split(' - ')
    const fields = left.split(' ')
    entries.push({ mountpoint: unescapeMount(fields[4]), fstype: right.split(' ')[0], dev: fields[2] })
  }
  return entries
}

function unescapeMount (s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)))
}

export function findMount (mountpoint: string): MountEntry | undefined {
  return readMounts().reverse().find(m => m.mountpoint === mountpoint)
}

function errnoCode (fn: () => unknown): string | null {
  try {
    fn()
    return null
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'EIO'
  }
}

export function lazyUnmount (mountpoint: string): void {
  execFileSync('umount', ['-l', mountpoint], { stdio: 'ignore' })
}

/** Makes sure `mnt` can be mounted on: an existing, empty directory that is not a live mount. A mount
 *  left by a daemon that died ("Transport endpoint is not connected") is cleared away. */
/** Mounting opens /dev/fuse, which is root's here (there is no setuid fusermount): say so in one line,
 *  before libfuse prints its own two. */
function checkFuseDevice (): void {
  const code = errnoCode(() => fs.accessSync('/dev/fuse', fs.constants.R_OK | fs.constants.W_OK))
  if (code === 'ENOENT') throw new MountError('/dev/fuse does not exist: this kernel has no FUSE (modprobe fuse)')
  if (code) throw new MountError(`cannot open /dev/fuse (${code}): mounting dmemfs needs root`)
}

export function prepareMountpoint (mnt: string): void {
  const mounted = findMount(mnt)
  if (mounted) {
    if (errnoCode(() => fs.statSync(mnt)) !== ENOTCONN) {
      throw new MountError(`${mnt} is already mounted (${mounted.fstype})`)
    }
    lazyUnmount(mnt)
  }
  const code = errnoCode(() => fs.statSync(mnt))
  if (code === 'ENOENT') throw new MountError(`mount point ${mnt} does not exist`)
  if (code) throw new MountError(`cannot use mount point ${mnt}: ${code}`)
  if (!fs.statSync(mnt).isDirectory()) throw new MountError(`mount point ${mnt} is not a directory`)
  if (fs.readdirSync(mnt).length > 0) throw new MountError(`mount point ${mnt} is not empty`)
}

export function describePool (layout: PoolLayout): string {
  const nodes = layout.nodes.length
  const first = layout.regions[0].phys
  return `pool ${fmtSize(layout.nodes[0].size)}${nodes > 1 ? ` x ${nodes} nodes` : ''}, ` +
    `${layout.totalDpages} dpage${layout.totalDpages === 1 ? '' : 's'} of ${fmtSize(layout.dpageSize)} from phys 0x${first.toString(16)}`
}


/** A daemon with a large pool cannot start processes: the kernel refuses to duplicate its many GiB of
 *  private writable mappings, and spawn fails with ENOMEM. So the child that will unmount is started
 *  before the pool exists and waits on its stdin for one word: `go` unmounts, `done` (the mount is gone
 *  already, or never came) ends it quietly. End of file without a word means the daemon died in a way it
 *  could not handle (SIGKILL, V8 out of memory): it unmounts then too, so even that leaves no dead mount.
 *  It ignores the signals that stop the daemon: Ctrl-C and a terminal's hangup reach the whole group. */
function startUnmounter (mnt: string): ChildProcess {
  const script = [
    'trap "" INT TERM HUP',
    'read word',
    'case "$word" in go) exec umount -l "$0";; done) exit 0;; esac',
    'exec umount -l "$0" 2>/dev/null'
  ].join('\n')
  const child = spawn('sh', ['-c', script, mnt], { stdio: ['pipe', 'ignore', 'inherit'] })
  child.stdin!.on('error', () => {}) // a write after the child died must not kill the daemon
  return child
}

/** Sends the unmounter its word. The pipe is empty, so the bytes reach it during this call (Node tries a
 *  pipe write at once before queuing it): a fatal path that cannot return to the event loop relies on it. */
function tellUnmounter (child: ChildProcess, word: 'go' | 'done'): void {
  if (child.exitCode !== null || child.signalCode !== null || child.stdin!.destroyed) return
  child.stdin!.end(word + '\n')
}

function runUnmounter (child: ChildProcess): Promise<void> {
  return new Promise(resolve => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.on('exit', () => resolve())
    tellUnmounter(child, 'go')
  })
}

const FUSE_DEVICE = '/dev/fuse'

/** The descriptor of this daemon's FUSE connection (it serves one mount, so it holds one). */
function fuseDeviceFd (): number | null {
  for (const entry of fs.readdirSync('/proc/self/fd')) {
    if (readlinkOrNull(`/proc/self/fd/${entry}`) === FUSE_DEVICE) return Number(entry)
  }
  return null
}

function readlinkOrNull (link: string): string | null {
  try {
    return fs.readlinkSync(link)
  } catch {
    return null
  }
}

/** Whether this daemon's own mount is still there. Not by the mount point alone: someone may unmount it
 *  and mount another dmemfs there (the kernel even reuses the mount ID). When the kernel ends our
 *  connection, libfuse's loop returns and closes the FUSE descriptor, so that tells ours apart. */
function isMountLive (mnt: string, fuseFd: number | null): boolean {
  if (findMount(mnt)?.fstype !== FSTYPE) return false
  return fuseFd === null || readlinkOrNull(`/proc/self/fd/${fuseFd}`) === FUSE_DEVICE
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4))

/** Blocks the whole thread: for a fatal path that must not return to the event loop. */
function sleepSync (ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms)
}

/** Unmounts without returning to the event loop and waits until the mount is gone from this namespace
 *  (umount -l detaches it at once). False if it is still there after `timeoutMs`. */
function unmountSync (child: ChildProcess, mnt: string, fuseFd: number | null, timeoutMs: number): boolean {
  tellUnmounter(child, 'go')
  const deadline = Date.now() + timeoutMs
  while (isMountLive(mnt, fuseFd)) {
    if (Date.now() > deadline) return false
    sleepSync(FATAL_POLL_MS)
  }
  return true
}

/** The memory-failure path's view of the system: processes through /proc, signals through kill(2) (a
 *  plain SIGBUS: kill cannot set si_code or si_addr), revocation by an open through the mount. */
function procEnvironment (mnt: string, log: Log): MceEnvironment {
  let identity: MountIdentity | null = null
  return {
    findHolders (ino, openers) {
      identity ??= mountIdentity(mnt)
      return identity ? findHolders(identity, ino, openerFamily(openers)) : []
    },
    processOf: processOfThread,
    invocationOf,
    threadFlags,
    sysctlEarlyKill,
    // The kernel's siginfo by ptrace where it can be done, else kill(2); nothing sent at all is a failure
    // for the report (the process had gone).
    sendSigbus: async (pid, siCode, addr) => {
      const result = await sendMceSigbus(pid, siCode, addr)
      if (result.way === 'none') throw Object.assign(new Error(result.error), { code: result.error })
      return result
    },
    revoke: target => revokeFile(mnt, target),
    log,
    self: process.pid
  }
}

function readPoisonFile (file: string, layout: PoolLayout): number[] {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw new MountError(`cannot read poison file ${file}: ${(err as Error).message}`)
  }
  const pfns = parsePoisonFile(text, layout)
  if (!pfns.ok) throw new MountError(`poison file ${file} ${pfns.error}; remove it or choose another poison_file`)
  return pfns.value
}

/** The poison file's directory must be there and writable before anything is mounted: a poison recorded
 *  nowhere would be lost without a word. No directory is created for a PATH given by the user (a typo must
 *  not grow a tree); only the documented default's own, /var/lib/dmemfs. */
function checkPoisonDir (file: string): void {
  const dir = path.dirname(file)
  if (file === DEFAULT_POISON_FILE) {
    try {
      fs.mkdirSync(dir, { mode: 0o755 })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new MountError(`cannot create ${dir} for the poison file: ${(err as Error).message}`)
      }
    }
  }
  const code = errnoCode(() => fs.accessSync(dir, fs.constants.W_OK))
  if (code === 'ENOENT') {
    throw new MountError(`poison file directory ${dir} does not exist (it is not created: make it, or choose another poison_file)`)
  }
  if (code === 'ENOTDIR') throw new MountError(`poison file directory ${dir} is not a directory`)
  if (code) throw new MountError(`cannot write poison file ${file}: directory ${dir}: ${code}`)
  if (!fs.statSync(dir).isDirectory()) throw new MountError(`poison file directory ${dir} is not a directory`)
}

/** Rewritten whole on every change (it is small), through a rename so a crash never leaves half a file.
 *  A failure (the directory removed since mount, a full disk) costs one log line; the pool goes on. */
function writePoisonFile (file: string, pool: DmemPool, log: Log): void {
  try {
    fs.writeFileSync(file + '.tmp', renderPoisonFile(pool))
    fs.renameSync(file + '.tmp', file)
  } catch (err) {
    log(textBytes(`dmemfs: cannot save poison to ${file}: ${(err as Error).message}`))
  }
}

/** The fuse-native options dmemfs mounts with (the benchmark's `tuned` baseline uses the same). No
 *  per-request timer; the kernel checks permissions; our inode numbers reach stat and /proc; 128 KiB
 *  writes instead of 4 KiB; zero timeouts keep hard links and nlink exact (libfuse's high-level API
 *  otherwise caches per path); nanosecond times; names as bytes (latin1 strings, one char per byte). */
export const FUSE_OPTIONS = {
  timeout: false,
  defaultPermissions: true,
  useIno: true,
  bigWrites: true,
  attrTimeout: 0,
  entryTimeout: 0,
  negativeTimeout: 0,
  timeNs: true,
  binaryNames: true
} as const

export interface MountedFs {
  mountpoint: string
  sb: Superblock
  datapath: string // the native data path: 'on', or 'off (why)'
  /** Whether this mount is still there (not another one on the same point). */
  isMounted (): boolean
  unmount (): Promise<void>
  /** For a fatal path: unmounts before returning; false if the mount is still there. */
  unmountSync (): boolean
  /** The mount went away from outside: the unmounter is not needed. */
  release (): void
}

const DATAPATH_BINDING = path.resolve(__dirname, '..', '..', '..', 'native', 'build', 'Release', 'dmemfs_datapath.node')

/** The native data path over this pool, or why there is none. It needs native/ built (postinstall) and the
 *  patched fuse-native's hook; without either, everything goes through TypeScript. Called after
 *  fuse-native is loaded, whose binding holds the hook. */
function loadDataPath (pool: DmemPool, opts: MountOptions): DataPath | string {
  if (!opts.native) return 'off (native=0)'
  let binding: DataPathBinding
  try {
    binding = require(DATAPATH_BINDING) as DataPathBinding
  } catch {
    return 'off (native/ not built)'
  }
  if (!binding.attach()) return 'off (fuse-native binding without the data hook)'
  const dp = new DataPath(binding, pool.dpageSize)
  for (const region of pool.regions) dp.addRegion(region.base, region.dpages, region.buf)
  // With xattrs off (nouser_xattr) libfuse answers GETXATTR ENOSYS and the kernel stops asking.
  if (opts.userXattr) dp.xattrsOnlyUnder(XATTR_PREFIX)
  dp.setTracing(pool.tracer.on)
  return dp
}

// The kernel sends READ and WRITE of up to 1020 KiB (255 pages) when fuse-native asks for them (patch
// concerns 13 and 16); a readahead window as large lets a sequential reader or a page fault take whole
// requests, several at once.
const BIG_REQUEST_KB = 1020
const BIG_READAHEAD_KB = BIG_REQUEST_KB

/** Resolves once the kernel has taken the INIT reply. fuse-native calls back on mount while its libfuse
 *  thread is still to send that reply, and the kernel, taking it, cuts the readahead window to the 128 KiB
 *  the reply echoes: a window set before would be lost (seen on 9 mounts of 20 with both CPUs busy). Every
 *  request waits for INIT to be done, and opening a directory is always one (OPENDIR; a stat may be
 *  answered from the kernel's cache), answered by this process's event loop, which is free meanwhile:
 *  libuv's thread pool makes the call. */
async function initDone (mnt: string): Promise<void> {
  try {
    const dir = await fs.promises.opendir(mnt)
    await dir.close()
  } catch {
    // An open refused before reaching the daemon (a parent not searchable) leaves the race, no worse.
  }
}

/** The sysfs file of a mount's readahead window (its backing device's read_ahead_kb). The device comes
 *  from mountinfo: a stat of the mount point would be a request to ourselves. */
function readaheadFile (mnt: string): string | null {
  const dev = findMount(mnt)?.dev
  return dev ? `/sys/class/bdi/${dev}/read_ahead_kb` : null
}

/** Sets the mount's readahead window (root's to write); false if it could not. */
function setReadahead (mnt: string, kb: number): boolean {
  const file = readaheadFile(mnt)
  if (!file) return false
  try {
    fs.writeFileSync(file, `${kb}\n`)
    return true
  } catch {
    return false
  }
}

/** The mount's readahead window in KiB, or null if it cannot be read. */
export function readaheadKb (mnt: string): number | null {
  const file = readaheadFile(mnt)
  if (!file) return null
  try {
    return Number(fs.readFileSync(file, 'utf8').trim())
  } catch {
    return null
  }
}

function describeDataPath (bigRequests: boolean, readahead: boolean): string {
  if (!bigRequests) return 'on'
  return `on, requests up to ${BIG_REQUEST_KB} KiB${readahead ? `, readahead ${BIG_READAHEAD_KB} KiB` : ''}`
}

/** Builds the pool and the filesystem and mounts them; resolves once the kernel has sent INIT. `log` takes
 *  byte strings (one char per byte; see fs/name.ts): names in its lines are exact. `beforeMount` runs once
 *  the pool is built, right before the kernel mount: from there on a signal must wait for the mount to be
 *  up and then unmount it, where before it could simply end the process. */
export async function mountDmemfs (
  mountpoint: string, opts: MountOptions, log: Log, beforeMount: () => void = () => {}
): Promise<MountedFs> {
  const mnt = path.resolve(mountpoint)
  const layout = layoutPool(opts.dmem, opts.nodes, opts.dpageShift)
  if (!layout.ok) throw new MountError(`bad mount option 'dmem': ${layout.error}`)
  if (opts.poisonFile) checkPoisonDir(opts.poisonFile)
  const keptPoison = opts.poisonFile ? readPoisonFile(opts.poisonFile, layout.value) : []
  checkFuseDevice()
  prepareMountpoint(mnt)
  const unmounter = startUnmounter(mnt)
  const pool = new DmemPool(layout.value)
  if (opts.prefault) pool.prefault()
  if (opts.trace) {
    pool.tracer.on = true
    pool.tracer.emit(0, 'dmem_alloc_init', `dpage_shift ${pool.dpageShift}`)
  }
  // Before any allocation, as the seed's dmem_alloc_init() marks the errored dpages of each region.
  for (const pfn of keptPoison) {
    const dpage = pool.dpageOfPfn(pfn)
    if (dpage >= 0) pool.poison(dpage)
  }
  // Loaded here, not at the top: the CLI's other commands must work without the native binding.
  const Fuse = require('fuse-native') as typeof import('fuse-native')
  const datapath = loadDataPath(pool, opts)
  const sb = new Superblock(pool, {
    rootMode: opts.mode,
    rootUid: opts.uid,
    rootGid: opts.gid,
    nrInodes: opts.nrInodes,
    maxAllocTry: opts.maxAllocTry,
    datapath: typeof datapath === 'string' ? null : datapath
  })
  let fuse: import('fuse-native') | null = null
  const control = new ControlDir(sb, procEnvironment(mnt, log), {
    earlyKill: opts.earlyKill,
    ceThreshold: opts.ceThreshold,
    onPoisonChange: () => { if (opts.poisonFile) writePoisonFile(opts.poisonFile, pool, log) }
  })
  const adapter = new FuseAdapter(sb, control, log, () => fuse && fuse.context())
  // Large requests pay where requests do not queue behind the one JavaScript thread: with the native
  // data path only, so that native=0 stays the data path dmemfs had before it.
  fuse = new Fuse(mnt, adapter.operations(opts.userXattr), {
    ...FUSE_OPTIONS,
    bigRequests: typeof datapath !== 'string',
    allowOther: opts.allowOther,
    fsname: 'dmemfs',
    subtype: 'dmemfs'
  })
  beforeMount()
  try {
    await new Promise<void>((resolve, reject) => {
      fuse!.mount(err => err ? reject(new MountError(`cannot mount ${mnt}: ${err.message}`)) : resolve())
    })
  } catch (err) {
    tellUnmounter(unmounter, 'done')
    throw err
  }
  const fuseFd = fuseDeviceFd()
  const bigRequests = fuse.bigRequests()
  if (bigRequests) await initDone(mnt)
  const readahead = bigRequests && setReadahead(mnt, BIG_READAHEAD_KB)
  // fuse-native's own unmount() runs fusermount, which needs a fork this process may not get.
  return {
    mountpoint: mnt,
    datapath: typeof datapath === 'string' ? datapath : describeDataPath(bigRequests, readahead),
    sb,
    isMounted: () => isMountLive(mnt, fuseFd),
    unmount: () => runUnmounter(unmounter),
    unmountSync: () => unmountSync(unmounter, mnt, fuseFd, FATAL_UNMOUNT_TIMEOUT_MS),
    release: () => tellUnmounter(unmounter, 'done')
  }
}

export const EXIT_OK = 0
export const EXIT_FATAL = 1

// Each ends the daemon with a clean unmount and exit 0; SIGHUP is a closed terminal or tmux pane.
const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']

/** The daemon's life around its mount. Created before mounting, it takes over the stop signals and every
 *  fatal path (an uncaught exception or unhandled rejection): whatever ends the daemon unmounts first, so
 *  no "Transport endpoint is not connected" is left behind. `log` is for what happens, `errLog` for why
 *  the daemon dies. */
export class DaemonLifecycle {
  private mounted: MountedFs | null = null
  private stopping = false
  private pendingSignal: NodeJS.Signals | null = null
  private finish: (code: number) => void = () => {}
  private poll: NodeJS.Timeout | undefined

  constructor (private readonly log: Log, private readonly errLog: Log) {
    // With a listener here, an unhandled rejection arrives too, with origin 'unhandledRejection'.
    process.on('uncaughtException', (err, origin) => this.fatal(err, origin))
  }

  /** Takes over the stop signals. Not earlier than needed: until then Ctrl-C ends a long pool allocation
   *  at once, with nothing to unmount. */
  arm (): void {
    for (const signal of STOP_SIGNALS) process.on(signal, () => this.stop(signal))
  }

  /** Serves `mounted` until a stop signal or an outside unmount; resolves with the exit code. */
  serve (mounted: MountedFs): Promise<number> {
    this.mounted = mounted
    const done = new Promise<number>(resolve => { this.finish = resolve })
    if (this.pendingSignal) {
      this.stop(this.pendingSignal)
      return done
    }
    this.poll = setInterval(() => {
      if (mounted.isMounted()) return
      this.stopping = true
      clearInterval(this.poll)
      mounted.release()
      this.log(textBytes(`dmemfs: ${mounted.mountpoint} was unmounted`))
      this.finish(EXIT_OK)
    }, UNMOUNT_POLL_MS)
    return done
  }

  private stop (signal: NodeJS.Signals): void {
    const mounted = this.mounted
    // A signal while mounting: acted on as soon as the mount is up.
    if (!mounted) {
      this.pendingSignal ??= signal
      return
    }
    if (this.stopping) return
    this.stopping = true
    clearInterval(this.poll)
    this.log(textBytes(`dmemfs: ${signal}, unmounting ${mounted.mountpoint}`))
    mounted.unmount().then(() => {
      if (!mounted.isMounted()) return this.finish(EXIT_OK)
      this.errLog(textBytes(`dmemfs: cannot unmount ${mounted.mountpoint}; unmount it with 'umount -l'`))
      this.finish(EXIT_FATAL)
    }, () => this.finish(EXIT_FATAL))
  }

  /** Never returns: says why in one line, unmounts without the event loop (which may be what failed),
   *  exits non-zero. */
  private fatal (err: unknown, origin: string): never {
    const what = origin === 'unhandledRejection' ? 'unhandled rejection' : 'uncaught exception'
    const mounted = this.mounted
    this.errLog(textBytes(`dmemfs: fatal ${what}: ${describeError(err)}${mounted ? `; unmounting ${mounted.mountpoint}` : ''}`))
    if (mounted && !mounted.unmountSync()) {
      this.errLog(textBytes(`dmemfs: cannot unmount ${mounted.mountpoint}; unmount it with 'umount -l'`))
    }
    releaseTerminals()
    process.exit(EXIT_FATAL)
  }
}

/** One line: the error's name and message and where it was thrown. */
export function describeError (err: unknown): string {
  if (!(err instanceof Error)) return oneLine(String(err))
  // The first frame's place: "at fn (file:line:col)" or "at file:line:col".
  const at = /\n\s+at (?:[^\n]* \()?([^\n()]+)\)?/.exec(err.stack ?? '')
  return oneLine(`${err.name}: ${err.message}${at ? ` (at ${at[1]})` : ''}`)
}

function oneLine (text: string): string {
  return text.replace(/\s*\n\s*/g, ' ')
}
