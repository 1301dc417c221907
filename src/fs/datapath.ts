// The native data path's TypeScript side (native/datapath.c does the copies). READ and WRITE of regular-file
// data are served on libfuse's threads when every dpage they touch is in the native mirror; everything the
// mirror holds is decided here:
// - which file index is served from which dpage: an index is mirrored once its dpage is allocated and
//   ready, and unmirrored before its dpage is poisoned, moved, freed or zeroed (the unmap call returns only
//   when no native copy on it is running, so TypeScript may then change the dpage);
// - each file's size: native reads stop at it, native writes stay inside it (a write that grows a file is
//   TypeScript's, which then publishes the new size), so a native write never changes the size;
// - which handles are served (regular files, O_APPEND handles only for reads), and whether the path is on
//   (not with native=0, not while tracing).
// One writer per field: the JavaScript thread writes the mirror (every call takes the native side's lock for
// writing); libfuse threads write only the per-file time stamps below, which TypeScript folds into the inode
// before it shows or changes its times.

import { anchorNs } from './clock'

/** The native module (native/build/Release/dmemfs_datapath.node). */
export interface DataPathBinding {
  attach (): boolean
  setup (dpageSize: number, clockAnchor: bigint): void
  xattrPrefix (prefix: string): void
  addRegion (firstDpage: number, count: number, mem: Buffer): void
  setEnabled (on: boolean): void
  fileNew (ino: number, stamps: BigInt64Array, at: number): void
  fileFree (ino: number): void
  map (ino: number, index: number, firstDpage: number, count: number): void
  unmap (ino: number, index: number): void
  resize (ino: number, size: number, keepIndexes: number): void
  open (fh: number, ino: number, append: boolean): void
  close (fh: number): void
  stats (): number[] // in the order of DATAPATH_COUNTERS
}

const STAMP_SLAB = 1024 // files per slab of time stamps

/** A regular file's native mirror: its stamps ([at] last native write, [at + 1] last native read, in
 *  nowNs() nanoseconds; 0n when none) and the calls that keep the mirror true. */
export class NativeFile {
  seenWrite = 0n
  seenRead = 0n

  readonly at: number // where this file's two stamps start in `stamps`

  constructor (
    private readonly dp: DataPath, readonly ino: number, readonly stamps: BigInt64Array, readonly slot: number
  ) {
    this.at = (slot % STAMP_SLAB) * 2
  }

  map (index: number, firstDpage: number, count: number): void {
    this.dp.binding.map(this.ino, index, firstDpage, count)
  }

  unmap (index: number): void {
    this.dp.binding.unmap(this.ino, index)
  }

  /** Publishes the size; indexes from `keep` on are unmirrored (-1: none). */
  resize (size: number, keep = -1): void {
    this.dp.binding.resize(this.ino, size, keep)
  }

  /** The times of native writes and reads since the last call, or 0n. */
  lastWrite (): bigint {
    const w = this.stamps[this.at]
    if (w <= this.seenWrite) return 0n
    this.seenWrite = w
    return w
  }

  lastRead (): bigint {
    const r = this.stamps[this.at + 1]
    if (r <= this.seenRead) return 0n
    this.seenRead = r
    return r
  }

  free (): void {
    this.dp.fileFree(this)
  }
}

export class DataPath {
  private readonly slabs: BigInt64Array[] = []
  private readonly freeSlots: number[] = []
  private nextSlot = 0
  private wanted = true
  private tracing = false

  constructor (readonly binding: DataPathBinding, dpageSize: number) {
    binding.setup(dpageSize, anchorNs)
  }

  /** Only names beginning with `prefix` can hold an extended attribute, so a GETXATTR of any other (the
   *  kernel's security.capability before each write) is answered ENODATA on the libfuse thread. */
  xattrsOnlyUnder (prefix: string): void {
    this.binding.xattrPrefix(prefix)
  }

  addRegion (firstDpage: number, count: number, mem: Buffer): void {
    this.binding.addRegion(firstDpage, count, mem)
  }

  /** On unless the mount said native=0 or tracing is on. */
  setWanted (on: boolean): void {
    this.wanted = on
    this.update()
  }

  setTracing (on: boolean): void {
    this.tracing = on
    this.update()
  }

  get enabled (): boolean {
    return this.wanted && !this.tracing
  }

  private update (): void {
    this.binding.setEnabled(this.enabled)
  }

  fileNew (ino: number): NativeFile {
    const slot = this.freeSlots.pop() ?? this.nextSlot++
    const slabIndex = Math.floor(slot / STAMP_SLAB)
    // A slab is its own ArrayBuffer, never freed: the native side keeps pointers into it.
    if (slabIndex === this.slabs.length) this.slabs.push(new BigInt64Array(new ArrayBuffer(STAMP_SLAB * 16)))
    const stamps = this.slabs[slabIndex]
    const at = (slot % STAMP_SLAB) * 2
    stamps[at] = 0n
    stamps[at + 1] = 0n
    this.binding.fileNew(ino, stamps, at)
    return new NativeFile(this, ino, stamps, slot)
  }

  fileFree (file: NativeFile): void {
    this.binding.fileFree(file.ino)
    this.freeSlots.push(file.slot)
  }

  open (fh: number, ino: number, append: boolean): void {
    this.binding.open(fh, ino, append)
  }

  close (fh: number): void {
    this.binding.close(fh)
  }

  render (): string {
    return renderDataPath(this.enabled, this.binding.stats())
  }
}

/** The native side's counters, in the order its stats() gives them. `replied`: reads among `reads` answered
 *  straight from the pool to the FUSE device, without a copy into libfuse's buffer (those of 64 KiB and
 *  more); `getxattr`: GETXATTRs of names outside the user namespace, answered ENODATA; `spliced`: writes
 *  among `writes` whose data went from libfuse's pipe to the pool in one copy (requests read by splice, on
 *  a big-requests mount). */
export const DATAPATH_COUNTERS = ['reads', 'writes', 'passed', 'replied', 'getxattr', 'spliced'] as const

/** What `.dmem/datapath` shows; without a native data path, `renderDataPath(false, [])`. */
export function renderDataPath (enabled: boolean, stats: readonly number[]): string {
  const lines = DATAPATH_COUNTERS.map((name, i) => `${name} ${stats[i] ?? 0}\n`)
  return `native ${enabled ? 'on' : 'off'}\n${lines.join('')}`
}
