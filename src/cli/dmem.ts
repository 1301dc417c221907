// Reaching a mounted dmemfs from the command line: finding the mount, its control files, and the pool's map.

import * as fs from 'fs'
import * as path from 'path'
import { findMount, FSTYPE, MountError } from '../fuse/mount'
import { coarsenMap, parseMap, PoolMap } from '../statmap'

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
