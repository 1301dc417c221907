// Mounting and unmounting: checks on the mount point, stale-mount cleanup, the fuse-native session, and
// a clean unmount on SIGINT/SIGTERM or when someone unmounts from outside.

import { ChildProcess, execFileSync, spawn } from 'child_process'
import * as fs from 'fs'
import * as path from 'path'
import { ControlDir } from '../control/control'
import { Superblock } from '../fs/super'
import { MountOptions } from '../options'
import { fmtSize, layoutPool, PoolLayout } from '../pool/layout'
import { parsePoisonFile, renderPoisonFile } from '../pool/persist'
import { DmemPool } from '../pool/pool'
import { MceEnvironment } from '../mce/memory-failure'
import { findHolders, mountIdentity, openerFamily, MountIdentity, processOfThread, sysctlEarlyKill, threadFlags } from '../mce/procfs'
import { FuseAdapter } from './operations'
import { DataPath, DataPathBinding } from '../fs/datapath'

export const FSTYPE = 'fuse.dmemfs'
const ENOTCONN = 'ENOTCONN'
const UNMOUNT_POLL_MS = 1000

export class MountError extends Error {}

export interface MountEntry {
  mountpoint: string
  fstype: string
}

/** Mount points from /proc/self/mountinfo, with the kernel's octal escapes undone. */
export function readMounts (): MountEntry[] {
  const text = fs.readFileSync('/proc/self/mountinfo', 'utf8')
  const entries: MountEntry[] = []
  for (const line of text.split('\n')) {
    if (!line) continue
    const [left, right] = line.split(' - ')
    const fields = left.split(' ')
    entries.push({ mountpoint: unescapeMount(fields[4]), fstype: right.split(' ')[0] })
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
    `${layout.totalDpages} dpages of ${fmtSize(layout.dpageSize)} from phys 0x${first.toString(16)}`
}


/** A daemon with a large pool cannot start processes: the kernel refuses to duplicate its many GiB of
 *  private writable mappings, and spawn fails with ENOMEM. So the child that will unmount is started
 *  before the pool exists and waits on its stdin; a daemon that dies closes that pipe and it just exits. */
function startUnmounter (mnt: string): ChildProcess {
  // It ignores the signals that stop the daemon: Ctrl-C reaches the whole foreground process group.
  const script = 'trap "" INT TERM HUP; read go && exec umount -l "$0"'
  const child = spawn('sh', ['-c', script, mnt], { stdio: ['pipe', 'ignore', 'inherit'] })
  child.stdin!.on('error', () => {}) // a write after the child died must not kill the daemon
  return child
}

function runUnmounter (child: ChildProcess): Promise<void> {
  return new Promise(resolve => {
    if (child.exitCode !== null) return resolve()
    child.on('exit', () => resolve())
    child.stdin!.end('go\n')
  })
}

/** The memory-failure path's view of the system: processes through /proc, signals through kill(2). */
function procEnvironment (mnt: string, log: (line: string) => void): MceEnvironment {
  let identity: MountIdentity | null = null
  return {
    findHolders (ino, openers) {
      identity ??= mountIdentity(mnt)
      return identity ? findHolders(identity, ino, openerFamily(openers)) : []
    },
    processOf: processOfThread,
    threadFlags,
    sysctlEarlyKill,
    kill: (pid, signal) => process.kill(pid, signal),
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

/** Rewritten whole on every change (it is small), through a rename so a crash never leaves half a file. */
function writePoisonFile (file: string, pool: DmemPool, log: (line: string) => void): void {
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true })
    fs.writeFileSync(file + '.tmp', renderPoisonFile(pool))
    fs.renameSync(file + '.tmp', file)
  } catch (err) {
    log(`dmemfs: cannot save poison to ${file}: ${(err as Error).message}`)
  }
}

/** The fuse-native options dmemfs mounts with (the benchmark's `tuned` baseline uses the same). No
 *  per-request timer; the kernel checks permissions; our inode numbers reach stat and /proc; 128 KiB
 *  writes instead of 4 KiB; zero timeouts keep hard links and nlink exact (libfuse's high-level API
 *  otherwise caches per path); nanosecond times. */
export const FUSE_OPTIONS = {
  timeout: false,
  defaultPermissions: true,
  useIno: true,
  bigWrites: true,
  attrTimeout: 0,
  entryTimeout: 0,
  negativeTimeout: 0,
  timeNs: true
} as const

export interface MountedFs {
  mountpoint: string
  sb: Superblock
  unmount (): Promise<void>
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
  dp.setTracing(pool.tracer.on)
  return dp
}

/** Builds the pool and the filesystem and mounts them; resolves once the kernel has sent INIT. */
export async function mountDmemfs (
  mountpoint: string, opts: MountOptions, log: (line: string) => void
): Promise<MountedFs> {
  const mnt = path.resolve(mountpoint)
  const layout = layoutPool(opts.dmem, opts.nodes, opts.dpageShift)
  if (!layout.ok) throw new MountError(`bad mount option 'dmem': ${layout.error}`)
  const keptPoison = opts.poisonFile ? readPoisonFile(opts.poisonFile, layout.value) : []
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
  log(`dmemfs: native data path ${typeof datapath === 'string' ? datapath : 'on'}`)
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
    onPoisonChange: () => { if (opts.poisonFile) writePoisonFile(opts.poisonFile, pool, log) }
  })
  const adapter = new FuseAdapter(sb, control, log, () => fuse && fuse.context())
  fuse = new Fuse(mnt, adapter.operations(opts.userXattr), {
    ...FUSE_OPTIONS,
    allowOther: opts.allowOther,
    fsname: 'dmemfs',
    subtype: 'dmemfs'
  })
  try {
    await new Promise<void>((resolve, reject) => {
      fuse!.mount(err => err ? reject(new MountError(`cannot mount ${mnt}: ${err.message}`)) : resolve())
    })
  } catch (err) {
    unmounter.kill()
    throw err
  }
  // fuse-native's own unmount() runs fusermount, which needs a fork this process may not get.
  return { mountpoint: mnt, sb, unmount: () => runUnmounter(unmounter) }
}

/** Runs a mounted filesystem until SIGINT/SIGTERM or an outside unmount; resolves when it is gone. */
export function serveUntilUnmounted (mounted: MountedFs, log: (line: string) => void): Promise<void> {
  return new Promise(resolve => {
    let stopping = false
    const stop = (why: string) => {
      if (stopping) return
      stopping = true
      clearInterval(poll)
      log(`dmemfs: ${why}, unmounting ${mounted.mountpoint}`)
      mounted.unmount().then(resolve, resolve)
    }
    const poll = setInterval(() => {
      if (findMount(mounted.mountpoint)) return
      stopping = true
      clearInterval(poll)
      log(`dmemfs: ${mounted.mountpoint} was unmounted`)
      resolve()
    }, UNMOUNT_POLL_MS)
    process.on('SIGINT', () => stop('SIGINT'))
    process.on('SIGTERM', () => stop('SIGTERM'))
  })
}
