// The benchmark's figures, their statistics and targets (issue 6), the printed tables (Markdown, so they can
// go into the README as they are) and the JSON written for comparing runs.

import { CoreFigure } from './core'
import { SystemName } from './systems'

export const SYSTEMS: SystemName[] = ['dmemfs', 'dmemfs-ts', 'tuned', 'naive', 'tmpfs']

export interface Figure {
  id: string
  label: string
  unit: string
  better: 'higher' | 'lower'
  only?: 'dmemfs' // measured on dmemfs alone
  samples: Partial<Record<SystemName, number[]>>
}

export interface Stats {
  median: number
  min: number
  max: number
  n: number
}

export interface Target {
  figure: string
  what: string // e.g. "dmemfs/tuned >= 0.9"
  value: number
  pass: boolean
}

export function stats (xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2
  return { median, min: s[0], max: s[s.length - 1], n: s.length }
}

function median (f: Figure, sys: SystemName): number | null {
  const xs = f.samples[sys]
  return xs && xs.length ? stats(xs).median : null
}

/** dmemfs's median over another system's: above 1 means dmemfs is faster (every compared figure is a rate). */
export function ratio (f: Figure, other: SystemName): number | null {
  const a = median(f, 'dmemfs')
  const b = median(f, other)
  return a === null || b === null || b === 0 ? null : a / b
}

export interface Limits {
  writtenMiB: number // what the pool figure writes, for its RSS limit
}

/** The targets, each checked on medians. */
// The native data path's targets (issue 13): dmemfs over dmemfs-ts (native=0), same run.
const NATIVE_TARGETS: Record<string, number> = {
  rand_read_1: 2.5, seq_overwrite: 2, seq_read: 2, mmap_read: 2, create: 0.95, unlink: 0.95, cp_r: 0.95, tar_x: 0.95
}

export function targets (figures: Figure[], limits: Limits): Target[] {
  const out: Target[] = []
  const byId = new Map(figures.map(f => [f.id, f]))
  const atLeast = (figure: string, what: string, value: number | null, min: number) => {
    if (value !== null) out.push({ figure, what: `${what} >= ${min}`, value, pass: value >= min })
  }
  const below = (figure: string, what: string, max: number) => {
    const f = byId.get(figure)
    const value = f && median(f, 'dmemfs')
    if (value != null) out.push({ figure, what: `${what} < ${max}`, value, pass: value < max })
  }
  for (const f of figures) {
    if (f.only) continue
    atLeast(f.id, 'dmemfs/tuned', ratio(f, 'tuned'), 0.9)
    if (f.id === 'seq_write' || f.id === 'seq_overwrite') atLeast(f.id, 'dmemfs/naive', ratio(f, 'naive'), 8)
    const native = NATIVE_TARGETS[f.id]
    if (native !== undefined) atLeast(f.id, 'dmemfs/dmemfs-ts', ratio(f, 'dmemfs-ts'), native)
  }
  // Four jobs get four threads' worth of copies: against dmemfs's own one-job figure.
  const one = byId.get('rand_read_1')
  const four = byId.get('rand_read_4')
  const m1 = one && median(one, 'dmemfs')
  const m4 = four && median(four, 'dmemfs')
  if (m1 && m4) atLeast('rand_read_4', 'dmemfs 4 jobs/1 job', m4 / m1, 2.5)
  below('mce_report_loaded', 'ms', 20)
  below('mce_report', 'ms', 20)
  below('pool_mount', 'ms', 2000)
  below('pool_rss_empty', 'MiB', 300)
  below('pool_rss_written', 'MiB', limits.writtenMiB + 150)
  return out
}

function num (x: number): string {
  const a = Math.abs(x)
  if (a >= 100) return x.toFixed(0)
  if (a >= 10) return x.toFixed(1)
  return x.toFixed(2)
}

function cell (xs: number[] | undefined): string {
  if (!xs || xs.length === 0) return '–'
  const s = stats(xs)
  return s.n === 1 ? num(s.median) : `${num(s.median)} (${num(s.min)}–${num(s.max)})`
}

function table (header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => r[i].length)))
  const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |'
  return [line(header), '|' + widths.map(w => '-'.repeat(w + 2)).join('|') + '|', ...rows.map(line)].join('\n')
}

function mark (ts: Target[]): string {
  return ts.map(t => `${t.pass ? 'PASS' : 'FAIL'} ${t.what}`).join(', ')
}

/** The three tables: every system's figures, dmemfs's ratios with the targets, and dmemfs-only figures. */
export function render (figures: Figure[], ts: Target[]): string {
  const compared = figures.filter(f => !f.only)
  const own = figures.filter(f => f.only)
  const forFig = (f: Figure) => ts.filter(t => t.figure === f.id)
  const ratioCell = (f: Figure, other: SystemName) => {
    const r = ratio(f, other)
    const t = forFig(f).find(t => t.what.startsWith(`dmemfs/${other}`))
    return r === null ? '–' : `${r.toPrecision(3)}${t ? (t.pass ? ' PASS' : ' FAIL') : ''}`
  }
  const parts: string[] = []
  if (compared.length > 0) {
    parts.push(
      'Median (min–max) of each figure; higher is faster.',
      '',
      table(['figure', 'unit', ...SYSTEMS], compared.map(f => [f.label, f.unit, ...SYSTEMS.map(s => cell(f.samples[s]))])),
      '',
      'dmemfs / each other system (ratio of medians; targets: >= 0.9 of tuned, sequential writes >= 8 of naive; ' +
        'against dmemfs-ts, i.e. native=0: random reads 2.5, sequential overwrite and read and mmap read 2, ' +
        'small files 0.95).',
      '',
      table(['figure', 'dmemfs/dmemfs-ts', 'dmemfs/tuned', 'dmemfs/naive', 'dmemfs/tmpfs'],
        compared.map(f => [f.label, ratioCell(f, 'dmemfs-ts'), ratioCell(f, 'tuned'), ratioCell(f, 'naive'), ratioCell(f, 'tmpfs')])))
  }
  if (own.length > 0) {
    if (parts.length > 0) parts.push('')
    parts.push('dmemfs alone.', '',
      table(['figure', 'unit', 'dmemfs', 'target'], own.map(f => [f.label, f.unit, cell(f.samples.dmemfs), mark(forFig(f))])))
  }
  if (ts.length > 0) {
    parts.push('', 'Every target.', '',
      table(['figure', 'target', 'value', ''], ts.map(t => [t.figure, t.what, num(t.value), t.pass ? 'PASS' : 'FAIL'])))
  }
  return parts.join('\n')
}

/** The JSON written for each run: raw samples and their statistics, ratios and targets. */
export function toJson (figures: Figure[], ts: Target[], meta: Record<string, unknown>): unknown {
  return {
    ...meta,
    figures: Object.fromEntries(figures.map(f => [f.id, {
      label: f.label,
      unit: f.unit,
      better: f.better,
      only: f.only ?? null,
      results: Object.fromEntries(Object.entries(f.samples).map(([s, xs]) => [s, { samples: xs, ...stats(xs) }])),
      ratios: f.only ? null : Object.fromEntries(SYSTEMS.slice(1).map(s => [`dmemfs/${s}`, ratio(f, s)]))
    }])),
    targets: ts,
    pass: ts.every(t => t.pass)
  }
}

/** The in-process figures: what dmemfs's data path adds to a bare Buffer copy, per call. */
export function renderCore (core: CoreFigure[]): string {
  return [
    'dmemfs\'s core alone, in this process (no FUSE): microseconds per call.',
    '',
    table(['operation', 'dmemfs', 'Buffer copy', 'added'],
      core.map(c => [c.label, num(c.dmemfsUs), num(c.copyUs), num(c.dmemfsUs - c.copyUs)]))
  ].join('\n')
}
