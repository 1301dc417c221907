// Unit tests of the pool's picture (src/statmap.ts): parsing .dmem/stat, .dmem/map and .dmem/pfns, the
// state of each cell, marking a file's cells, and the text, colour, SVG and JSON renderings. The SVG is
// checked with a small strict XML parser, so a malformed image fails here without any outside tool.

import { expect } from 'chai'
import { MAP_CELLS, renderMap, renderPfns, renderStat } from '../../src/control/control'
import { MiB } from '../../src/pool/layout'
import {
  cellState, cellTitle, coarsenMap, dpageSizeName, formatBytes, legendText, markFile, parseMap, parsePfns, parseStat, PoolMap,
  regionsJson, renderSvg, renderText, scaleText, Stat, statJson, totals, xmlEscape
} from '../../src/statmap'
import { createFile, makeSb } from './mce-fixtures'

// --- a strict little XML parser ------------------------------------------------------------------------

interface XmlElement {
  name: string
  attrs: Record<string, string>
  children: XmlElement[]
  text: string // the element's own character data, entities decoded
}

const NAME = '[A-Za-z_][A-Za-z0-9_.:-]*'
const ENTITY = /&(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);/y

function decode (s: string, where: string): string {
  for (let i = s.indexOf('&'); i >= 0; i = s.indexOf('&', i + 1)) {
    ENTITY.lastIndex = i
    if (!ENTITY.test(s)) throw new Error(`bad entity in ${where}: ${s.slice(i, i + 12)}`)
  }
  return s.replace(/&(amp|lt|gt|quot|apos);/g, (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" })[e]!)
}

/** Parses a whole document: an optional XML declaration, one root element, nothing else but space. Throws
 *  on anything not well-formed: unclosed or crossed tags, bad names, unquoted or repeated attributes, a
 *  stray '<' or '&', control characters. */
function parseXml (doc: string): XmlElement {
  if (/[\x00-\x08\x0b\x0c\x0e-\x1f]/.test(doc)) throw new Error('control character in the document')
  let pos = 0
  const decl = /^<\?xml\s+version="1\.[0-9]"(\s+encoding="[A-Za-z0-9._-]+")?\s*\?>/.exec(doc)
  if (decl) pos = decl[0].length
  const stack: XmlElement[] = []
  let root: XmlElement | null = null
  const tagRe = new RegExp(`<(/?)(${NAME})((?:\\s+${NAME}\\s*=\\s*(?:"[^"<]*"|'[^'<]*'))*)\\s*(/?)>`, 'y')
  const attrRe = new RegExp(`(${NAME})\\s*=\\s*(?:"([^"<]*)"|'([^'<]*)')`, 'g')
  while (pos < doc.length) {
    const lt = doc.indexOf('<', pos)
    const text = doc.slice(pos, lt < 0 ? doc.length : lt)
    if (stack.length === 0) {
      if (text.trim() !== '') throw new Error(`text outside the root element: '${text.trim().slice(0, 20)}'`)
    } else {
      stack[stack.length - 1].text += decode(text, 'text')
    }
    if (lt < 0) break
    if (doc.startsWith('<!--', lt)) {
      const end = doc.indexOf('-->', lt + 4)
      if (end < 0) throw new Error('unclosed comment')
      pos = end + 3
      continue
    }
    tagRe.lastIndex = lt
    const m = tagRe.exec(doc)
    if (!m) throw new Error(`malformed tag at ${lt}: '${doc.slice(lt, lt + 30)}'`)
    pos = tagRe.lastIndex
    const [, closing, name, attrText, selfClosing] = m
    if (closing) {
      if (attrText.trim() !== '' || selfClosing) throw new Error(`malformed end tag </${name}>`)
      const open = stack.pop()
      if (!open || open.name !== name) throw new Error(`</${name}> closes <${open?.name ?? 'nothing'}>`)
      continue
    }
    const attrs: Record<string, string> = {}
    for (const a of attrText.matchAll(attrRe)) {
      if (a[1] in attrs) throw new Error(`repeated attribute ${a[1]} in <${name}>`)
      attrs[a[1]] = decode(a[2] ?? a[3], `attribute ${a[1]}`)
    }
    const el: XmlElement = { name, attrs, children: [], text: '' }
    if (stack.length > 0) stack[stack.length - 1].children.push(el)
    else if (root) throw new Error('a second root element')
    else root = el
    if (!selfClosing) stack.push(el)
  }
  if (stack.length > 0) throw new Error(`<${stack[stack.length - 1].name}> is never closed`)
  if (!root) throw new Error('no root element')
  return root
}

function all (el: XmlElement, name: string): XmlElement[] {
  const out: XmlElement[] = []
  const walk = (e: XmlElement): void => {
    if (e.name === name) out.push(e)
    e.children.forEach(walk)
  }
  walk(el)
  return out
}

function classes (el: XmlElement): string[] {
  return (el.attrs.class ?? '').split(/\s+/)
}

// --- fixtures ---------------------------------------------------------------------------------------------

const STAT_TEXT = `region_num: 2
registered_pages: 20
unaligned_pages: 0
dpage_shift: 12
total_dpages: 20
free_dpages: 12
poisoned_dpages: 2
node0.total_dpages: 10
node0.free_dpages: 5
node0.poisoned_dpages: 1
node1.total_dpages: 10
node1.free_dpages: 7
node1.poisoned_dpages: 1
`

// Two regions of 10 dpages of 4K, 4 a cell: cells of 4, 4 and 2 dpages. Region 1 follows region 0 directly.
const MAP_TEXT = `# region R node N phys P dpages D dpage_size S per_cell C cells used/poisoned ...
region 0 node 0 phys 0x100000000 dpages 10 dpage_size 4096 per_cell 4 cells 4/0 2/1 0/0
region 1 node 1 phys 0x10000a000 dpages 10 dpage_size 4096 per_cell 4 cells 0/0 3/0 1/1
`

function okMap (text: string): PoolMap {
  const r = parseMap(text)
  if (!r.ok) throw new Error(r.error)
  return r.value
}

function okStat (text: string): Stat {
  const r = parseStat(text)
  if (!r.ok) throw new Error(r.error)
  return r.value
}

function mapError (text: string): string {
  const r = parseMap(text)
  if (r.ok) throw new Error(`parsed: ${text}`)
  return r.error
}

const stripAnsi = (s: string): string => s.replace(/\x1b\[[0-9;]*m/g, '')

/** The grid rows of a text map: the PFN each row starts at and its cell characters. */
function gridRows (text: string): Array<{ pfn: number, cells: string }> {
  return text.split('\n').filter(l => /^ {4} *0x[0-9a-f]+ /.test(l)).map(l => {
    const [pfn, cells] = l.trim().split(' ')
    return { pfn: parseInt(pfn, 16), cells }
  })
}

// --- tests ------------------------------------------------------------------------------------------------

describe('statmap: parsing', () => {
  it('parses .dmem/stat in order, numbers as numbers, other values as text', () => {
    const stat = okStat(STAT_TEXT + 'poison_file: /var/lib/dmemfs/poison\n')
    expect(Object.keys(stat).slice(0, 3)).to.deep.equal(['region_num', 'registered_pages', 'unaligned_pages'])
    expect(stat.total_dpages).to.equal(20)
    expect(stat['node1.free_dpages']).to.equal(7)
    expect(stat.poison_file).to.equal('/var/lib/dmemfs/poison')
    expect(parseStat('total_dpages 20\n').ok).to.equal(false)
    expect(parseStat('free_dpages: 3\n')).to.deep.equal({ ok: false, error: '.dmem/stat has no total_dpages' })
  })

  it('parses .dmem/map: regions, cells, their PFNs and sizes; the last cell holds the rest', () => {
    const map = okMap(MAP_TEXT)
    expect(map.regions).to.have.length(2)
    const [r0, r1] = map.regions
    expect(r0).to.deep.include({ id: 0, node: 0, phys: 0x100000000, dpages: 10, dpageSize: 4096, perCell: 4 })
    expect(r0.pfnFirst).to.equal(0x100000)
    expect(r0.pfnLast).to.equal(0x100009)
    expect(r1.pfnFirst).to.equal(0x10000a)
    expect(r0.cells.map(c => c.dpages)).to.deep.equal([4, 4, 2])
    expect(r0.cells.map(c => c.firstPfn)).to.deep.equal([0x100000, 0x100004, 0x100008])
    expect(r0.cells.map(c => [c.used, c.poisoned])).to.deep.equal([[4, 0], [2, 1], [0, 0]])
    expect(r0.cells.map(c => c.state)).to.deep.equal(['used', 'poisoned', 'free'])
    expect(r1.cells.map(c => c.state)).to.deep.equal(['free', 'partial', 'poisoned'])
    expect(totals(map)).to.deep.equal({ cells: 6, dpages: 20, used: 10, poisoned: 2, file: 0 })
    expect(totals(map, 1)).to.deep.equal({ cells: 3, dpages: 10, used: 4, poisoned: 1, file: 0 })
  })

  it('gives PFNs of big dpages in 4 KiB frames', () => {
    const map = okMap('region 0 node 0 phys 0x40000000 dpages 3 dpage_size 2097152 per_cell 2 cells 1/0 0/0\n')
    const r = map.regions[0]
    expect(r.pfnFirst).to.equal(0x40000)
    expect(r.pfnLast).to.equal(0x40000 + 3 * 512 - 1)
    expect(r.cells.map(c => c.firstPfn)).to.deep.equal([0x40000, 0x40400])
    expect(r.cells[0].state).to.equal('partial')
  })

  it('refuses a map that is cut short, inconsistent or not a map, with a reason', () => {
    expect(mapError('')).to.match(/no region/)
    expect(mapError('# only a comment\n')).to.match(/no region/)
    expect(mapError('region 0 node 0 phys 0x100000000 dpages 10 dpage_size 4096 per_cell 4 cells 4/0 2/1\n'))
      .to.match(/region 0: 2 cells, expected 3/)
    expect(mapError('region 0 node 0 phys 0x100000000 dpages 10 dpage_size 4096 per_cell 4 cells 4/0 5/0 0/0\n'))
      .to.match(/cell 1 counts 5\/0 exceed its 4 dpages/)
    expect(mapError('region 0 node 0 phys 0x100000000 dpages 10 dpage_size 4096 per_cell 4 cells 4/0 2/1 0/3\n'))
      .to.match(/cell 2 counts 0\/3 exceed its 2 dpages/)
    expect(mapError('region 0 node 0 phys 0x100000000 dpages 10 dpage_size 4096 per_cell 4 cells 4/0 x 0/0\n'))
      .to.match(/bad cell 'x'/)
    expect(mapError('region 0 node 0 phys 0x100000800 dpages 1 dpage_size 4096 per_cell 1 cells 0/0\n')).to.match(/bad phys/)
    expect(mapError('region zero\n')).to.match(/bad line in .dmem\/map: 'region zero'/)
  })

  it('parses .dmem/pfns, keeping one file\'s runs, paths with spaces', () => {
    const text = '# ino offset pfn frames path\n2 0 0x100000 3 /a b\n3 0 0x100003 1 /c\n2 12288 0x100004 2 /a b\n'
    const runs = parsePfns(text, 2)
    expect(runs.ok && runs.value).to.deep.equal([
      { ino: 2, offset: 0, pfn: 0x100000, frames: 3, path: '/a b' },
      { ino: 2, offset: 12288, pfn: 0x100004, frames: 2, path: '/a b' }
    ])
    const every = parsePfns(text)
    expect(every.ok && every.value.length).to.equal(3)
    const escaped = parsePfns('4 0 0x100000 1 /a\\040b\\012\\134\xff\n')
    expect(escaped.ok && escaped.value[0].path).to.equal('/a b\n\\\xff')
    expect(parsePfns('2 0 100000 3 /a\n').ok).to.equal(false)
  })
})

describe('statmap: cell states and marks', () => {
  it('a cell is free, partly used, used, or poisoned whatever else it holds', () => {
    expect(cellState(4, 0, 0)).to.equal('free')
    expect(cellState(4, 1, 0)).to.equal('partial')
    expect(cellState(4, 3, 0)).to.equal('partial')
    expect(cellState(4, 4, 0)).to.equal('used')
    expect(cellState(1, 1, 0)).to.equal('used')
    expect(cellState(4, 0, 1)).to.equal('poisoned')
    expect(cellState(4, 4, 4)).to.equal('poisoned')
    expect(cellState(4, 2, 1)).to.equal('poisoned')
  })

  it('marks the cells of a file\'s runs, across cells and regions, counting its dpages', () => {
    const map = okMap(MAP_TEXT)
    // 0x100003..0x100004: one dpage in cell 0, one in cell 1; 0x100009..0x10000b: region 0's last cell and
    // region 1's first (the regions are contiguous in physical memory).
    const marked = markFile(map, [{ pfn: 0x100003, frames: 2 }, { pfn: 0x100009, frames: 3 }])
    expect(marked.regions[0].cells.map(c => c.file)).to.deep.equal([1, 1, 1])
    expect(marked.regions[1].cells.map(c => c.file)).to.deep.equal([2, 0, 0])
    // Poison wins over the file's mark: cell 1 holds a poisoned dpage and says so.
    expect(marked.regions[0].cells.map(c => c.state)).to.deep.equal(['file', 'poisoned', 'file'])
    expect(marked.regions[1].cells.map(c => c.state)).to.deep.equal(['file', 'partial', 'poisoned'])
    expect(totals(marked).file).to.equal(5)
    // the map marked is a copy
    expect(map.regions[0].cells[0].state).to.equal('used')
    // a run outside the pool marks nothing
    expect(totals(markFile(map, [{ pfn: 0x200000, frames: 10 }])).file).to.equal(0)
  })

  it('tells a poisoned dpage in a file (! in text, its own colour in the SVG) from a poisoned free one (X)', () => {
    const map = okMap('region 0 node 0 phys 0x100000000 dpages 4 dpage_size 4096 per_cell 1 cells 1/1/1 0/1 1/0 0/0\n')
    expect(map.regions[0].cells.map(c => c.state)).to.deep.equal(['poisoned-file', 'poisoned', 'used', 'free'])
    expect(cellState(4, 2, 2, 1)).to.equal('poisoned-file')
    const marked = markFile(map, [{ pfn: 0x100000, frames: 1 }, { pfn: 0x100002, frames: 1 }])
    expect(gridRows(renderText(marked, null, { fileLabel: 'f' })).map(r => r.cells)).to.deep.equal(['!XF.'])
    const svg = renderSvg(marked, null)
    const fills = all(parseXml(svg), 'rect').filter(r => classes(r).includes('cell')).map(r => [classes(r)[1], r.attrs.fill])
    expect(fills.slice(0, 2)).to.deep.equal([['poisoned-file', '#5f3dc4'], ['poisoned', '#d6336c']])
    expect(cellTitle(map.regions[0], map.regions[0].cells[0])).to.equal(
      'region 0 cell 0: pfn 0x100000, 1 dpage, 1 used, 1 poisoned (1 in a file) (poisoned in a file)')
    expect(coarsenMap(map, 1).regions[0].cells[0]).to.include({ poisoned: 2, poisonedUsed: 1, state: 'poisoned-file' })
    expect(parseMap('region 0 node 0 phys 0x100000000 dpages 1 dpage_size 4096 per_cell 1 cells 0/1/1\n').ok).to.equal(false)
  })

  it('counts big dpages, not frames', () => {
    const map = okMap('region 0 node 0 phys 0x40000000 dpages 4 dpage_size 2097152 per_cell 2 cells 2/0 1/0\n')
    const marked = markFile(map, [{ pfn: 0x40000 + 512, frames: 1024 }])
    expect(marked.regions[0].cells.map(c => c.file)).to.deep.equal([1, 1])
  })

  it('merges the fine cells of .dmem/map into coarser ones with the same counts as the pool has', () => {
    // 64M of 4K dpages: .dmem/map gives 4096 cells of 4; any coarser request is counted exactly.
    const sb = makeSb({ size: 64 * MiB, nodes: 1, shift: 12 })
    const pool = sb.pool
    createFile(sb, '/a', 300 * 1024)
    createFile(sb, '/b', 5 * MiB + 4096)
    pool.poison(pool.regions[0].base + 16383) // free, at the very end
    pool.poison(pool.regions[0].base + 80) // in /b
    const fine = okMap(renderMap(pool, MAP_CELLS))
    for (const cells of [4096, 512, 300, 7, 1]) {
      const want = okMap(renderMap(pool, cells)) // what the daemon would have counted for `cells`
      const got = coarsenMap(fine, cells)
      const r = got.regions[0]
      expect(r.perCell % 4, `${cells}`).to.equal(0)
      expect(r.cells.length, `${cells}`).to.be.at.most(cells)
      expect({ ...totals(got), cells: 0 }, `${cells}`).to.deep.equal({ ...totals(want), cells: 0 })
      // each merged cell counts exactly its dpages, as the pool does
      for (const c of r.cells) {
        const first = pool.regions[0].base + (c.firstPfn - r.pfnFirst)
        const n = pool.countRange(first, first + c.dpages)
        expect([c.used, c.poisoned], `${cells} cell ${c.index}`).to.deep.equal([n.used, n.poisoned])
      }
    }
    // a power-of-two region gets exactly the cells asked for
    expect(coarsenMap(fine, 512).regions[0].cells).to.have.length(512)
    expect(coarsenMap(fine, 512).regions[0].perCell).to.equal(32)
  })

  it('reads what the control files render: a real pool, its file, its poison', () => {
    const sb = makeSb({ size: 8 * MiB, nodes: 2, shift: 12 })
    const pool = sb.pool
    createFile(sb, '/a', 300 * 1024)
    const b = createFile(sb, '/b', 1 * MiB)
    createFile(sb, '/c', 700 * 1024)
    const free = pool.regions[0].base + pool.regions[0].dpages - 1 // the last dpage of region 0: free
    expect(pool.ownerOf(free)).to.equal(0)
    pool.poison(free)
    const bDpage = [...b.dpages!.values()][5]
    pool.poison(bDpage) // a used dpage

    for (const cells of [1, 7, 64, 4096]) {
      const map = okMap(renderMap(pool, cells))
      const stat = okStat(renderStat(pool))
      expect(map.regions).to.have.length(pool.regions.length)
      const t = totals(map)
      expect(t.dpages).to.equal(stat.total_dpages)
      expect(t.poisoned).to.equal(stat.poisoned_dpages)
      // a poisoned free dpage is out of service and owned by nobody; a poisoned used one counts in both
      expect(t.used).to.equal((stat.total_dpages as number) - (stat.free_dpages as number) - 1)
      // per node: in use or out of service = used + poisoned - poisoned and used
      const bNode = pool.regions.find(r => bDpage >= r.base && bDpage < r.base + r.dpages)!.node
      for (const node of pool.nodes) {
        const n = totals(map, node.id)
        expect(n.used + n.poisoned - (node.id === bNode ? 1 : 0)).to.equal(node.total - node.free)
      }
      // Marking b's runs from .dmem/pfns marks exactly the cells holding b's dpages.
      const runs = parsePfns(renderPfns(sb), b.ino)
      if (!runs.ok) throw new Error(runs.error)
      const marked = markFile(map, runs.value)
      const expected = new Set<string>()
      for (const d of b.dpages!.values()) {
        const region = pool.regions.find(r => d >= r.base && d < r.base + r.dpages)!
        const perCell = map.regions[region.id].perCell
        expected.add(`${region.id}:${Math.floor((d - region.base) / perCell)}`)
      }
      const got = new Set<string>()
      for (const r of marked.regions) for (const c of r.cells) if (c.file > 0) got.add(`${r.id}:${c.index}`)
      expect([...got].sort()).to.deep.equal([...expected].sort())
      // b's poisoned dpage shows as poisoned in a file, not as b's, not as a poisoned free dpage
      const bRegion = pool.regions.find(r => bDpage >= r.base && bDpage < r.base + r.dpages)!
      const bCell = marked.regions[bRegion.id].cells[Math.floor((bDpage - bRegion.base) / map.regions[bRegion.id].perCell)]
      expect(bCell.state).to.equal('poisoned-file')
      const freeCell = map.regions[0].cells[map.regions[0].cells.length - 1]
      if (cells === 4096) expect(freeCell.state).to.equal('poisoned') // one dpage a cell: the free one alone
      expect(totals(marked).file).to.equal(b.dpages!.size)
    }
  })
})

describe('statmap: sizes and scale', () => {
  it('names sizes as the kernel and people do', () => {
    expect(dpageSizeName(4096)).to.equal('4K')
    expect(dpageSizeName(2 * MiB)).to.equal('2M')
    expect(dpageSizeName(1024 * MiB)).to.equal('1G')
    expect(formatBytes(4096)).to.equal('4 KiB')
    expect(formatBytes(2 * MiB)).to.equal('2 MiB')
    expect(formatBytes(586 * 4096)).to.equal('2.29 MiB')
    expect(formatBytes(1024 * MiB)).to.equal('1 GiB')
    expect(formatBytes(100)).to.equal('100 bytes')
  })

  it('says how much a cell is, and when the last cell is smaller', () => {
    const map = okMap(MAP_TEXT)
    expect(scaleText(map.regions[0])).to.equal('1 cell = 4 dpages of 4K = 16 KiB (the last cell 2 dpages)')
    const one = okMap('region 0 node 0 phys 0x100000000 dpages 2 dpage_size 2097152 per_cell 1 cells 0/0 1/0\n')
    expect(scaleText(one.regions[0])).to.equal('1 cell = 1 dpage of 2M = 2 MiB')
    const big = okMap('region 0 node 0 phys 0x100000000 dpages 262144 dpage_size 4096 per_cell 512 cells ' +
      Array(512).fill('0/0').join(' ') + '\n')
    expect(scaleText(big.regions[0])).to.equal('1 cell = 512 dpages of 4K = 2 MiB')
  })
})

describe('statmap: text', () => {
  const map = okMap(MAP_TEXT)
  const stat = okStat(STAT_TEXT)

  it('draws each node and region: range, scale, and a grid row per 64 cells, one character a cell', () => {
    const text = renderText(map, stat)
    expect(text).to.not.match(/\x1b/)
    expect(text).to.include('legend: ! poisoned dpage in a file   X poisoned free dpage   # all used   + partly used   . all free')
    expect(text).to.include('node 0: 10 dpages, 5 free, 6 used, 1 poisoned')
    expect(text).to.include('node 1: 10 dpages, 7 free, 4 used, 1 poisoned')
    expect(text).to.include('  region 0: pfn 0x100000-0x100009 (phys 0x100000000-0x100009fff), 10 dpages, 6 used, 1 poisoned')
    expect(text).to.include('  region 1: pfn 0x10000a-0x100013 (phys 0x10000a000-0x100013fff)')
    expect(text).to.include('  1 cell = 4 dpages of 4K = 16 KiB (the last cell 2 dpages)')
    expect(gridRows(text)).to.deep.equal([{ pfn: 0x100000, cells: '#X.' }, { pfn: 0x10000a, cells: '.+X' }])
    expect(text.indexOf('node 0')).to.be.lessThan(text.indexOf('region 0:'))
    expect(text.indexOf('region 0:')).to.be.lessThan(text.indexOf('node 1'))
  })

  it('says 1 dpage, not 1 dpages, in the text and the SVG', () => {
    const one = okMap('region 0 node 0 phys 0x40000000 dpages 1 dpage_size 1073741824 per_cell 1 cells 1/0\n')
    const text = renderText(one, null)
    expect(text).to.include('node 0: 1 dpage, 1 used, 0 poisoned')
    expect(text).to.include('(phys 0x40000000-0x7fffffff), 1 dpage, 1 used')
    expect(renderSvg(one, null)).to.include(', 1 dpage; ')
    expect(text + renderSvg(one, null)).to.not.match(/\b1 dpages\b/)
  })

  it('wraps a region\'s cells into rows, each row starting with its first PFN', () => {
    const cells = Array.from({ length: 150 }, (_, i) => i % 3 === 0 ? '1/0' : '0/0')
    const big = okMap(`region 0 node 0 phys 0x100000000 dpages 150 dpage_size 4096 per_cell 1 cells ${cells.join(' ')}\n`)
    const rows = gridRows(renderText(big, null))
    expect(rows.map(r => r.cells.length)).to.deep.equal([64, 64, 22])
    expect(rows.map(r => r.pfn)).to.deep.equal([0x100000, 0x100040, 0x100080])
    expect(rows.map(r => r.cells).join('')).to.equal(cells.map(c => c === '1/0' ? '#' : '.').join(''))
    expect(gridRows(renderText(big, null, { rowCells: 100 })).map(r => r.cells.length)).to.deep.equal([100, 50])
  })

  it('colours cells for a terminal; without the escapes it is the plain text', () => {
    const plain = renderText(map, stat)
    const colour = renderText(map, stat, { colour: true })
    expect(colour).to.include('\x1b[1;31mX\x1b[0m') // poison in bold red
    expect(colour).to.include('\x1b[32m#') // used in green
    expect(colour).to.include('\x1b[2m.') // free dimmed
    expect(stripAnsi(colour)).to.equal(plain)
    // one escape per change of state, not per cell
    const rowMap = okMap('region 0 node 0 phys 0x100000000 dpages 64 dpage_size 4096 per_cell 1 cells ' +
      Array(64).fill('0/0').join(' ') + '\n')
    const row = renderText(rowMap, null, { colour: true }).split('\n').find(l => l.includes('0x100000 '))!
    expect(row.match(/\x1b\[/g)).to.have.length(2)
  })

  it('in a file\'s map, marks its cells F and names it in the legend', () => {
    const marked = markFile(map, [{ pfn: 0x10000e, frames: 1 }])
    const text = renderText(marked, null, { fileLabel: 'data.bin' })
    expect(text).to.match(/^legend: ! poisoned dpage in a file {3}X poisoned free dpage {3}F holds data\.bin {3}#/)
    expect(gridRows(text).map(r => r.cells)).to.deep.equal(['#X.', '.FX'])
    expect(text).to.include('node 1: 10 dpages, 4 used, 1 poisoned, 1 of the file')
    expect(legendText(map)).to.not.include('F ')
  })
})

describe('statmap: SVG', () => {
  const map = okMap(MAP_TEXT)
  const stat = okStat(STAT_TEXT)

  it('is a well-formed SVG document with one <rect> per cell, each with a hover title', () => {
    const svg = renderSvg(map, stat, { title: 'dmemfs pool at /mnt' })
    expect(svg.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<svg ')).to.equal(true)
    const root = parseXml(svg)
    expect(root.name).to.equal('svg')
    expect(root.attrs.xmlns).to.equal('http://www.w3.org/2000/svg')
    expect(Number(root.attrs.width)).to.be.greaterThan(64 * 3)
    const cells = all(root, 'rect').filter(r => classes(r).includes('cell'))
    expect(cells).to.have.length(6)
    expect(cells.map(r => classes(r)[1])).to.deep.equal(['used', 'poisoned', 'free', 'free', 'partial', 'poisoned'])
    const titles = cells.map(r => r.children.find(c => c.name === 'title')?.text)
    expect(titles[1]).to.equal('region 0 cell 1: pfn 0x100004-0x100007, 4 dpages, 2 used, 1 poisoned (poisoned)')
    expect(titles[5]).to.equal('region 1 cell 2: pfn 0x100012-0x100013, 2 dpages, 1 used, 1 poisoned (poisoned)')
    // the cells sit inside the image
    for (const r of cells) {
      expect(Number(r.attrs.x) + Number(r.attrs.width)).to.be.at.most(Number(root.attrs.width))
      expect(Number(r.attrs.y) + Number(r.attrs.height)).to.be.at.most(Number(root.attrs.height))
    }
    // a legend swatch for each state shown, none counted as a cell
    const legend = all(root, 'rect').filter(r => classes(r).includes('legend'))
    expect(legend.map(r => classes(r)[1])).to.deep.equal(['poisoned-file', 'poisoned', 'used', 'partial', 'free'])
    const texts = all(root, 'text').map(t => t.text)
    expect(texts).to.include('dmemfs pool at /mnt')
    expect(texts.some(t => t.includes('1 cell = 4 dpages of 4K = 16 KiB'))).to.equal(true)
    expect(root.children.filter(c => c.name === 'g' && classes(c).includes('region'))).to.have.length(2)
  })

  it('wraps rows at 64 cells and grows to hold them', () => {
    const cells = Array(4096).fill('0/0')
    const big = okMap(`region 0 node 0 phys 0x100000000 dpages 4096 dpage_size 4096 per_cell 1 cells ${cells.join(' ')}\n`)
    const root = parseXml(renderSvg(big, null))
    const rects = all(root, 'rect').filter(r => classes(r).includes('cell'))
    expect(rects).to.have.length(4096)
    const xs = new Set(rects.map(r => r.attrs.x))
    const ys = new Set(rects.map(r => r.attrs.y))
    expect(xs.size).to.equal(64)
    expect(ys.size).to.equal(64)
  })

  it('escapes what it is given', () => {
    expect(xmlEscape('a<b>&"c\'\x01')).to.equal('a&lt;b&gt;&amp;&quot;c&apos;?')
    const marked = markFile(map, [{ pfn: 0x100000, frames: 1 }])
    const svg = renderSvg(marked, stat, { title: 'pool at /mnt/<a & b>', fileLabel: '"x" & <y>' })
    const root = parseXml(svg)
    expect(all(root, 'title')[0].text).to.equal('pool at /mnt/<a & b>')
    expect(all(root, 'text').map(t => t.text)).to.include('holds "x" & <y>')
    expect(all(root, 'rect').filter(r => classes(r).includes('file'))).to.have.length(2) // swatch and cell
  })

  it('the checker itself refuses what is not well-formed', () => {
    expect(() => parseXml('<svg><rect></svg>')).to.throw(/closes/)
    expect(() => parseXml('<svg><rect x=1/></svg>')).to.throw(/malformed tag/)
    expect(() => parseXml('<svg>a & b</svg>')).to.throw(/bad entity/)
    expect(() => parseXml('<svg x="1" x="2"/>')).to.throw(/repeated/)
    expect(() => parseXml('<svg/><svg/>')).to.throw(/second root/)
    expect(() => parseXml('<svg>')).to.throw(/never closed/)
    expect(parseXml('<?xml version="1.0"?>\n<a b="&lt;"><c/>t&amp;</a>\n').children).to.have.length(1)
  })
})

describe('statmap: JSON', () => {
  it('gives stat and regions with cells, PFNs as hex strings', () => {
    const map = okMap(MAP_TEXT)
    const json = JSON.parse(JSON.stringify(statJson(okStat(STAT_TEXT), map)))
    expect(Object.keys(json)).to.deep.equal(['stat', 'regions'])
    expect(json.stat.free_dpages).to.equal(12)
    expect(json.regions[1]).to.deep.include({
      id: 1, node: 1, phys: '0x10000a000', pfn_first: '0x10000a', pfn_last: '0x100013', dpages: 10, dpage_size: 4096, per_cell: 4
    })
    expect(json.regions[1].cells[2]).to.deep.equal({ first_pfn: '0x100012', dpages: 2, used: 1, poisoned: 1, poisoned_in_file: 0, state: 'poisoned' })
    const marked = regionsJson(markFile(map, [{ pfn: 0x100000, frames: 2 }]), true)
    expect(marked[0].cells[0]).to.deep.equal({ first_pfn: '0x100000', dpages: 4, used: 4, poisoned: 0, poisoned_in_file: 0, file: 2, state: 'file' })
    expect(marked[1].cells[0].file).to.equal(0)
  })

  it('a cell title names a single frame without a range', () => {
    const one = okMap('region 0 node 0 phys 0x100000000 dpages 2 dpage_size 4096 per_cell 1 cells 1/0 0/0\n')
    expect(cellTitle(one.regions[0], one.regions[0].cells[1])).to.equal('region 0 cell 1: pfn 0x100001, 1 dpage, 0 used, 0 poisoned (free)')
  })
})
