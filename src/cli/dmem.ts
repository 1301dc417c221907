// Reaching a mounted dmemfs from the command line: finding the mount, its control files, and the pool's map.

import * as fs from 'fs'
import * as path from 'path'
import { CONTROL_DIR } from '../control/control'
import { findMount, FSTYPE, MountError, readMounts } from '../fuse/mount'
import { parsePoisoned, PoisonedLine } from '../mce/poison-book'
import { coarsenMap, parseMap, parsePfns, PoolMap } from '../statmap'

/** The mount point of the dmemfs mounted at `mountpoint`, resolved; fails when there is none. */
export function mountedDmemfs (mountpoint: string): string {
  let mnt: string
  try {
    mnt = fs.realpathSync(mountpoint)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new MountError(`${mountpoint} does not exist`)
    mnt = path.resolve(mountpoint) // a dead mount (ENOTCONN) still has its place in mountinfo
  }
  const entry = findMount(mnt)
  if (!entry || entry.fstype !== FSTYPE) throw new MountError(`${mnt} is not a mounted dmemfs`)
  return mnt
}

/** Closes the descriptors this process inherited on files of the mount (`exec 5< MNT/f; dmemfs mce ...`):
 *  the memory-failure path would otherwise name the dmemfs command itself as a holder of the file, to be
 *  killed with the shell that really holds it. Node opens nothing on the mount by itself, so every such
 *  descriptor above stderr is inherited and unused here. */
export function closeInheritedUnder (mnt: string): void {
  for (const name of fs.readdirSync('/proc/self/fd')) {
    const fd = Number(name)
    if (fd <= 2) continue
    let target: string
    try {
      target = fs.readlinkSync(`/proc/self/fd/${name}`)
    } catch {
      continue // the directory's own descriptor, closed by now
    }
    if (target === mnt || target.startsWith(mnt + '/')) fs.closeSync(fd)
  }
}

export function controlPath (mnt: string, name: string): string {
  return path.join(mnt, '.dmem', name)
}

/** Writes a request to a control file and reads the reply from the same descriptor. */
export function askControl (file: string, request: string): { ok: boolean, reply: string } {
  const fd = fs.openSync(file, 'r+')
  try {
    let ok = true
    try {
      fs.writeSync(fd, request)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === undefined) throw err
      ok = false
    }
    return { ok, reply: readAll(fd) }
  } finally {
    fs.closeSync(fd)
  }
}

/** A control file's whole text. Control files are direct_io and their st_size is no promise of their
 *  length, so read until end of file rather than by st_size (as readFileSync does). */
export function readControl (file: string): string {
  const fd = fs.openSync(file, 'r')
  try {
    return readAll(fd)
  } finally {
    fs.closeSync(fd)
  }
}

function readAll (fd: number): string {
  const chunks: Buffer[] = []
  let len = 0
  for (;;) {
    const buf = Buffer.alloc(1 << 20)
    const n = fs.readSync(fd, buf, 0, buf.length, len)
    if (n === 0) break
    chunks.push(buf.subarray(0, n))
    len += n
  }
  // Bytes, one char each: names in a control file's text are exact (see printBytes).
  return Buffer.concat(chunks).toString('latin1')
}

/** The first line of a control file's reply, without its `error: `. */
export function firstLine (reply: string): string {
  return reply.trim().split('\n')[0].replace(/^error: /, '')
}

/** The pool in at most `cells` cells per region: `.dmem/map` is read (never written, so any user who can
 *  read it gets the map) and its fine cells are merged, which keeps every count exact. */
export function readMap (mnt: string, cells: number): PoolMap {
  const map = parseMap(readControl(controlPath(mnt, 'map')))
  if (!map.ok) throw new MountError(map.error)
  return coarsenMap(map.value, cells)
}

export interface PfnRun {
  offset: number
  pfn: string
  frames: number
}

/** The mounted dmemfs holding `real` (a resolved path, as bytes): the deepest dmemfs mount point above it. */
export function dmemfsMountOf (real: string, file: string): string {
  const mounts = readMounts().filter(m => {
    const bytes = Buffer.from(m.mountpoint, 'utf8').toString('latin1')
    return m.fstype === FSTYPE && (real === bytes || real.startsWith(bytes + '/'))
  })
  if (mounts.length === 0) throw new MountError(`${file} is not on a dmemfs`)
  return mounts.reduce((a, b) => (b.mountpoint.length > a.mountpoint.length ? b : a)).mountpoint
}

/** The mount holding `file` (a byte string), which must be a regular file of it: not a directory, not a
 *  control file. */
export function dmemfsFileMount (file: string, shown: string): { mnt: string, ino: number, size: number } {
  // The native realpath: fs.realpathSync() itself works on strings and would decode the bytes.
  const real = fs.realpathSync.native(Buffer.from(file, 'latin1'), 'latin1')
  const mnt = dmemfsMountOf(real, shown)
  const st = fs.statSync(Buffer.from(real, 'latin1'))
  const mntBytes = Buffer.from(mnt, 'utf8').toString('latin1')
  const inControlDir = real.slice(mntBytes.length + 1).split('/')[0] === CONTROL_DIR
  if (!st.isFile() || inControlDir) throw new MountError(`${shown} is not a regular dmemfs file`)
  return { mnt, ino: st.ino, size: st.size }
}

export function fileRuns (mnt: string, ino: number): PfnRun[] {
  const runs = parsePfns(readControl(controlPath(mnt, 'pfns')), ino)
  if (!runs.ok) throw new MountError(runs.error)
  return runs.value.map(r => ({ offset: r.offset, pfn: '0x' + r.pfn.toString(16), frames: r.frames }))
}

/** `.dmem/poisoned`, parsed; null when this user may not read it (it is root's alone). */
export function readPoisoned (mnt: string): PoisonedLine[] | null {
  let text: string
  try {
    text = readControl(controlPath(mnt, 'poisoned'))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EACCES') return null
    throw err
  }
  const lines = parsePoisoned(text)
  if (lines === null) throw new MountError('bad line in .dmem/poisoned')
  return lines
}

/** The first PFNs of the soft-offlined dpages, from `.dmem/offline`. */
export function readOffline (mnt: string): Set<number> {
  const out = new Set<number>()
  for (const line of readControl(controlPath(mnt, 'offline')).split('\n')) {
    const m = /^0x([0-9a-f]+) /.exec(line)
    if (m) out.add(parseInt(m[1], 16))
  }
  return out
}
