// What is poisoned, as a badblocks list: for each poisoned dpage, the PFN that failed and what the dpage
// held at that moment (free, or which file and where), when, and with which flags. The pool only knows
// that a dpage is poisoned; this book remembers why, for `.dmem/poisoned` and `dmemfs stat --json`.

import { nameEscape, nameForJson, nameUnescape } from '../fs/name'
import { DmemPool } from '../pool/pool'
import { flagNames } from './input'
import { MceReport } from './memory-failure'
import { hex } from '../pool/layout'

export interface PoisonRecord {
  pfn: number // the frame that failed
  dpage: number // pool dpage number
  dpagePfn: number
  node: number
  state: 'free' | 'used' | 'kept' // kept: poisoned before this mount (poison_file)
  ino: number | null
  offset: number | null // byte offset of the failed frame in the file
  path: string | null
  time: number | null // ms since the epoch; null when not known (kept)
  flags: number
}

export class PoisonBook {
  private readonly records = new Map<number, PoisonRecord>()

  constructor (private readonly pool: DmemPool) {}

  /** Notes a memory failure that poisoned a dpage (not one that found it poisoned already). */
  note (r: MceReport): void {
    if (r.state === 'already-poisoned') return
    this.records.set(r.dpage, {
      pfn: r.pfn,
      dpage: r.dpage,
      dpagePfn: r.dpagePfn,
      node: r.node,
      state: r.state,
      ino: r.file ? r.file.ino : null,
      offset: r.file ? r.file.offset : null,
      path: r.file ? r.file.path : null,
      time: r.time,
      flags: r.flags
    })
  }

  forget (dpage: number): void {
    this.records.delete(dpage)
  }

  /** Every poisoned dpage in pool order; one poisoned before this mount gets a record saying so. */
  list (): PoisonRecord[] {
    const pool = this.pool
    for (const [dpage] of this.records) if (!pool.isPoisoned(dpage)) this.records.delete(dpage)
    const out = [...this.records.values()]
    if (out.length < pool.poisoned) {
      for (let d = 0; d < pool.total; d++) {
        if (pool.isPoisoned(d) && !this.records.has(d)) out.push(keptRecord(pool, d))
      }
    }
    return out.sort((a, b) => a.dpage - b.dpage)
  }
}

function keptRecord (pool: DmemPool, dpage: number): PoisonRecord {
  const pfn = pool.pfnOf(dpage)
  return {
    pfn, dpage, dpagePfn: pfn, node: pool.regionOf(dpage).node, state: 'kept',
    ino: null, offset: null, path: null, time: null, flags: 0
  }
}

/** `.dmem/poisoned`: a header, then one line per poisoned dpage; the path (which may hold blanks) last. */
export function renderPoisoned (records: PoisonRecord[]): string {
  const lines = ['# pfn dpage node state ino offset time flags path']
  for (const r of records) {
    lines.push([
      hex(r.pfn), hex(r.dpagePfn), r.node, r.state, r.ino ?? '-', r.offset ?? '-',
      r.time === null ? '-' : new Date(r.time).toISOString(), hex(r.flags), r.path === null ? '-' : nameEscape(r.path)
    ].join(' '))
  }
  return lines.join('\n') + '\n'
}

/** A record as `.dmem/poisoned` shows it: without the pool's own dpage number. */
export type PoisonedLine = Omit<PoisonRecord, 'dpage'>

/** Parses `.dmem/poisoned` (the inverse of renderPoisoned()); null for a line that is not one of its. */
export function parsePoisoned (text: string): PoisonedLine[] | null {
  const out: PoisonedLine[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^0x([0-9a-f]+) 0x([0-9a-f]+) (\d+) (free|used|kept) (\d+|-) (\d+|-) (\S+) 0x([0-9a-f]+) (.*)$/.exec(line)
    if (!m) return null
    const opt = (t: string): number | null => (t === '-' ? null : Number(t))
    out.push({
      pfn: parseInt(m[1], 16),
      dpagePfn: parseInt(m[2], 16),
      node: Number(m[3]),
      state: m[4] as PoisonRecord['state'],
      ino: opt(m[5]),
      offset: opt(m[6]),
      time: m[7] === '-' ? null : Date.parse(m[7]),
      flags: parseInt(m[8], 16),
      path: m[9] === '-' ? null : nameUnescape(m[9])
    })
  }
  return out
}

export function poisonedJson (records: PoisonedLine[]): object[] {
  return records.map(r => ({
    pfn: hex(r.pfn),
    dpage_pfn: hex(r.dpagePfn),
    node: r.node,
    state: r.state,
    ino: r.ino,
    offset: r.offset,
    path: r.path === null ? null : nameForJson(r.path),
    time: r.time === null ? null : new Date(r.time).toISOString(),
    flags: hex(r.flags),
    flag_names: flagNames(r.flags)
  }))
}

