// The shape of the reserved memory: which physical ranges belong to which node, and how they are carved
// into regions of whole dpages. Pure arithmetic, no memory is touched here.
//
// Physical addresses and PFNs exceed 2^32, so this file never uses JavaScript's 32-bit bit operators on
// them; all values stay below 2^53 and are exact as doubles.

export const PAGE_SHIFT = 12
export const PAGE_SIZE = 4096
export const KiB = 1024
export const MiB = 1024 * KiB
export const GiB = 1024 * MiB

// Where simulated reservations start when `dmem=` gives no address: above the 32-bit hole, as real high
// memory does.
export const DEFAULT_POOL_BASE = 4 * GiB
export const DEFAULT_ALIGN = 128 * MiB
// A region is one Buffer; Node 20 allows up to 4 GiB per Buffer, and smaller regions keep each allocation
// modest. A region always holds at least one dpage.
export const REGION_MAX_BYTES = 1 * GiB

export const DPAGE_SHIFTS = [12, 21, 30] as const

export interface DmemSpec {
  size: number
  addr: number | null
  align: number
}

export interface RegionLayout {
  id: number
  node: number
  phys: number // physical address of the region's first dpage (dpage aligned)
  dpages: number
}

export interface NodeLayout {
  id: number
  phys: number // start of the node's reservation, as given (may be unaligned to the dpage size)
  size: number
  unalignedPages: number // 4 KiB pages of the reservation that fall outside whole dpages
}

export interface PoolLayout {
  dpageShift: number
  dpageSize: number
  nodes: NodeLayout[]
  regions: RegionLayout[]
  registeredPages: number
  unalignedPages: number
  totalDpages: number
}

export type ParseResult<T> = { ok: true, value: T } | { ok: false, error: string }

function isPowerOfTwo (n: number): boolean {
  return n > 0 && Number.isInteger(Math.log2(n))
}

function roundUp (n: number, to: number): number {
  return Math.ceil(n / to) * to
}

function roundDown (n: number, to: number): number {
  return Math.floor(n / to) * to
}

const SUFFIX: Record<string, number> = { K: 1, M: 2, G: 3, T: 4, P: 5, E: 6 }

/** The kernel's memparse(): a number in C notation (decimal, 0x hex, leading-0 octal) and an optional
 *  K/M/G/T/P/E suffix. Returns null on anything else, including values past 2^53. */
export function memparse (text: string): number | null {
  const m = /^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)([kKmMgGtTpPeE]?)$/.exec(text)
  if (!m) return null
  const base = parseCNumber(m[1])
  if (base === null) return null
  const shift = m[2] ? SUFFIX[m[2].toUpperCase()] * 10 : 0
  const value = base * 2 ** shift
  return Number.isSafeInteger(value) ? value : null
}

function parseCNumber (digits: string): number | null {
  let value: number
  if (/^0[xX]/.test(digits)) value = parseInt(digits.slice(2), 16)
  else if (digits.length > 1 && digits[0] === '0') value = parseInt(digits.slice(1), 8)
  else value = parseInt(digits, 10)
  return Number.isSafeInteger(value) ? value : null
}

/** `dmem=size[@addr][:align]`, the seed's boot parameter syntax. */
export function parseDmemSpec (text: string): ParseResult<DmemSpec> {
  const m = /^([^@:]+)(?:@([^@:]+))?(?::([^@:]+))?$/.exec(text)
  if (!m) return { ok: false, error: `cannot parse '${text}' (expected size[@addr][:align])` }
  const size = memparse(m[1])
  if (size === null || size === 0) return { ok: false, error: `bad size '${m[1]}'` }
  const addr = m[2] === undefined ? null : memparse(m[2])
  if (m[2] !== undefined && addr === null) return { ok: false, error: `bad address '${m[2]}'` }
  if (addr === 0) return { ok: false, error: 'address must not be 0' }
  const align = m[3] === undefined ? DEFAULT_ALIGN : memparse(m[3])
  if (align === null || !isPowerOfTwo(align) || align < PAGE_SIZE) {
    return { ok: false, error: `align '${m[3]}' is not a power of two of at least 4K` }
  }
  if (size % align !== 0) return { ok: false, error: `size ${m[1]} is not a multiple of align ${fmtSize(align)}` }
  if (addr !== null && addr % align !== 0) {
    return { ok: false, error: `address ${m[2]} is not aligned to ${fmtSize(align)}` }
  }
  return { ok: true, value: { size, addr, align } }
}

/** Lays out `nodes` reservations of `spec.size` each. Without an address each node gets its own range
 *  starting at 4 GiB, a GiB apart at least; with one, node ranges follow each other from that address. */
export function layoutPool (spec: DmemSpec, nodeCount: number, dpageShift: number): ParseResult<PoolLayout> {
  const dpageSize = 2 ** dpageShift
  const nodes: NodeLayout[] = []
  const regions: RegionLayout[] = []
  const stride = spec.addr === null ? roundUp(spec.size, Math.max(spec.align, GiB)) : spec.size
  const first = spec.addr ?? roundUp(DEFAULT_POOL_BASE, spec.align)
  for (let id = 0; id < nodeCount; id++) {
    const phys = first + id * stride
    const start = roundUp(phys, dpageSize)
    const end = Math.max(start, roundDown(phys + spec.size, dpageSize))
    const unalignedPages = (spec.size - (end - start)) / PAGE_SIZE
    nodes.push({ id, phys, size: spec.size, unalignedPages })
    carveRegions(regions, id, start, end, dpageSize)
  }
  const totalDpages = regions.reduce((n, r) => n + r.dpages, 0)
  if (totalDpages === 0) {
    return { ok: false, error: `pool of ${fmtSize(spec.size)} per node holds no whole ${fmtSize(dpageSize)} dpage` }
  }
  if (!Number.isSafeInteger(first + nodeCount * stride)) return { ok: false, error: 'pool ends past 2^53' }
  return {
    ok: true,
    value: {
      dpageShift,
      dpageSize,
      nodes,
      regions,
      registeredPages: (spec.size / PAGE_SIZE) * nodeCount,
      unalignedPages: nodes.reduce((n, x) => n + x.unalignedPages, 0),
      totalDpages
    }
  }
}

function carveRegions (out: RegionLayout[], node: number, start: number, end: number, dpageSize: number): void {
  const maxBytes = Math.max(dpageSize, roundDown(REGION_MAX_BYTES, dpageSize))
  for (let phys = start; phys < end; phys += maxBytes) {
    const bytes = Math.min(maxBytes, end - phys)
    out.push({ id: out.length, node, phys, dpages: bytes / dpageSize })
  }
}

/** 4096 -> "4K", 2097152 -> "2M", as the kernel prints sizes in its messages. */
/** A PFN, address or flag word as the kernel prints it with %#lx. */
export function hex (n: number): string {
  return '0x' + n.toString(16)
}

export function fmtSize (bytes: number): string {
  const units = ['', 'K', 'M', 'G', 'T', 'P']
  let i = 0
  while (i < units.length - 1 && bytes >= 1024 && bytes % 1024 === 0) {
    bytes /= 1024
    i++
  }
  return `${bytes}${units[i]}`
}
