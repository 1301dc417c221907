// The file data path: copies between a caller's buffer and pool dpages, allocating a dpage the first time
// an index is written. Holes read as zeros. Invariant: bytes of an allocated dpage past the file's size
// are zero, so growing a file (by truncate or by a write past the end) exposes only zeros.

import { DmemPool, DpageRun, Region } from '../pool/pool'
import { EFBIG, EINVAL, EIO, ENOSPC, EOPNOTSUPP, Errno } from './errno'
import { Inode } from './inode'

export interface DataLimits {
  maxAllocTry: number // contiguous dpages one allocation tries to take (the seed's max_alloc_try_dpages)
  maxSize: number // largest file size in bytes
}

export function fileRead (pool: DmemPool, inode: Inode, buf: Buffer, len: number, pos: number): number | Errno {
  const table = inode.dpages!
  if (pos >= inode.size) return 0
  len = Math.min(len, buf.length, inode.size - pos)
  const ds = pool.dpageSize
  let done = 0
  while (done < len) {
    const off = pos + done
    const index = Math.floor(off / ds)
    const inPage = off - index * ds
    const n = Math.min(ds - inPage, len - done)
    const dpage = table.get(index)
    if (dpage === undefined) {
      buf.fill(0, done, done + n)
      done += n
    } else if (pool.isPoisoned(dpage)) {
      return done > 0 ? done : EIO
    } else {
      const region = pool.regionOf(dpage)
      const m = stretch(pool, table, region, index, dpage, inPage, len - done)
      const start = pool.offsetOf(region, dpage) + inPage
      region.buf.copy(buf, done, start, start + m)
      done += m
    }
  }
  return done
}

/** How many bytes, up to `want`, from byte `inPage` of file dpage `index` (pool dpage `dpage`) can be
 *  copied in one go: the file's next dpages are the pool's next dpages of the same region, unpoisoned.
 *  A file written in order mostly is, and one copy per request beats one per dpage. */
function stretch (
  pool: DmemPool, table: Map<number, number>, region: Region, index: number, dpage: number, inPage: number, want: number
): number {
  const ds = pool.dpageSize
  const regionEnd = region.base + region.dpages
  let n = Math.min(ds - inPage, want)
  for (let i = 1; n < want; i++) {
    const next = dpage + i
    if (next >= regionEnd || table.get(index + i) !== next || pool.isPoisoned(next)) break
    n = Math.min(n + ds, want)
  }
  return n
}

export function fileWrite (
  pool: DmemPool, inode: Inode, buf: Buffer, len: number, pos: number, limits: DataLimits
): number | Errno {
  if (pos >= limits.maxSize) return EFBIG
  len = Math.min(len, buf.length, limits.maxSize - pos)
  const table = inode.dpages!
  const ds = pool.dpageSize
  const end = pos + len
  let done = 0
  let error: Errno = 0
  let fresh: Array<[number, DpageRun]> | null = null // file index and dpages of each run this write allocated
  while (done < len) {
    const off = pos + done
    const index = Math.floor(off / ds)
    const inPage = off - index * ds
    let dpage = table.get(index)
    if (dpage === undefined) {
      const run = allocForWrite(pool, inode, index, pos, end, limits.maxAllocTry)
      if (!run) {
        error = ENOSPC
        break
      }
      if (inode.native) (fresh ??= []).push([index, run])
      dpage = run.first
    } else if (pool.isPoisoned(dpage)) {
      error = EIO
      break
    }
    const region = pool.regionOf(dpage)
    const m = stretch(pool, table, region, index, dpage, inPage, len - done)
    buf.copy(region.buf, pool.offsetOf(region, dpage) + inPage, done, done + m)
    done += m
  }
  // Only now may the native path serve the new dpages: until the copy above, a reused dpage still held the
  // bytes of its last owner.
  if (fresh) for (const [index, run] of fresh) inode.native!.map(index, run.first, run.count)
  if (done === 0) return error
  if (pos + done > inode.size) {
    inode.size = pos + done
    inode.native?.resize(inode.size)
  }
  inode.touchModified()
  return done
}

/** Allocates dpages for the hole at `index` and the holes right after it that this write [pos, end) also
 *  covers, up to maxAllocTry at once, and returns them, the first for `index` (or null when the pool is
 *  full). */
function allocForWrite (
  pool: DmemPool, inode: Inode, index: number, pos: number, end: number, maxAllocTry: number
): DpageRun | null {
  const ds = pool.dpageSize
  const run = allocRun(pool, inode, index, Math.floor((end - 1) / ds), maxAllocTry)
  if (!run) return null
  for (let i = 0; i < run.count; i++) {
    const pageStart = (index + i) * ds
    pool.prepare(run.first + i, Math.max(pos, pageStart) - pageStart, Math.min(end, pageStart + ds) - pageStart)
    insertDpage(pool, inode, index + i, run.first + i)
  }
  return run
}

/** Takes up to maxAllocTry contiguous dpages for the hole at `index` and the holes after it, up to
 *  `lastIndex`; null when the pool is full. */
function allocRun (pool: DmemPool, inode: Inode, index: number, lastIndex: number, maxAllocTry: number): DpageRun | null {
  const table = inode.dpages!
  let want = 1
  while (want < maxAllocTry && index + want <= lastIndex && !table.has(index + want)) want++
  return pool.alloc(inode.node, want, inode.ino)
}

/** File index `index` is backed by `dpage` from now on: the reverse map and the table say so. */
function insertDpage (pool: DmemPool, inode: Inode, index: number, dpage: number): void {
  pool.setOwner(dpage, inode.ino, index)
  inode.dpages!.set(index, dpage)
  if (pool.tracer.on) traceEntry(pool, inode, 'dmemfs_radix_tree_insert', index, dpage)
}

/** File index `index` (backed by `dpage`) is a hole from now on; the dpage goes back to the pool unless
 *  it is poisoned or offline. The native path must no longer serve it. */
function removeDpage (pool: DmemPool, inode: Inode, index: number, dpage: number): void {
  inode.dpages!.delete(index)
  if (pool.tracer.on) traceEntry(pool, inode, 'dmemfs_radix_tree_delete', index, dpage)
  pool.release(dpage)
}

export function fileTruncate (pool: DmemPool, inode: Inode, size: number, limits: DataLimits): 0 | Errno {
  if (!Number.isSafeInteger(size) || size < 0) return EINVAL
  if (size > limits.maxSize) return EFBIG
  if (size < inode.size) shrink(pool, inode, size)
  else inode.native?.resize(size)
  inode.size = size
  inode.touchModified()
  return 0
}

function shrink (pool: DmemPool, inode: Inode, size: number): void {
  const table = inode.dpages!
  const ds = pool.dpageSize
  const keep = Math.ceil(size / ds)
  // First the native path: once it stops at the new size and serves no dpage past it, those dpages may be
  // freed and the tail zeroed without a native copy racing either.
  inode.native?.resize(size, keep)
  for (const [index, dpage] of table) {
    if (index >= keep) removeDpage(pool, inode, index, dpage)
  }
  const tail = size % ds
  const last = table.get(keep - 1)
  if (tail === 0 || last === undefined || pool.isPoisoned(last)) return
  const region = pool.regionOf(last)
  const start = pool.offsetOf(region, last)
  region.buf.fill(0, start + tail, start + ds)
}

/** Frees every dpage of an inode that is going away. Poisoned dpages stay out of the pool. */
export function fileEvict (pool: DmemPool, inode: Inode): void {
  const table = inode.dpages
  if (!table) return
  inode.native?.free()
  inode.native = null
  for (const [index, dpage] of table) {
    if (pool.tracer.on) traceEntry(pool, inode, 'dmemfs_radix_tree_delete', index, dpage)
    pool.release(dpage)
  }
  table.clear()
}

/** The seed's dmemfs_radix_tree_insert/delete events: the file index and the entry, which in dmemfs
 *  encodes the dpage's physical address. */
function traceEntry (pool: DmemPool, inode: Inode, event: string, index: number, dpage: number): void {
  pool.tracer.emit(inode.ino, event, `index ${index} entry 0x${pool.physOf(dpage).toString(16)}`)
}

/** Moves file dpage `index` to a fresh dpage, `node` first and then the others in order, as soft offline
 *  migrates a page: the bytes are copied, the table and the reverse map point at the new dpage, and the
 *  old one is released (the caller has marked it so that it stays out). Returns the new dpage, or -1 when
 *  no dpage is free. */
export function fileMigrateDpage (pool: DmemPool, inode: Inode, index: number, node: number): number {
  const table = inode.dpages!
  const old = table.get(index)
  if (old === undefined) return -1
  const run = pool.alloc(node, 1, inode.ino)
  if (!run) return -1
  // No native write may land in the old dpage after its bytes are copied.
  inode.native?.unmap(index)
  const to = run.first
  const from = pool.regionOf(old)
  const dest = pool.regionOf(to)
  const start = pool.offsetOf(from, old)
  from.buf.copy(dest.buf, pool.offsetOf(dest, to), start, start + pool.dpageSize)
  pool.prepare(to, 0, pool.dpageSize) // every byte was just written: only clears the dirty mark
  pool.setOwner(to, inode.ino, index)
  table.set(index, to)
  if (pool.tracer.on) {
    traceEntry(pool, inode, 'dmemfs_radix_tree_delete', index, old)
    traceEntry(pool, inode, 'dmemfs_radix_tree_insert', index, to)
  }
  if (!pool.isPoisoned(old)) inode.native?.map(index, to, 1)
  pool.release(old)
  return to
}

// fallocate(2) modes (include/uapi/linux/falloc.h).
export const FALLOC_FL_KEEP_SIZE = 0x01
export const FALLOC_FL_PUNCH_HOLE = 0x02

/** fallocate(2) as tmpfs answers it: mode 0 and KEEP_SIZE take dpages for the range (all or none: on
 *  ENOSPC the dpages this call took go back); PUNCH_HOLE|KEEP_SIZE frees the whole dpages inside the range
 *  and zeroes the partial ones at its ends. Every other mode is EOPNOTSUPP. */
export function fileFallocate (
  pool: DmemPool, inode: Inode, mode: number, offset: number, length: number, limits: DataLimits
): 0 | Errno {
  if (mode !== 0 && mode !== FALLOC_FL_KEEP_SIZE && mode !== (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) return EOPNOTSUPP
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0) return EINVAL
  const end = offset + length
  if (end > limits.maxSize) return EFBIG
  if (mode & FALLOC_FL_PUNCH_HOLE) {
    punchHole(pool, inode, offset, end)
    inode.touchModified()
    return 0
  }
  if (!allocRange(pool, inode, offset, end, limits.maxAllocTry)) return ENOSPC
  if (!(mode & FALLOC_FL_KEEP_SIZE) && end > inode.size) {
    inode.size = end
    inode.native?.resize(end)
    inode.touchModified()
  }
  return 0
}

/** Takes a zeroed dpage for every hole of [start, end), up to maxAllocTry contiguous ones at a time; gives
 *  back what it took when the pool runs out. The native path gets the new dpages only once all are taken:
 *  a write it served into one would otherwise be lost when the rollback gives that dpage back. */
function allocRange (pool: DmemPool, inode: Inode, start: number, end: number, maxAllocTry: number): boolean {
  const table = inode.dpages!
  const ds = pool.dpageSize
  const lastIndex = Math.floor((end - 1) / ds)
  const taken: Array<{ index: number, first: number, count: number }> = []
  for (let index = Math.floor(start / ds); index <= lastIndex; index++) {
    if (table.has(index)) continue
    const run = allocRun(pool, inode, index, lastIndex, maxAllocTry)
    if (!run) {
      for (const t of taken) for (let i = 0; i < t.count; i++) dropIndex(pool, inode, t.index + i)
      return false
    }
    for (let i = 0; i < run.count; i++) {
      pool.prepare(run.first + i, 0, 0)
      insertDpage(pool, inode, index + i, run.first + i)
    }
    taken.push({ index, first: run.first, count: run.count })
    index += run.count - 1
  }
  for (const t of taken) inode.native?.map(t.index, t.first, t.count) // zeroed above: served from now on
  return true
}

function punchHole (pool: DmemPool, inode: Inode, start: number, end: number): void {
  const table = inode.dpages!
  const ds = pool.dpageSize
  const first = Math.ceil(start / ds) // first dpage wholly inside
  const last = Math.floor(end / ds) // first dpage past the whole ones
  // Whichever is shorter: the range's indices, or the table's entries.
  if (last - first <= table.size) {
    for (let index = first; index < last; index++) dropIndex(pool, inode, index)
  } else {
    for (const index of table.keys()) if (index >= first && index < last) dropIndex(pool, inode, index)
  }
  zeroPart(pool, inode, start, Math.min(end, first * ds))
  if (last >= first) zeroPart(pool, inode, Math.max(start, last * ds), end)
}

/** Zeroes [from, to) inside one dpage, if it is allocated and readable. */
function zeroPart (pool: DmemPool, inode: Inode, from: number, to: number): void {
  if (from >= to) return
  const ds = pool.dpageSize
  const index = Math.floor(from / ds)
  const dpage = inode.dpages!.get(index)
  if (dpage === undefined || pool.isPoisoned(dpage)) return
  const region = pool.regionOf(dpage)
  const base = pool.offsetOf(region, dpage) - index * ds
  region.buf.fill(0, base + from, base + to)
}

function dropIndex (pool: DmemPool, inode: Inode, index: number): void {
  const table = inode.dpages!
  const dpage = table.get(index)
  if (dpage === undefined) return
  // First the native path: once it serves the dpage no more, the dpage may go back to the pool.
  inode.native?.unmap(index)
  removeDpage(pool, inode, index, dpage)
}

/** A dpage of this file was just poisoned: the native path stops serving it (TypeScript answers EIO),
 *  and once this returns no native copy reads it any more. */
export function filePoisoned (inode: Inode, index: number): void {
  inode.native?.unmap(index)
}
