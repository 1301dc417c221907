// The simulated dmem pool (the kernel's mm/dmem.c): reserved memory in regions grouped into nodes, a
// bitmap allocator per region, free counts, poison, and the reverse map from dpage to its owner.
//
// Dpages are numbered across the whole pool ("pool dpage" numbers, 0..totalDpages-1), region by region.
// Everything here is synchronous and knows nothing of files: an owner is an opaque (id, index) pair.

import { PAGE_SIZE, PoolLayout, RegionLayout } from './layout'
import { Tracer } from './trace'

export interface Region extends RegionLayout {
  base: number // pool dpage number of the region's first dpage
  buf: Buffer // the region's memory, allocated once, never grown
  bitmap: Uint32Array // 1 = in use (or taken out of service by poison)
  hint: number // next-free hint: allocation searches from here first
  free: number
}

export interface DmemNode {
  id: number
  regions: Region[]
  total: number
  free: number
  poisoned: number
  offline: number // soft-offlined: retired before failing, not poisoned
}

export interface DpageRun {
  first: number // pool dpage number
  count: number
}

export type UnpoisonResult = 'unpoisoned' | 'not-poisoned' | 'owned'

export const NO_OWNER = 0

// Per-dpage state bits in `flags`.
const DPAGE_POISONED = 1
// The dpage held data since mount, so it must be cleared before a new owner sees it. Memory never used
// since mount is known to be zero (Buffer.alloc), which saves clearing it on first use.
const DPAGE_DIRTY = 2
// Soft-offlined: retired from service before it failed (a free dpage at once, a used one once its data has
// moved and its owner lets it go). Not poisoned; kept out like a poisoned one.
const DPAGE_OFFLINE = 4

export class DmemPool {
  readonly dpageShift: number
  readonly dpageSize: number
  readonly framesPerDpage: number
  readonly regions: Region[]
  readonly nodes: DmemNode[]
  readonly total: number
  free: number
  poisoned = 0
  offline = 0
  readonly tracer = new Tracer()

  // Reverse map: owner id (0 = none) and the owner's index for each pool dpage. With the flags byte that is
  // 9 bytes a dpage, plus a bit in the bitmap.
  private readonly owner: Uint32Array
  private readonly ownerIndex: Uint32Array
  private readonly flags: Uint8Array

  constructor (readonly layout: PoolLayout) {
    this.dpageShift = layout.dpageShift
    this.dpageSize = layout.dpageSize
    this.framesPerDpage = this.dpageSize / PAGE_SIZE
    this.total = layout.totalDpages
    this.free = this.total
    this.nodes = layout.nodes.map(n => ({ id: n.id, regions: [], total: 0, free: 0, poisoned: 0, offline: 0 }))
    this.regions = []
    let base = 0
    for (const r of layout.regions) {
      const region = makeRegion(r, base, this.dpageSize)
      this.regions.push(region)
      const node = this.nodes[r.node]
      node.regions.push(region)
      node.total += r.dpages
      node.free += r.dpages
      base += r.dpages
    }
    this.owner = new Uint32Array(this.total)
    this.ownerIndex = new Uint32Array(this.total)
    this.flags = new Uint8Array(this.total)
  }

  /** Takes up to `tryMax` contiguous free dpages, trying `node` first and then the others in order.
   *  Returns null when the pool is exhausted. `ino` only labels the trace. */
  alloc (node: number, tryMax: number, ino = 0): DpageRun | null {
    const n = this.nodes.length
    for (let i = 0; i < n; i++) {
      const dnode = this.nodes[(node + i) % n]
      const region = dnode.free === 0 ? undefined : dnode.regions.find(r => r.free > 0)
      const run = region ? this.allocInRegion(dnode, region, tryMax) : null
      if (this.tracer.on) {
        // As the seed's trace_dmem_alloc_pages_node: once per node tried, addr 0 when it had nothing.
        const addr = run ? this.physOf(run.first).toString(16) : '0'
        this.tracer.emit(ino, 'dmem_alloc_pages_node',
          `addr 0x${addr} node ${dnode.id} try_max ${tryMax} result_nr ${run ? run.count : 0}`)
      }
      if (run) return run
    }
    return null
  }

  private allocInRegion (dnode: DmemNode, region: Region, tryMax: number): DpageRun {
    let pos = findZeroBit(region.bitmap, region.hint, region.dpages)
    if (pos < 0) pos = findZeroBit(region.bitmap, 0, region.dpages)
    let count = 1
    while (count < tryMax && pos + count < region.dpages && !testBit(region.bitmap, pos + count)) count++
    for (let i = 0; i < count; i++) setBit(region.bitmap, pos + i)
    region.hint = pos + count
    region.free -= count
    dnode.free -= count
    this.free -= count
    return { first: region.base + pos, count }
  }

  /** Returns a dpage to the pool, unless it is poisoned or offline: such a dpage never comes back. */
  release (dpage: number): void {
    if (this.tracer.on) {
      this.tracer.emit(this.owner[dpage], 'dmem_free_pages', `addr 0x${this.physOf(dpage).toString(16)} dpages_nr 1`)
    }
    this.owner[dpage] = NO_OWNER
    this.ownerIndex[dpage] = 0
    if (this.flags[dpage] & (DPAGE_POISONED | DPAGE_OFFLINE)) return
    this.putBack(dpage)
  }

  private putBack (dpage: number): void {
    const region = this.regionOf(dpage)
    const pos = dpage - region.base
    clearBit(region.bitmap, pos)
    this.flags[dpage] |= DPAGE_DIRTY
    if (pos < region.hint) region.hint = pos
    region.free++
    this.nodes[region.node].free++
    this.free++
  }

  isUsed (dpage: number): boolean {
    const region = this.regionOf(dpage)
    return testBit(region.bitmap, dpage - region.base)
  }

  /** How many of the pool dpages [start, end) a file owns, and how many are poisoned. */
  countRange (start: number, end: number): { used: number, poisoned: number, poisonedUsed: number } {
    let used = 0
    let poisoned = 0
    let poisonedUsed = 0 // poisoned dpages a file still owns: data lost, not just a frame out of service
    for (let d = start; d < end; d++) {
      const owned = this.owner[d] !== NO_OWNER
      if (owned) used++
      if (this.flags[d] & DPAGE_POISONED) {
        poisoned++
        if (owned) poisonedUsed++
      }
    }
    return { used, poisoned, poisonedUsed }
  }

  /** Touches every page of the pool now, as a real reservation has its memory ready: the first write to
   *  a dpage then costs no page faults. The memory stays zero, and resident. */
  prefault (): void {
    for (const region of this.regions) region.buf.fill(0)
  }

  // --- reverse map -------------------------------------------------------------------------------------

  setOwner (dpage: number, owner: number, index: number): void {
    this.owner[dpage] = owner
    this.ownerIndex[dpage] = index
  }

  ownerOf (dpage: number): number {
    return this.owner[dpage]
  }

  indexOf (dpage: number): number {
    return this.ownerIndex[dpage]
  }

  // --- memory ------------------------------------------------------------------------------------------

  /** Clears a newly allocated dpage outside [keepFrom, keepTo) if it held earlier data; the caller is
   *  about to write that range itself. */
  prepare (dpage: number, keepFrom: number, keepTo: number): void {
    if (!(this.flags[dpage] & DPAGE_DIRTY)) return
    this.flags[dpage] &= ~DPAGE_DIRTY
    const region = this.regionOf(dpage)
    const start = (dpage - region.base) * this.dpageSize
    region.buf.fill(0, start, start + keepFrom)
    region.buf.fill(0, start + keepTo, start + this.dpageSize)
  }

  regionOf (dpage: number): Region {
    const regions = this.regions
    let lo = 0
    let hi = regions.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if (regions[mid].base <= dpage) lo = mid
      else hi = mid - 1
    }
    return regions[lo]
  }

  /** Byte offset of a dpage inside its region's buffer. */
  offsetOf (region: Region, dpage: number): number {
    return (dpage - region.base) * this.dpageSize
  }

  // --- physical addresses ------------------------------------------------------------------------------

  physOf (dpage: number): number {
    const region = this.regionOf(dpage)
    return region.phys + (dpage - region.base) * this.dpageSize
  }

  pfnOf (dpage: number): number {
    return this.physOf(dpage) / PAGE_SIZE
  }

  /** The pool dpage holding a 4 KiB frame, or -1 if the PFN is outside every region. */
  dpageOfPfn (pfn: number): number {
    if (!Number.isSafeInteger(pfn) || pfn < 0) return -1
    const phys = pfn * PAGE_SIZE
    const region = this.regionOfPhys(phys)
    if (!region) return -1
    return region.base + Math.floor((phys - region.phys) / this.dpageSize)
  }

  private regionOfPhys (phys: number): Region | null {
    const regions = this.regions
    let lo = 0
    let hi = regions.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      const r = regions[mid]
      if (phys < r.phys) hi = mid - 1
      else if (phys >= r.phys + r.dpages * this.dpageSize) lo = mid + 1
      else return r
    }
    return null
  }

  // --- poison ------------------------------------------------------------------------------------------

  isPoisoned (dpage: number): boolean {
    return (this.flags[dpage] & DPAGE_POISONED) !== 0
  }

  /** Marks a dpage poisoned. A free dpage is taken out of service (its bit set, free counts drop); a used
   *  one stays with its owner until released, and is then kept out. An offline dpage is out of service
   *  already: it now counts as poisoned instead. Returns false if already poisoned. */
  poison (dpage: number): boolean {
    if (this.isPoisoned(dpage)) return false
    const region = this.regionOf(dpage)
    if (this.isOffline(dpage)) this.clearOffline(dpage)
    this.flags[dpage] |= DPAGE_POISONED
    this.nodes[region.node].poisoned++
    this.poisoned++
    this.keepOut(region, dpage)
    return true
  }

  /** A free dpage leaves the allocator's reach (its bit set, free counts drop); a used one already is,
   *  and release() will keep it out by its flags. */
  private keepOut (region: Region, dpage: number): void {
    const pos = dpage - region.base
    if (testBit(region.bitmap, pos)) return
    setBit(region.bitmap, pos)
    region.free--
    this.nodes[region.node].free--
    this.free--
  }

  /** Returns a poisoned dpage to service if no owner still holds it. */
  unpoison (dpage: number): UnpoisonResult {
    if (!this.isPoisoned(dpage)) return 'not-poisoned'
    if (this.owner[dpage] !== NO_OWNER) return 'owned'
    this.flags[dpage] &= ~DPAGE_POISONED
    const region = this.regionOf(dpage)
    this.nodes[region.node].poisoned--
    this.poisoned--
    this.putBack(dpage)
    return 'unpoisoned'
  }

  // --- soft offline ------------------------------------------------------------------------------------

  isOffline (dpage: number): boolean {
    return (this.flags[dpage] & DPAGE_OFFLINE) !== 0
  }

  /** Retires a dpage before it fails, as soft_offline_page() does. A free one leaves service now (free
   *  counts drop); a used one is only marked: its owner moves its data elsewhere and releases it, and
   *  release() keeps it out. Returns false if it is poisoned or offline already. */
  takeOffline (dpage: number): boolean {
    if (this.flags[dpage] & (DPAGE_POISONED | DPAGE_OFFLINE)) return false
    this.flags[dpage] |= DPAGE_OFFLINE
    const region = this.regionOf(dpage)
    this.nodes[region.node].offline++
    this.offline++
    this.keepOut(region, dpage)
    return true
  }

  /** Undoes takeOffline() of a used dpage whose data could not move. */
  cancelOffline (dpage: number): void {
    if (this.isOffline(dpage) && this.owner[dpage] !== NO_OWNER) this.clearOffline(dpage)
  }

  private clearOffline (dpage: number): void {
    this.flags[dpage] &= ~DPAGE_OFFLINE
    this.nodes[this.regionOf(dpage).node].offline--
    this.offline--
  }
}

function makeRegion (r: RegionLayout, base: number, dpageSize: number): Region {
  const words = Math.ceil(r.dpages / 32)
  const bitmap = new Uint32Array(words)
  // Bits past the region's end read as used, so a search never returns them.
  for (let pos = r.dpages; pos < words * 32; pos++) setBit(bitmap, pos)
  return { ...r, base, buf: Buffer.alloc(r.dpages * dpageSize), bitmap, hint: 0, free: r.dpages }
}

// Bit positions are region-local and below 2^32, so 32-bit bit operators are safe on them.

function testBit (bits: Uint32Array, pos: number): boolean {
  return (bits[pos >>> 5] & (1 << (pos & 31))) !== 0
}

function setBit (bits: Uint32Array, pos: number): void {
  bits[pos >>> 5] |= 1 << (pos & 31)
}

function clearBit (bits: Uint32Array, pos: number): void {
  bits[pos >>> 5] &= ~(1 << (pos & 31))
}

/** First clear bit at or after `from` and below `limit`, or -1. */
export function findZeroBit (bits: Uint32Array, from: number, limit: number): number {
  if (from >= limit) return -1
  let w = from >>> 5
  let word = bits[w] | ((1 << (from & 31)) - 1)
  for (;;) {
    if (word !== -1) {
      const free = ~word
      const pos = w * 32 + (31 - Math.clz32(free & -free))
      return pos < limit ? pos : -1
    }
    w++
    if (w >= bits.length) return -1
    word = bits[w] | 0
  }
}
