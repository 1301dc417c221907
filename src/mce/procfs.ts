// Finding, through /proc, the processes that hold a file of this mount open or mapped: the user-space
// stand-in for the kernel's walk of the tasks and the file's i_mmap tree.
//
// Nothing here may touch the mount itself: the caller is the daemon serving it, and a stat() of a file on
// it would wait on the daemon. readlink of /proc/PID/fd/N, fdinfo and maps do not.

import * as fs from 'fs'

export interface MountIdentity {
  mountpoint: string
  mntId: number // as /proc/PID/fdinfo shows it
  major: number // as /proc/PID/maps shows the device
  minor: number
}

export interface FileMapping {
  start: number
  end: number
  pgoff: number // the mapping's first page offset in the file (vma->vm_pgoff)
  perms: string
}

export interface FileHolder {
  pid: number
  comm: string
  fds: number[]
  mappings: FileMapping[]
}

/** The identity of the mount at `mountpoint`, from /proc/self/mountinfo. */
export function mountIdentity (mountpoint: string): MountIdentity | null {
  const text = fs.readFileSync('/proc/self/mountinfo', 'utf8')
  let found: MountIdentity | null = null
  for (const line of text.split('\n')) {
    const fields = line.split(' ')
    if (fields.length < 5 || unescape(fields[4]) !== mountpoint) continue
    const [major, minor] = fields[2].split(':').map(Number)
    found = { mountpoint, mntId: Number(fields[0]), major, minor }
  }
  return found
}

function unescape (s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)))
}

/** Every process other than `self` that has inode `ino` of the mount open or mapped, looking only at
 *  `pids` when given, else at every process. */
export function findHolders (mount: MountIdentity, ino: number, pids: number[] | null, self = process.pid): FileHolder[] {
  const holders: FileHolder[] = []
  const dev = `${hex2(mount.major)}:${hex2(mount.minor)}`
  for (const pid of pids ?? allPids()) {
    if (pid === self) continue
    const mappings = readMappings(pid, dev, ino)
    const fds = readFds(pid, mount, ino)
    if (mappings.length === 0 && fds.length === 0) continue
    holders.push({ pid, comm: readComm(pid), fds, mappings })
  }
  return holders
}

function allPids (): number[] {
  return fs.readdirSync('/proc').map(Number).filter(pid => Number.isInteger(pid) && pid > 0)
}

/** The processes that can hold a file whose open handles were opened by threads `openerTids`: each
 *  opener's process and its descendants, since a descriptor or a mapping reaches another process by fork
 *  (a mapping keeps its file open, so every holder is behind some open handle). Null when that cannot be
 *  known, and every process must be looked at: an opener unknown or gone (its descriptors may live on in
 *  children now reparented), or a kernel without /proc/PID/task/TID/children. A descriptor passed over a
 *  unix socket to an unrelated process while its opener lives is not found this way. */
export function openerFamily (openerTids: number[]): number[] | null {
  const pending: number[] = []
  for (const tid of openerTids) {
    const proc = tid === 0 ? null : processOfThread(tid)
    if (!proc) return null
    pending.push(proc.pid)
  }
  const seen = new Set<number>()
  while (pending.length > 0) {
    const pid = pending.pop()!
    if (seen.has(pid)) continue
    seen.add(pid)
    const children = childrenOf(pid)
    if (children === null) return null
    pending.push(...children)
  }
  return [...seen]
}

function childrenOf (pid: number): number[] | null {
  let tids: string[]
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`)
  } catch {
    return [] // exited meanwhile: no children to follow
  }
  const children: number[] = []
  for (const tid of tids) {
    const text = readOrNull(`/proc/${pid}/task/${tid}/children`)
    if (text === null) {
      if (!fs.existsSync(`/proc/${pid}/task/${tid}`)) continue // the thread ended meanwhile
      return null
    }
    for (const word of text.split(' ')) if (word) children.push(Number(word))
  }
  return children
}

function hex2 (n: number): string {
  return n.toString(16).padStart(2, '0')
}

function readOrNull (file: string): string | null {
  try {
    return fs.readFileSync(file, 'latin1')
  } catch {
    return null // the process ended, or is not ours to read
  }
}

/** Lines of /proc/PID/maps for the file: `start-end perms offset dev inode path`. */
function readMappings (pid: number, dev: string, ino: number): FileMapping[] {
  const text = readOrNull(`/proc/${pid}/maps`)
  if (text === null || !text.includes(dev)) return []
  const out: FileMapping[] = []
  for (const line of text.split('\n')) {
    const f = line.split(/\s+/, 5)
    if (f.length < 5 || f[3] !== dev || Number(f[4]) !== ino) continue
    const [start, end] = f[0].split('-').map(h => parseInt(h, 16))
    out.push({ start, end, pgoff: parseInt(f[2], 16) / 4096, perms: f[1] })
  }
  return out
}

function readFds (pid: number, mount: MountIdentity, ino: number): number[] {
  let names: string[]
  try {
    names = fs.readdirSync(`/proc/${pid}/fd`)
  } catch {
    return []
  }
  const prefix = mount.mountpoint + '/'
  const fds: number[] = []
  for (const name of names) {
    let target: string
    try {
      target = fs.readlinkSync(`/proc/${pid}/fd/${name}`)
    } catch {
      continue
    }
    if (!target.startsWith(prefix)) continue
    // The path says where the file was opened; fdinfo says which file it is.
    const info = readOrNull(`/proc/${pid}/fdinfo/${name}`)
    if (info && fdinfoField(info, 'mnt_id') === mount.mntId && fdinfoField(info, 'ino') === ino) {
      fds.push(Number(name))
    }
  }
  return fds.sort((a, b) => a - b)
}

function fdinfoField (info: string, field: string): number {
  const m = new RegExp(`^${field}:\\s*(\\d+)`, 'm').exec(info)
  return m ? Number(m[1]) : -1
}

/** The thread group of thread `tid` (fuse_get_context gives thread ids), with its command name. */
export function processOfThread (tid: number): { pid: number, comm: string } | null {
  const status = readOrNull(`/proc/${tid}/status`)
  const m = status === null ? null : /^Tgid:\s*(\d+)/m.exec(status)
  if (!m) return null
  const pid = Number(m[1])
  return { pid, comm: readComm(pid) }
}

/** The process of thread `tid` and the launchers that run it: each parent in turn whose command line
 *  ends with the process's arguments (its command line without interpreter and script), as `npx dmemfs
 *  mce ...` (npm's process is titled `npm exec dmemfs mce ...`) or `sh -c "dmemfs mce ..."` run the CLI.
 *  Empty when the thread is gone. */
export function invocationOf (tid: number): number[] {
  const proc = processOfThread(tid)
  if (!proc) return []
  const pids = [proc.pid]
  const argv = readCmdline(proc.pid)
  if (argv === null || argv.length < 3) return pids
  const tail = ' ' + argv.slice(2).join(' ')
  for (let pid = parentOf(proc.pid); pid > 1; pid = parentOf(pid)) {
    const parent = readCmdline(pid)
    if (parent === null || !(' ' + parent.join(' ')).endsWith(tail)) break
    pids.push(pid)
  }
  return pids
}

function readCmdline (pid: number): string[] | null {
  const text = readOrNull(`/proc/${pid}/cmdline`)
  // A process that set its title (npm) pads the rest of its argument area with NULs.
  return text === null ? null : text.split('\0').filter(w => w !== '')
}

function parentOf (pid: number): number {
  const stat = readOrNull(`/proc/${pid}/stat`)
  if (stat === null) return 0
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
}

/** Whether thread `tid` has a signal pending (its own or its process's), or is gone. A reader blocked in
 *  a FUSE request the daemon has not answered cannot die until it is answered, even of SIGKILL. */
export function signalPending (tid: number): boolean {
  const status = readOrNull(`/proc/${tid}/status`)
  if (status === null) return true
  return /^(SigPnd|ShdPnd):\s*0*[1-9a-f]/m.test(status)
}

// Task flags, as /proc/PID/task/TID/stat shows them (field 9). From include/linux/sched.h, the same on
// every kernel since the prctl was added (2.6.32) through 6.x, and checked on this machine's 6.18 by
// setting prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY) and reading the flags back:
//   #define PF_MCE_PROCESS 0x00000080  /* Process policy on mce errors */
//   #define PF_MCE_EARLY   0x08000000  /* Early kill for mce process policy */
export const PF_MCE_PROCESS = 0x00000080
export const PF_MCE_EARLY = 0x08000000

/** The flags of every thread of process `pid`, or null if it is gone. */
export function threadFlags (pid: number): number[] | null {
  let tids: string[]
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`)
  } catch {
    return null
  }
  const flags: number[] = []
  for (const tid of tids) {
    const stat = readOrNull(`/proc/${pid}/task/${tid}/stat`)
    if (stat === null) continue
    // The command name may hold spaces and parentheses: fields are counted after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    flags.push(Number(fields[6]))
  }
  return flags
}

/** vm.memory_failure_early_kill, or null on a kernel built without memory-failure support. */
export function sysctlEarlyKill (): number | null {
  const text = readOrNull('/proc/sys/vm/memory_failure_early_kill')
  return text === null ? null : Number(text.trim())
}

function readComm (pid: number): string {
  return (readOrNull(`/proc/${pid}/comm`) ?? '?').trim()
}
