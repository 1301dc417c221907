// Whether this machine can hold a pool, decided before anything is allocated. Mounting allocates each
// region as one Buffer (address space: no memory until a page is touched) and, for the whole pool, a bitmap
// bit and 9 bytes of per-dpage tables (owner, owner's index, flags), which become memory as the pool is
// used. A pool past what the machine can map or keep would otherwise take minutes of allocation and then
// fail with nothing said. Pure: the machine's figures come in as MachineLimits.

import { fmtSize, PoolLayout } from './layout'

// What the pool costs per dpage besides its data: DmemPool's owner (4 bytes), ownerIndex (4) and flags (1)
// tables and the regions' allocation bitmaps (one bit).
export const BOOKKEEPING_BYTES_PER_DPAGE = 4 + 4 + 1 + 1 / 8
// The per-dpage tables are each one typed array; V8 (Node 20) allows at most 2^32 elements in one.
export const MAX_TABLE_ENTRIES = 2 ** 32
// x86-64 user address space (47 bits, 4-level paging; 5-level machines map above it only on request).
export const USER_ADDRESS_SPACE = 2 ** 47
// Mappings and address space the daemon needs besides the pool: V8's heap, thread stacks, libraries.
export const MAP_HEADROOM = 1024
export const ADDRESS_HEADROOM = 2 ** 32

export interface MachineLimits {
  memAvailable: number // bytes, /proc/meminfo MemAvailable: what can be used without swapping
  memTotal: number // bytes, MemTotal + SwapTotal: the heuristic overcommit mode's cap on one allocation
  overcommit: number // vm.overcommit_memory: 0 heuristic, 1 always, 2 strict
  commitFree: number // bytes, CommitLimit - Committed_AS: what strict overcommit still grants
  addressSpaceFree: number // bytes, RLIMIT_AS - VmSize (Infinity when unlimited)
  addressSpaceUsed: number // bytes, VmSize
  maxMapCount: number // vm.max_map_count
  mapsUsed: number // mappings this process has now
}

export interface PoolCost {
  dpages: number
  data: number // bytes of address space for the regions' Buffers
  bookkeeping: number // bytes of tables and bitmaps
  mappings: number // one per region Buffer, one per pool-wide table
  largestAllocation: number // bytes: the largest single allocation
}

export function poolCost (layout: PoolLayout): PoolCost {
  const dpages = layout.totalDpages
  const bitmaps = layout.regions.reduce((n, r) => n + Math.ceil(r.dpages / 32) * 4, 0)
  const tables = dpages * (4 + 4 + 1)
  const largestRegion = layout.regions.reduce((n, r) => Math.max(n, r.dpages), 0) * layout.dpageSize
  return {
    dpages,
    data: dpages * layout.dpageSize,
    bookkeeping: tables + bitmaps,
    mappings: layout.regions.length + 3,
    largestAllocation: Math.max(largestRegion, dpages * 4)
  }
}

/** Null when the pool fits; otherwise one line naming the limit it is past. */
export function checkPoolFits (layout: PoolLayout, machine: MachineLimits): string | null {
  const cost = poolCost(layout)
  const pool = `a pool of ${describeSize(cost.data)} (${cost.dpages} dpages of ${fmtSize(layout.dpageSize)})`
  if (cost.bookkeeping > machine.memAvailable) {
    return `${pool} needs ${approx(cost.bookkeeping)} of memory for its bookkeeping ` +
      `(${BOOKKEEPING_BYTES_PER_DPAGE} bytes a dpage); this machine has ${approx(machine.memAvailable)} ` +
      'available (MemAvailable); use fewer or larger dpages'
  }
  if (cost.dpages > MAX_TABLE_ENTRIES) {
    return `${pool} has more dpages than one table holds (${MAX_TABLE_ENTRIES}); use larger dpages`
  }
  const mapsFree = machine.maxMapCount - machine.mapsUsed - MAP_HEADROOM
  if (cost.mappings > mapsFree) {
    return `${pool} needs ${cost.mappings} memory mappings (one a region of at most 1G); ` +
      `this process may add ${Math.max(0, mapsFree)} (vm.max_map_count ${machine.maxMapCount})`
  }
  const bytes = cost.data + cost.bookkeeping
  const userFree = USER_ADDRESS_SPACE - machine.addressSpaceUsed - ADDRESS_HEADROOM
  if (bytes > userFree) {
    return `${pool} needs ${approx(bytes)} of address space; a process has ${approx(USER_ADDRESS_SPACE)} ` +
      `(47-bit), ${approx(Math.max(0, userFree))} of it free`
  }
  if (bytes > machine.addressSpaceFree - ADDRESS_HEADROOM) {
    return `${pool} needs ${approx(bytes)} of address space; ulimit -v (RLIMIT_AS) leaves ` +
      `${approx(Math.max(0, machine.addressSpaceFree - ADDRESS_HEADROOM))}`
  }
  if (machine.overcommit === 2 && bytes > machine.commitFree) {
    return `${pool} needs ${approx(bytes)} of commit charge; strict overcommit (vm.overcommit_memory=2) ` +
      `leaves ${approx(Math.max(0, machine.commitFree))} (CommitLimit - Committed_AS)`
  }
  if (machine.overcommit === 0 && cost.largestAllocation > machine.memTotal) {
    return `${pool} needs single allocations of ${approx(cost.largestAllocation)}; heuristic overcommit ` +
      `(vm.overcommit_memory=0) refuses any larger than memory and swap, ${approx(machine.memTotal)}`
  }
  return null
}

/** Exact when the size is a whole number of units (64T), else one decimal (146.3G). */
function describeSize (bytes: number): string {
  const exact = fmtSize(bytes)
  return /^[0-9]+[KMGTP]$/.test(exact) ? exact : approx(bytes)
}

function approx (bytes: number): string {
  if (bytes === Infinity) return 'unlimited'
  const units = ['', 'K', 'M', 'G', 'T', 'P']
  let i = 0
  let n = bytes
  while (i < units.length - 1 && n >= 1024) {
    n /= 1024
    i++
  }
  return `${n.toFixed(1).replace(/\.0$/, '')}${units[i]}`
}
