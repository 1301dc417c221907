// Naming the frame to inject into, as RAS engineers do: by PFN, by byte of a file, or by an address in a
// process (as madvise(MADV_HWPOISON) does). Each resolves to one PFN of a mounted dmemfs; the injection
// itself is always the mount's own control file.

import * as fs from 'fs'
import { argBytes } from '../argv'
import { jsonAscii, nameEscape, nameForJson, nameUnescape } from '../fs/name'
import { FSTYPE, MountError, readMounts } from '../fuse/mount'
import { parseKernelU64, pfnNumber } from '../mce/input'
import { PAGE_SIZE } from '../statmap'
import { checkPfn, Parsed, UsageError, value } from './common'
import { dmemfsFileMount, fileRuns, mountedDmemfs, PfnRun } from './dmem'
import { hex } from '../pool/layout'

export type Target =
  | { how: 'pfn', mnt: string, pfn: string }
  | { how: 'file', mnt: string, pfn: string, path: string, offset: number }
  | { how: 'pid', mnt: string, pfn: string, pid: number, vaddr: number, path: string, offset: number }

/** The flags that name a target other than by PFN, for a command's flag list. */
export const TARGET_FLAGS = [
  { name: 'file', value: 'PATH', help: 'aim at the frame backing byte --offset of PATH, a file on a dmemfs' },
  { name: 'offset', value: 'N', help: 'with --file: the byte offset (decimal or 0x hex)' },
  {
    name: 'pid',
    value: 'PID',
    help: 'aim at the frame behind --vaddr in process PID, as madvise(MADV_HWPOISON) would: the address must ' +
      'be in a mapping of a file on a dmemfs'
  },
  { name: 'vaddr', value: 'ADDR', help: 'with --pid: the virtual address (0x hex or decimal)' }
]

function number (text: string, what: string): number {
  const n = parseKernelU64(text)
  if (!n.ok) throw new UsageError(`bad ${what}: ${n.error}`)
  const v = pfnNumber(n.value)
  if (!Number.isSafeInteger(v)) throw new UsageError(`bad ${what}: ${text} is too large`)
  return v
}

/** The target named by a command's arguments: MOUNTPOINT PFN, or --file/--offset, or --pid/--vaddr. */
export function parseTarget (parsed: Parsed, cmd: string): Target {
  const file = value(parsed, 'file')
  const offset = value(parsed, 'offset')
  const pid = value(parsed, 'pid')
  const vaddr = value(parsed, 'vaddr')
  const byFile = file !== undefined || offset !== undefined
  const byPid = pid !== undefined || vaddr !== undefined
  if (byFile && byPid) throw new UsageError('name the target one way: --file/--offset or --pid/--vaddr')
  if (byFile || byPid) {
    if (parsed.positionals.length > 0) throw new UsageError(`${cmd} takes no MOUNTPOINT or PFN with --file or --pid`)
    if (byFile) {
      if (file === undefined || offset === undefined) throw new UsageError('--file and --offset go together')
      return fileTarget(file, number(offset, 'offset'))
    }
    if (pid === undefined || vaddr === undefined) throw new UsageError('--pid and --vaddr go together')
    return pidTarget(number(pid, 'PID'), number(vaddr, 'address'))
  }
  if (parsed.positionals.length !== 2) {
    throw new UsageError(`${cmd} needs MOUNTPOINT and PFN, or --file PATH --offset N` + (cmd === 'mce' ? ', or --pid PID --vaddr ADDR' : ''))
  }
  const [mountpoint, pfn] = parsed.positionals
  checkPfn(pfn)
  return { how: 'pfn', mnt: mountedDmemfs(mountpoint), pfn }
}

/** The PFN of the frame holding byte `offset` of a file whose runs are `runs`, or null for a hole. */
export function pfnAtOffset (runs: PfnRun[], offset: number): string | null {
  const run = runs.find(r => offset >= r.offset && offset < r.offset + r.frames * PAGE_SIZE)
  if (!run) return null
  return hex(parseInt(run.pfn, 16) + Math.floor((offset - run.offset) / PAGE_SIZE))
}

function fileTarget (fileArg: string, offset: number): Target {
  const file = argBytes(fileArg) // the exact bytes: a name that is not UTF-8 is still found
  const { mnt, ino, size } = dmemfsFileMount(file, fileArg)
  if (offset >= size) throw new MountError(`${fileArg}: offset ${offset} is past its end (${size} bytes): nothing to poison`)
  const pfn = pfnAtOffset(fileRuns(mnt, ino), offset)
  if (pfn === null) throw new MountError(`${fileArg}: byte ${offset} is in a hole (no dpage backs it): nothing to poison`)
  return { how: 'file', mnt, pfn, path: file, offset }
}

interface MapsLine {
  start: number
  end: number
  offset: number
  dev: string // major:minor in decimal
  ino: number
  path: string // bytes, as the kernel shows them
}

/** The line of /proc/PID/maps whose range holds `vaddr`. */
function mappingAt (pid: number, vaddr: number): MapsLine | null {
  let text: string
  try {
    text = fs.readFileSync(`/proc/${pid}/maps`, 'latin1')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ESRCH') throw new MountError(`no process ${pid}`)
    throw new MountError(`cannot read /proc/${pid}/maps: ${code ?? String(err)}`)
  }
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ ([0-9a-f]+) ([0-9a-f]+):([0-9a-f]+) (\d+)\s*(.*)$/.exec(line)
    if (!m) continue
    const [start, end] = [parseInt(m[1], 16), parseInt(m[2], 16)]
    if (vaddr < start || vaddr >= end) continue
    const dev = `${parseInt(m[4], 16)}:${parseInt(m[5], 16)}`
    // The kernel escapes only a newline in a mapped file's path, as \012.
    return { start, end, offset: parseInt(m[3], 16), dev, ino: Number(m[6]), path: nameUnescape(m[7]) }
  }
  return null
}

function pidTarget (pid: number, vaddr: number): Target {
  const where = `address ${hex(vaddr)} of process ${pid}`
  const map = mappingAt(pid, vaddr)
  if (!map) throw new MountError(`${where} is not mapped`)
  const mount = map.ino === 0 ? undefined : readMounts().find(m => m.dev === map.dev && m.fstype === FSTYPE)
  if (!mount) {
    const what = map.path === '' ? 'anonymous memory' : map.path
    throw new MountError(`${where} is not backed by a dmemfs file (it maps ${what})`)
  }
  const offset = map.offset + (vaddr - map.start)
  const pfn = pfnAtOffset(fileRuns(mount.mountpoint, map.ino), offset)
  if (pfn === null) throw new MountError(`${where} maps byte ${offset} of ${map.path}, a hole: nothing to poison`)
  return { how: 'pid', mnt: mount.mountpoint, pfn, pid, vaddr, path: map.path, offset }
}

/** The line that says how the target was named, before the report: `target pid 42 vaddr 0x... ...`. */
export function targetLine (t: Target): string {
  const pfn = `pfn ${t.pfn}`
  if (t.how === 'pfn') return `target ${pfn}`
  const file = `file ${nameEscape(t.path)} offset ${t.offset} ${pfn}`
  if (t.how === 'file') return `target ${file}`
  return `target pid ${t.pid} vaddr ${hex(t.vaddr)} ${file}`
}

/** The `target` object of a JSON report. */
export function targetJson (t: Target): object {
  if (t.how === 'pfn') return { how: 'pfn', pfn: t.pfn }
  const file = { path: nameForJson(t.path), offset: t.offset, pfn: t.pfn }
  if (t.how === 'file') return { how: 'file', ...file }
  return { how: 'pid', pid: t.pid, vaddr: hex(t.vaddr), ...file }
}

/** A control file's reply as a command prints it: headed by the target's line, or, in JSON, with a
 *  `target` object first. */
export function headedByTarget (t: Target, reply: string, json: boolean): string {
  if (!json) return targetLine(t) + '\n' + reply
  const report = JSON.parse(reply) as Record<string, unknown>
  return jsonAscii({ target: targetJson(t), ...report }, 2) + '\n'
}
