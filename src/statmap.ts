// A picture of the pool: `dmemfs stat` and `dmemfs pfn --map`. Pure functions only: they parse the texts of
// `.dmem/stat`, `.dmem/map` and `.dmem/pfns`, decide what each cell of the map shows, and render the map as
// plain text, ANSI-coloured text, SVG or JSON. Reading the control files is the CLI's business.
//
// A cell stands for a run of `per_cell` contiguous dpages of one region (the region's last cell holds the
// rest). Poison wins: it is poisoned in a file if a file owns one of its poisoned dpages (data lost),
// poisoned if any of its dpages is otherwise (a frame out of service, nothing lost); else in a file's map
// a cell holding any of that file's dpages is the file's; else free if no file owns any, used if files own
// all, and partly used in between.
//
// PFNs and physical addresses exceed 2^32: no 32-bit bit operators here; all values stay below 2^53.

import { nameUnescape } from './fs/name'
import { hex } from './pool/layout'

export type ParseResult<T> = { ok: true, value: T } | { ok: false, error: string }

export const PAGE_SIZE = 4096
export const ROW_CELLS = 64 // cells per row of the text grid and the SVG
export const DEFAULT_CELLS = 512 // cells asked per region: 8 rows of 64
export const MAX_CELLS = 4096 // the most cells `.dmem/map` gives a region

export type CellState = 'free' | 'partial' | 'used' | 'poisoned' | 'poisoned-file' | 'file'

export interface MapCell {
  index: number // in its region
  firstPfn: number
  dpages: number
  used: number // dpages a file owns
  poisoned: number // poisoned dpages (owned or not)
  poisonedUsed: number // of those, dpages a file owns
  file: number // dpages of the marked file (0 unless the map was marked with markFile)
  state: CellState
}

export interface MapRegion {
  id: number
  node: number
  phys: number
  dpages: number
  dpageSize: number
  perCell: number
  pfnFirst: number
  pfnLast: number
  cells: MapCell[]
}

export interface PoolMap {
  regions: MapRegion[]
}

/** `.dmem/stat`, in its order: numbers where the value is one, text otherwise. */
export type Stat = Record<string, number | string>

/** One run of `.dmem/pfns`: `frames` 4 KiB frames from `pfn`, at byte `offset` of file `ino`. */
export interface PfnRun {
  ino: number
  offset: number
  pfn: number
  frames: number
  path: string // the name's bytes, one char per byte (the file escapes them as seq_file does)
}

// --- parsing ---------------------------------------------------------------------------------------------

export function parseStat (text: string): ParseResult<Stat> {
  const stat: Stat = {}
  const lines = text.split('\n').filter(l => l.trim() !== '')
  for (const line of lines) {
    const m = /^([A-Za-z0-9_.]+): ?(.*)$/.exec(line)
    if (!m) return { ok: false, error: `bad line in .dmem/stat: '${clip(line)}'` }
    stat[m[1]] = /^-?[0-9]+$/.test(m[2]) ? Number(m[2]) : m[2]
  }
  if (typeof stat.total_dpages !== 'number') return { ok: false, error: '.dmem/stat has no total_dpages' }
  return { ok: true, value: stat }
}

const REGION_LINE = /^region (\d+) node (\d+) phys 0x([0-9a-f]+) dpages (\d+) dpage_size (\d+) per_cell (\d+) cells ?(.*)$/

/** Parses `.dmem/map`. Comment lines (`#`) and lines that are not `region ...` are skipped; a region line
 *  must be whole and consistent. */
export function parseMap (text: string): ParseResult<PoolMap> {
  const regions: MapRegion[] = []
  for (const line of text.split('\n')) {
    if (!line.startsWith('region ')) continue
    const m = REGION_LINE.exec(line)
    if (!m) return { ok: false, error: `bad line in .dmem/map: '${clip(line)}'` }
    const [id, node] = [Number(m[1]), Number(m[2])]
    const phys = parseInt(m[3], 16)
    const [dpages, dpageSize, perCell] = [Number(m[4]), Number(m[5]), Number(m[6])]
    const where = `.dmem/map region ${id}`
    if (!Number.isSafeInteger(phys) || phys % PAGE_SIZE !== 0) return { ok: false, error: `${where}: bad phys 0x${m[3]}` }
    if (dpageSize < PAGE_SIZE || dpageSize % PAGE_SIZE !== 0) return { ok: false, error: `${where}: bad dpage_size ${dpageSize}` }
    if (dpages < 1 || perCell < 1) return { ok: false, error: `${where}: no dpages or cells` }
    const words = m[7].trim() === '' ? [] : m[7].trim().split(/\s+/)
    const want = Math.ceil(dpages / perCell)
    if (words.length !== want) {
      return { ok: false, error: `${where}: ${words.length} cells, expected ${want} (${plural(dpages, 'dpage')}, ${perCell} a cell)` }
    }
    const fpd = dpageSize / PAGE_SIZE
    const pfnFirst = phys / PAGE_SIZE
    const cells: MapCell[] = []
    for (let i = 0; i < words.length; i++) {
      const c = /^(\d+)\/(\d+)(?:\/(\d+))?$/.exec(words[i])
      const size = Math.min(perCell, dpages - i * perCell)
      if (!c) return { ok: false, error: `${where}: bad cell '${clip(words[i])}' (want used/poisoned[/owned])` }
      const [used, poisoned, poisonedUsed] = [Number(c[1]), Number(c[2]), Number(c[3] ?? 0)]
      if (used > size || poisoned > size || poisonedUsed > Math.min(used, poisoned)) {
        return { ok: false, error: `${where}: cell ${i} counts ${words[i]} exceed its ${plural(size, 'dpage')}` }
      }
      cells.push({
        index: i, firstPfn: pfnFirst + i * perCell * fpd, dpages: size, used, poisoned, poisonedUsed, file: 0,
        state: cellState(size, used, poisoned, poisonedUsed)
      })
    }
    regions.push({ id, node, phys, dpages, dpageSize, perCell, pfnFirst, pfnLast: pfnFirst + dpages * fpd - 1, cells })
  }
  if (regions.length === 0) return { ok: false, error: '.dmem/map lists no region' }
  return { ok: true, value: { regions } }
}

/** Parses `.dmem/pfns` (`ino offset pfn frames path`); `ino` keeps only that file's runs. */
export function parsePfns (text: string, ino?: number): ParseResult<PfnRun[]> {
  const runs: PfnRun[] = []
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue
    const m = /^(\d+) (\d+) 0x([0-9a-f]+) (\d+) (.*)$/.exec(line)
    if (!m) return { ok: false, error: `bad line in .dmem/pfns: '${clip(line)}'` }
    if (ino !== undefined && Number(m[1]) !== ino) continue
    runs.push({ ino: Number(m[1]), offset: Number(m[2]), pfn: parseInt(m[3], 16), frames: Number(m[4]), path: nameUnescape(m[5]) })
  }
  return { ok: true, value: runs }
}

function clip (s: string): string {
  return s.length > 60 ? s.slice(0, 57) + '...' : s
}

// --- cell states -----------------------------------------------------------------------------------------

export function cellState (dpages: number, used: number, poisoned: number, poisonedUsed = 0): CellState {
  if (poisonedUsed > 0) return 'poisoned-file'
  if (poisoned > 0) return 'poisoned'
  if (used === 0) return 'free'
  return used >= dpages ? 'used' : 'partial'
}

/** A copy of `map` in which every cell holding dpages of the runs counts them in `file` and shows 'file',
 *  unless poison shows there (poison wins: the file's mark must not hide it). */
export function markFile (map: PoolMap, runs: Array<{ pfn: number, frames: number }>): PoolMap {
  const regions = map.regions.map(r => ({ ...r, cells: r.cells.map(c => ({ ...c })) }))
  for (const run of runs) {
    const start = run.pfn
    const end = run.pfn + run.frames // exclusive
    for (const r of regions) {
      const lo = Math.max(start, r.pfnFirst)
      const hi = Math.min(end, r.pfnLast + 1)
      if (lo >= hi) continue
      const fpd = r.dpageSize / PAGE_SIZE
      const cellFrames = r.perCell * fpd
      const first = Math.floor((lo - r.pfnFirst) / cellFrames)
      const last = Math.floor((hi - 1 - r.pfnFirst) / cellFrames)
      for (let i = first; i <= last; i++) {
        const cell = r.cells[i]
        const cellEnd = cell.firstPfn + cell.dpages * fpd
        const frames = Math.min(hi, cellEnd) - Math.max(lo, cell.firstPfn)
        cell.file += Math.ceil(frames / fpd)
        if (cell.poisoned === 0) cell.state = 'file'
      }
    }
  }
  return { regions }
}

/** The map in at most `cells` cells per region, each cell a whole number of `map`'s cells, so every count
 *  stays exact. A region gets `cells` cells when its cells of `map` divide evenly into them (a power-of-two
 *  region read at .dmem/map's 4096 cells does), fewer otherwise. */
export function coarsenMap (map: PoolMap, cells: number): PoolMap {
  return { regions: map.regions.map(r => coarsenRegion(r, cells)) }
}

function coarsenRegion (r: MapRegion, cells: number): MapRegion {
  const want = Math.ceil(r.dpages / Math.min(cells, r.dpages)) // dpages a cell, as `cells` cells would hold
  const group = Math.ceil(want / r.perCell) // cells of the finer map in one
  if (group === 1) return r
  const merged: MapCell[] = []
  for (let i = 0; i < r.cells.length; i += group) {
    const part = r.cells.slice(i, i + group)
    const add = (key: 'dpages' | 'used' | 'poisoned' | 'poisonedUsed' | 'file'): number => part.reduce((n, c) => n + c[key], 0)
    const [dpages, used, poisoned, poisonedUsed, file] = [add('dpages'), add('used'), add('poisoned'), add('poisonedUsed'), add('file')]
    merged.push({
      index: merged.length, firstPfn: part[0].firstPfn, dpages, used, poisoned, poisonedUsed, file,
      state: file > 0 && poisoned === 0 ? 'file' : cellState(dpages, used, poisoned, poisonedUsed)
    })
  }
  return { ...r, perCell: group * r.perCell, cells: merged }
}

export interface MapTotals {
  cells: number
  dpages: number
  used: number
  poisoned: number
  file: number
}

export function totals (map: PoolMap, node?: number): MapTotals {
  const t = { cells: 0, dpages: 0, used: 0, poisoned: 0, file: 0 }
  for (const r of map.regions) {
    if (node !== undefined && r.node !== node) continue
    for (const c of r.cells) {
      t.cells++
      t.dpages += c.dpages
      t.used += c.used
      t.poisoned += c.poisoned
      t.file += c.file
    }
  }
  return t
}

// --- sizes and names -------------------------------------------------------------------------------------

/** A dpage size in the kernel's memparse spelling: 4K, 2M, 1G. */
export function dpageSizeName (bytes: number): string {
  for (const [unit, size] of [['G', 1 << 30], ['M', 1 << 20], ['K', 1 << 10]] as const) {
    if (bytes % size === 0) return `${bytes / size}${unit}`
  }
  return `${bytes}`
}

/** Bytes in the largest binary unit that gives at least 1, exact when it can be, else to 2 decimals. */
export function formatBytes (bytes: number): string {
  const units: Array<[string, number]> = [['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]]
  for (const [unit, size] of units) {
    if (bytes >= size) {
      const v = bytes / size
      return `${Number.isInteger(v) ? v : v.toFixed(2)} ${unit}`
    }
  }
  return plural(bytes, 'byte')
}

export function plural (n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}

/** How much a cell of the region stands for, e.g. `1 cell = 512 dpages of 4K = 2 MiB`. */
export function scaleText (r: MapRegion): string {
  let s = `1 cell = ${plural(r.perCell, 'dpage')} of ${dpageSizeName(r.dpageSize)} = ${formatBytes(r.perCell * r.dpageSize)}`
  const last = r.cells[r.cells.length - 1]
  if (r.cells.length > 1 && last.dpages !== r.perCell) s += ` (the last cell ${plural(last.dpages, 'dpage')})`
  return s
}

/** The region's place: `pfn 0x100000-0x13ffff (phys 0x100000000-0x13fffffff)`. */
export function rangeText (r: MapRegion): string {
  const physLast = r.phys + r.dpages * r.dpageSize - 1
  return `pfn ${hex(r.pfnFirst)}-${hex(r.pfnLast)} (phys ${hex(r.phys)}-${hex(physLast)})`
}

/** A cell's PFN range and counts, as the SVG's hover title says it. */
export function cellTitle (r: MapRegion, c: MapCell): string {
  const last = c.firstPfn + c.dpages * (r.dpageSize / PAGE_SIZE) - 1
  const range = last === c.firstPfn ? `pfn ${hex(c.firstPfn)}` : `pfn ${hex(c.firstPfn)}-${hex(last)}`
  const file = c.file > 0 ? `, ${c.file} of the file` : ''
  const inFile = c.poisonedUsed > 0 ? ` (${c.poisonedUsed} in a file)` : ''
  return `region ${r.id} cell ${c.index}: ${range}, ${plural(c.dpages, 'dpage')}, ${c.used} used, ` +
    `${c.poisoned} poisoned${inFile}${file} (${STATE_NAME[c.state]})`
}

// --- text ------------------------------------------------------------------------------------------------

export const STATE_CHAR: Record<CellState, string> = {
  free: '.', partial: '+', used: '#', poisoned: 'X', 'poisoned-file': '!', file: 'F'
}
export const STATE_NAME: Record<CellState, string> = {
  free: 'free', partial: 'partly used', used: 'used', poisoned: 'poisoned', 'poisoned-file': 'poisoned in a file',
  file: "the file's"
}
// SGR codes for a terminal: dim free space, yellow partly used, green used, bold red poison, bold magenta
// poison in a file, bold cyan file.
const STATE_SGR: Record<CellState, string> = {
  free: '2', partial: '33', used: '32', poisoned: '1;31', 'poisoned-file': '1;35', file: '1;36'
}
const SGR_RESET = '\x1b[0m'

function sgr (code: string): string {
  return `\x1b[${code}m`
}

export interface TextOptions {
  colour?: boolean // ANSI colours, for a terminal
  rowCells?: number // cells per grid row
  fileLabel?: string // in a file's map: the file's name, for the legend
}

/** The states a legend lists, the weakest first. */
function legendStates (map: PoolMap, fileLabel?: string): CellState[] {
  const states: CellState[] = ['free', 'partial', 'used']
  if (fileLabel !== undefined || map.regions.some(r => r.cells.some(c => c.file > 0))) states.push('file')
  return [...states, 'poisoned', 'poisoned-file']
}

/** The legend, in order of precedence: a cell shows the first that applies (poison, then the file). */
export function legendText (map: PoolMap, opts: TextOptions = {}): string {
  const paint = (s: CellState): string => opts.colour ? sgr(STATE_SGR[s]) + STATE_CHAR[s] + SGR_RESET : STATE_CHAR[s]
  const items = legendStates(map, opts.fileLabel).reverse().map(s => `${paint(s)} ${legendName(s, opts.fileLabel)}`)
  return `legend: ${items.join('   ')}   (a cell shows the first that applies)`
}

function legendName (s: CellState, fileLabel?: string): string {
  if (s === 'file') return fileLabel !== undefined ? `holds ${fileLabel}` : "the file's"
  if (s === 'poisoned-file') return 'poisoned dpage in a file'
  if (s === 'poisoned') return 'poisoned free dpage'
  if (s === 'used') return 'all used'
  if (s === 'partial') return 'partly used'
  return 'all free'
}

/** One grid row of cells, as characters, coloured if asked (one escape per change of state). */
function rowText (cells: MapCell[], colour: boolean): string {
  if (!colour) return cells.map(c => STATE_CHAR[c.state]).join('')
  let out = ''
  let current: CellState | null = null
  for (const c of cells) {
    if (c.state !== current) {
      out += (current === null ? '' : SGR_RESET) + sgr(STATE_SGR[c.state])
      current = c.state
    }
    out += STATE_CHAR[c.state]
  }
  return out + SGR_RESET
}

/** The map as text: legend, then per node (with its counts from `stat`, if given) each region's range,
 *  scale and grid. Each grid row starts with the first PFN of its first cell. */
export function renderText (map: PoolMap, stat: Stat | null, opts: TextOptions = {}): string {
  const rowCells = opts.rowCells ?? ROW_CELLS
  const lines = [legendText(map, opts)]
  const nodes = [...new Set(map.regions.map(r => r.node))].sort((a, b) => a - b)
  for (const node of nodes) {
    const t = totals(map, node)
    const free = stat?.[`node${node}.free_dpages`]
    const poisoned = stat?.[`node${node}.poisoned_dpages`]
    const counts = [plural(t.dpages, 'dpage')]
    if (free !== undefined) counts.push(`${free} free`)
    counts.push(`${t.used} used`, `${poisoned ?? t.poisoned} poisoned`)
    if (opts.fileLabel !== undefined) counts.push(`${t.file} of the file`)
    lines.push('', `node ${node}: ${counts.join(', ')}`)
    for (const r of map.regions.filter(x => x.node === node)) {
      const rt = totals({ regions: [r] })
      const file = opts.fileLabel !== undefined ? `, ${rt.file} of the file` : ''
      lines.push(`  region ${r.id}: ${rangeText(r)}, ${plural(r.dpages, 'dpage')}, ${rt.used} used, ${rt.poisoned} poisoned${file}`)
      lines.push(`  ${scaleText(r)}`)
      const width = hex(r.cells[r.cells.length - 1].firstPfn).length
      for (let i = 0; i < r.cells.length; i += rowCells) {
        const row = r.cells.slice(i, i + rowCells)
        lines.push(`    ${hex(row[0].firstPfn).padStart(width)} ${rowText(row, opts.colour === true)}`)
      }
    }
  }
  return lines.join('\n') + '\n'
}

// --- JSON ------------------------------------------------------------------------------------------------

export interface JsonCell {
  first_pfn: string
  dpages: number
  used: number
  poisoned: number
  poisoned_in_file: number
  file?: number
  state: CellState
}

export interface JsonRegion {
  id: number
  node: number
  phys: string
  pfn_first: string
  pfn_last: string
  dpages: number
  dpage_size: number
  per_cell: number
  cells: JsonCell[]
}

/** The regions for scripts; PFNs and addresses as `0x` hex strings, as `dmemfs pfn --json` gives them.
 *  `withFile` adds each cell's count of the marked file's dpages. */
export function regionsJson (map: PoolMap, withFile = false): JsonRegion[] {
  return map.regions.map(r => ({
    id: r.id,
    node: r.node,
    phys: hex(r.phys),
    pfn_first: hex(r.pfnFirst),
    pfn_last: hex(r.pfnLast),
    dpages: r.dpages,
    dpage_size: r.dpageSize,
    per_cell: r.perCell,
    cells: r.cells.map(c => ({
      first_pfn: hex(c.firstPfn),
      dpages: c.dpages,
      used: c.used,
      poisoned: c.poisoned,
      poisoned_in_file: c.poisonedUsed,
      ...(withFile ? { file: c.file } : {}),
      state: c.state
    }))
  }))
}

export function statJson (stat: Stat, map: PoolMap): { stat: Stat, regions: JsonRegion[] } {
  return { stat, regions: regionsJson(map) }
}

// --- SVG -------------------------------------------------------------------------------------------------

export const STATE_FILL: Record<CellState, string> = {
  free: '#e4e4e4', partial: '#f0b429', used: '#2f9e44', poisoned: '#d6336c', 'poisoned-file': '#5f3dc4', file: '#1c7ed6'
}

const CELL = 10 // px, a cell's square with its gap
const GAP = 1
const MARGIN = 12
const LINE = 16 // px, one line of text
const CHAR_WIDTH = 7.3 // px, about one character of 12px monospace

export function xmlEscape (s: string): string {
  return s.replace(/[&<>"']/g, ch => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[ch]!)
    // XML 1.0 allows no control characters but tab, newline and carriage return
    .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f]/g, '?')
}

export interface SvgOptions {
  title?: string // the image's heading, e.g. the mount point
  rowCells?: number
  fileLabel?: string
}

/** The map as a standalone SVG image: a heading, the legend, and per region a label and one <rect
 *  class="cell STATE"> per cell, whose <title> (shown on hover) gives its PFN range and counts. */
export function renderSvg (map: PoolMap, stat: Stat | null, opts: SvgOptions = {}): string {
  const rowCells = opts.rowCells ?? ROW_CELLS
  const body: string[] = []
  let y = MARGIN
  let width = 0
  const text = (x: number, s: string, extra = ''): string => {
    width = Math.max(width, x + Math.ceil(s.length * CHAR_WIDTH))
    return `<text x="${x}" y="${y + LINE - 4}"${extra}>${xmlEscape(s)}</text>`
  }
  const heading = opts.title ?? 'dmemfs pool'
  body.push(text(MARGIN, heading, ' font-weight="bold"'))
  y += LINE
  if (stat !== null) {
    const summary = ['total_dpages', 'free_dpages', 'poisoned_dpages']
      .filter(k => stat[k] !== undefined).map(k => `${k} ${stat[k]}`).join(', ')
    body.push(text(MARGIN, summary))
    y += LINE
  }
  // The legend: a swatch and a name per state.
  let x = MARGIN
  const legend: string[] = []
  for (const s of legendStates(map, opts.fileLabel).reverse()) {
    const name = legendName(s, opts.fileLabel)
    legend.push(`<rect class="legend ${s}" x="${x}" y="${y + 3}" width="${CELL - GAP}" height="${CELL - GAP}" fill="${STATE_FILL[s]}"/>`)
    legend.push(`<text x="${x + CELL + 4}" y="${y + LINE - 4}">${xmlEscape(name)}</text>`)
    x += CELL + 12 + Math.ceil(name.length * CHAR_WIDTH)
  }
  body.push(`<g class="legend">${legend.join('')}</g>`)
  y += LINE + 4
  width = Math.max(width, x)
  for (const r of map.regions) {
    const group: string[] = []
    const label = `node ${r.node} region ${r.id}: ${rangeText(r)}, ${plural(r.dpages, 'dpage')}; ${scaleText(r)}`
    group.push(text(MARGIN, label))
    y += LINE + 2
    r.cells.forEach((c, i) => {
      const cx = MARGIN + (i % rowCells) * CELL
      const cy = y + Math.floor(i / rowCells) * CELL
      group.push(`<rect class="cell ${c.state}" x="${cx}" y="${cy}" width="${CELL - GAP}" height="${CELL - GAP}" ` +
        `fill="${STATE_FILL[c.state]}"><title>${xmlEscape(cellTitle(r, c))}</title></rect>`)
    })
    y += Math.ceil(r.cells.length / rowCells) * CELL + LINE / 2
    width = Math.max(width, MARGIN + Math.min(rowCells, r.cells.length) * CELL)
    body.push(`<g class="region" id="region-${r.id}">\n${group.join('\n')}\n</g>`)
  }
  width += MARGIN
  const height = y + MARGIN
  return '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    'font-family="monospace" font-size="12">\n' +
    `<title>${xmlEscape(heading)}</title>\n` +
    `<rect class="background" x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>\n` +
    body.join('\n') + '\n</svg>\n'
}
