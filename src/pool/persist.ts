// Poison that survives a remount, as the seed keeps a region's error bits across unmount and mount: a
// small text file naming the pool's layout and its poisoned PFNs. Pure text in and out; reading and
// writing the file is the mount's business.

import { ParseResult, PoolLayout } from './layout'
import { DmemPool } from './pool'

const MAGIC = '# dmemfs poison file v1'

/** One line that identifies a layout: the dpage size and every region's physical start and size. */
export function layoutSignature (layout: PoolLayout): string {
  const regions = layout.regions.map(r => `${r.node}:0x${r.phys.toString(16)}+${r.dpages}`).join(',')
  return `dpage_shift=${layout.dpageShift} regions=${regions}`
}

/** The first PFN of every poisoned dpage. */
export function poisonedPfns (pool: DmemPool): number[] {
  const pfns: number[] = []
  if (pool.poisoned === 0) return pfns
  for (let dpage = 0; dpage < pool.total; dpage++) {
    if (pool.isPoisoned(dpage)) pfns.push(pool.pfnOf(dpage))
  }
  return pfns
}

export function renderPoisonFile (pool: DmemPool): string {
  const lines = [MAGIC, `layout ${layoutSignature(pool.layout)}`]
  for (const pfn of poisonedPfns(pool)) lines.push(`0x${pfn.toString(16)}`)
  return lines.join('\n') + '\n'
}

/** The PFNs a poison file records for this layout; an error if the file is not one, or was written for
 *  another layout (applying it would poison the wrong memory). */
export function parsePoisonFile (text: string, layout: PoolLayout): ParseResult<number[]> {
  const lines = text.split('\n').filter(l => l.trim() !== '')
  if (lines[0] !== MAGIC) return { ok: false, error: 'is not a dmemfs poison file' }
  const expected = `layout ${layoutSignature(layout)}`
  if (lines[1] !== expected) {
    return { ok: false, error: `was written for another pool layout (${(lines[1] ?? '').slice(7, 120)}; this one is ${expected.slice(7, 120)})` }
  }
  const pfns: number[] = []
  for (const line of lines.slice(2)) {
    if (!/^0x[0-9a-f]+$/.test(line)) return { ok: false, error: `has a bad line '${line.slice(0, 40)}'` }
    pfns.push(parseInt(line, 16))
  }
  return { ok: true, value: pfns }
}
