// `dmemfs stat` and `dmemfs pfn --map` on real mounts: the map's counts against .dmem/stat, the text grid,
// colours only on a terminal, the SVG checked by python3's XML parser, JSON for scripts, a file's cells,
// poison showing up, --watch redrawing until SIGINT, and the errors.

import { expect } from 'chai'
import { spawn } from 'child_process'
import * as fs from 'fs'
import * as path from 'path'
import { JsonRegion } from '../../src/statmap'
import { Run } from './children'
import { BIN, DmemfsMount, parseStat, sh, ShResult, sleep, stopAll, tempDir } from './harness'

interface StatJson {
  stat: Record<string, number>
  regions: JsonRegion[]
  poisoned: Array<{ pfn: string, state: string, path: string | null }> | null
  poisoned_absent?: string
}

function dmemfs (args: string, env = ''): ShResult {
  return sh(`${env} ${BIN} ${args}`)
}

function okJson<T> (args: string): T {
  const r = dmemfs(args)
  if (r.status !== 0) throw new Error(`dmemfs ${args} exited ${r.status}: ${r.stderr}`)
  return JSON.parse(r.stdout) as T
}

function statJson (m: DmemfsMount, cells?: number): StatJson {
  return okJson<StatJson>(`stat ${m.mnt} --json${cells ? ` --cells ${cells}` : ''}`)
}

function sum (regions: JsonRegion[], key: 'used' | 'poisoned' | 'dpages' | 'file', node?: number): number {
  let n = 0
  for (const r of regions) {
    if (node !== undefined && r.node !== node) continue
    for (const c of r.cells) n += c[key] ?? 0
  }
  return n
}

/** The grid rows of a text map: the PFN each row starts at and its cell characters. */
function gridRows (text: string): Array<{ pfn: number, cells: string }> {
  return text.split('\n').filter(l => /^ {4} *0x[0-9a-f]+ /.test(l)).map(l => {
    const [pfn, cells] = l.trim().split(' ')
    return { pfn: parseInt(pfn, 16), cells }
  })
}

/** The first PFN of each cell drawn as `ch` (the grid's PFN column gives each row's first cell). */
function cellsDrawn (text: string, ch: string, framesPerCell: number): number[] {
  const out: number[] = []
  for (const row of gridRows(text)) {
    [...row.cells].forEach((c, i) => { if (c === ch) out.push(row.pfn + i * framesPerCell) })
  }
  return out
}

/** Every 4 KiB-dpage PFN backing `file`, from `dmemfs pfn --json`. */
function filePfns (file: string): number[] {
  const out: number[] = []
  for (const run of okJson<Run[]>(`pfn ${file} --json`)) {
    for (let i = 0; i < run.frames; i++) out.push(parseInt(run.pfn, 16) + i)
  }
  return out
}

/** Parses an SVG with python3's XML parser; returns its root tag, its cells with their titles and classes. */
function pythonSvg (file: string): { root: string, cells: Array<{ cls: string, title: string }>, regions: number } {
  const script = `
import json, sys, xml.etree.ElementTree as ET
ns = '{http://www.w3.org/2000/svg}'
root = ET.parse(sys.argv[1]).getroot()
cells = [{'cls': e.get('class'), 'title': e.findtext(ns + 'title')}
         for e in root.iter(ns + 'rect') if 'cell' in (e.get('class') or '').split()]
regions = [g for g in root.iter(ns + 'g') if 'region' in (g.get('class') or '').split()]
print(json.dumps({'root': root.tag, 'cells': cells, 'regions': len(regions)}))
`
  const res = sh(`python3 - ${shellQuote(file)}`, undefined, script)
  if (res.status !== 0) throw new Error(`python3 could not parse ${file}: ${res.stderr}`)
  return JSON.parse(res.stdout)
}

function shellQuote (s: string): string {
  return `'${s.replace(/'/g, "'\\''")}'`
}

const hex = (n: number): string => '0x' + n.toString(16)

describe('dmemfs stat: the pool as a map (16M pool of 4K dpages)', function () {
  let m: DmemfsMount

  beforeEach(async function () {
    m = await DmemfsMount.start('size=16M')
  })

  afterEach(async function () {
    await stopAll()
  })

  it('prints .dmem/stat and a map whose counts match it, poisoned free and used dpages included', function () {
    // Fragment the pool a little: a hole where 'a' was, 'c' filling it and going on.
    m.ok('head -c 300K /dev/urandom > a && head -c 1M /dev/urandom > b && rm a && head -c 2M /dev/urandom > c')
    const usedPfn = filePfns(m.path('c'))[100]
    const freePfn = 0x100000 + 4096 - 1 // the pool's last dpage: nothing reaches it
    expect(dmemfs(`mce ${m.mnt} ${hex(usedPfn)}`).status).to.equal(0)
    m.ok(`echo ${hex(freePfn)} > .dmem/mce`)
    const st = m.stat()
    expect(st.poisoned_dpages).to.equal(2)

    // One dpage a cell: every count is exact.
    const fine = statJson(m, 4096)
    expect(fine.stat).to.deep.equal(st)
    expect(fine.regions).to.have.length(1)
    const r = fine.regions[0]
    expect(r).to.deep.include({ id: 0, node: 0, phys: '0x100000000', pfn_first: '0x100000', pfn_last: '0x100fff', dpages: 4096, dpage_size: 4096, per_cell: 1 })
    expect(r.cells).to.have.length(4096)
    const poisonedFree = r.cells.filter(c => c.poisoned === 1 && c.used === 0)
    const poisonedUsed = r.cells.filter(c => c.poisoned === 1 && c.used === 1)
    expect(poisonedFree.map(c => parseInt(c.first_pfn, 16))).to.deep.equal([freePfn])
    expect(poisonedUsed.map(c => parseInt(c.first_pfn, 16))).to.deep.equal([usedPfn])
    // A free dpage that is poisoned is out of service but owned by nobody; a used one counts in both.
    expect(sum(fine.regions, 'used')).to.equal(st.total_dpages - st.free_dpages - poisonedFree.length)
    expect(sum(fine.regions, 'poisoned')).to.equal(st.poisoned_dpages)
    expect(sum(fine.regions, 'used') + sum(fine.regions, 'poisoned') - poisonedUsed.length)
      .to.equal(st.total_dpages - st.free_dpages)
    expect(sum(fine.regions, 'used')).to.equal(256 + 512) // b and c, in 4K dpages
    // The poisoned dpage in c and the poisoned free one are drawn apart.
    expect(r.cells.filter(c => c.state === 'poisoned').map(c => parseInt(c.first_pfn, 16))).to.deep.equal([freePfn])
    expect(r.cells.filter(c => c.state === 'poisoned-file').map(c => parseInt(c.first_pfn, 16))).to.deep.equal([usedPfn])
    expect(poisonedUsed.map(c => c.poisoned_in_file)).to.deep.equal([1])
    // And the poisoned list, for root, says which is which.
    expect(fine.poisoned!.map(p => [p.pfn, p.state, p.path])).to.deep.equal([[hex(usedPfn), 'used', '/c'], [hex(freePfn), 'free', null]])

    // The default map: 512 cells of 8 dpages, same totals.
    const coarse = statJson(m)
    const cr = coarse.regions[0]
    expect(cr.per_cell).to.equal(8)
    expect(cr.cells).to.have.length(512)
    expect(sum(coarse.regions, 'dpages')).to.equal(st.total_dpages)
    expect(sum(coarse.regions, 'used')).to.equal(st.total_dpages - st.free_dpages - 1)
    expect(sum(coarse.regions, 'poisoned')).to.equal(st.poisoned_dpages)
    for (const c of cr.cells) {
      const want = c.poisoned_in_file > 0 ? 'poisoned-file' : c.poisoned > 0 ? 'poisoned' : c.used === 0 ? 'free' : c.used === c.dpages ? 'used' : 'partial'
      expect(c.state, JSON.stringify(c)).to.equal(want)
    }

    // The text: the statistics as .dmem/stat has them, then the legend, the scale and the grid.
    const out = dmemfs(`stat ${m.mnt}`)
    expect(out.status, out.stderr).to.equal(0)
    expect(out.stderr).to.equal('')
    const statText = fs.readFileSync(m.path('.dmem/stat'), 'utf8')
    expect(out.stdout.startsWith(statText)).to.equal(true)
    expect(out.stdout).to.not.include('\x1b') // not a terminal: no colours
    expect(out.stdout).to.match(/^legend: ! poisoned dpage in a file {3}X poisoned free dpage {3}# all used {3}\+ partly used {3}\. all free/m)
    expect(out.stdout).to.include('  1 cell = 8 dpages of 4K = 32 KiB\n')
    expect(out.stdout).to.include('  region 0: pfn 0x100000-0x100fff (phys 0x100000000-0x100ffffff), 4096 dpages, 768 used, 2 poisoned\n')
    expect(out.stdout).to.include(`node 0: 4096 dpages, ${st.free_dpages} free, 768 used, 2 poisoned\n`)
    const rows = gridRows(out.stdout)
    expect(rows).to.have.length(8)
    expect(rows.map(x => x.pfn)).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7].map(i => 0x100000 + i * 64 * 8))
    const drawn = rows.map(x => x.cells).join('')
    expect(drawn).to.match(/^[.+#X!]{512}$/)
    const chars: Record<string, string> = { free: '.', partial: '+', used: '#', poisoned: 'X', 'poisoned-file': '!' }
    expect(drawn).to.equal(cr.cells.map(c => chars[c.state]).join(''))
    expect(cellsDrawn(out.stdout, 'X', 8)).to.deep.equal([freePfn - 7])
    expect(cellsDrawn(out.stdout, '!', 8)).to.deep.equal([usedPfn - usedPfn % 8])
  })

  it('after a free PFN is poisoned, the map shows a poisoned cell there', function () {
    m.ok('head -c 1M /dev/urandom > data')
    const before = statJson(m, 64)
    expect(before.regions[0].cells.every(c => c.poisoned === 0)).to.equal(true)
    const pfn = 0x100000 + 3000 // free: data holds the first 256 dpages
    m.ok(`echo ${hex(pfn)} > .dmem/mce`)
    const after = statJson(m, 64)
    const cells = after.regions[0].cells
    const at = Math.floor(3000 / 64)
    expect(cells[at]).to.deep.equal({ first_pfn: hex(0x100000 + at * 64), dpages: 64, used: 0, poisoned: 1, poisoned_in_file: 0, state: 'poisoned' })
    expect(cells.filter(c => c.state === 'poisoned')).to.have.length(1)
    expect(after.stat.poisoned_dpages).to.equal(1)
    expect(after.stat.free_dpages).to.equal(before.stat.free_dpages - 1)
    const text = dmemfs(`stat ${m.mnt} --cells 64`).stdout
    expect(cellsDrawn(text, 'X', 64)).to.deep.equal([0x100000 + at * 64])
    expect(text).to.include('1 poisoned')
  })

  it('pfn --map marks exactly the cells holding the file, after the run listing', function () {
    // Interleave two files so that each one's dpages are scattered through the pool.
    m.ok('for i in 1 2 3 4 5 6; do head -c 40K /dev/urandom >> a; head -c 100K /dev/urandom >> b; done')
    const pfns = filePfns(m.path('a'))
    expect(pfns).to.have.length(60)
    const listing = dmemfs(`pfn ${m.path('a')}`)
    expect(listing.status).to.equal(0)

    // One dpage a cell: F exactly where a's dpages are.
    const fine = dmemfs(`pfn ${m.path('a')} --map --cells 4096`)
    expect(fine.status, fine.stderr).to.equal(0)
    expect(fine.stdout.startsWith(listing.stdout)).to.equal(true)
    expect(fine.stdout).to.match(/^legend: ! poisoned dpage in a file {3}X poisoned free dpage {3}F holds a {3}#/m)
    expect(fine.stdout).to.include('60 of the file')
    const byPfn = (a: number, b: number): number => a - b
    expect(cellsDrawn(fine.stdout, 'F', 1)).to.deep.equal([...pfns].sort(byPfn))
    expect(cellsDrawn(fine.stdout, '#', 1)).to.deep.equal(filePfns(m.path('b')).sort(byPfn))

    // Coarser cells: F on every cell holding one of a's dpages, and on no other.
    const coarse = dmemfs(`pfn ${m.path('a')} --map --cells 256`) // 16 dpages a cell
    expect(coarse.stdout).to.include('1 cell = 16 dpages of 4K = 64 KiB')
    const want = [...new Set(pfns.map(p => p - (p - 0x100000) % 16))].sort(byPfn)
    expect(cellsDrawn(coarse.stdout, 'F', 16)).to.deep.equal(want)

    // And for scripts.
    const json = okJson<{ runs: Run[], regions: JsonRegion[] }>(`pfn ${m.path('a')} --map --json --cells 4096`)
    expect(json.runs).to.deep.equal(okJson<Run[]>(`pfn ${m.path('a')} --json`))
    const marked = json.regions[0].cells.filter(c => (c.file ?? 0) > 0)
    expect(marked.map(c => parseInt(c.first_pfn, 16))).to.deep.equal([...pfns].sort(byPfn))
    expect(marked.every(c => c.state === 'file')).to.equal(true)
    expect(sum(json.regions, 'file')).to.equal(60)
  })

  it('counts one run, one frame and one byte in the singular', function () {
    m.ok('printf x > one')
    const r = dmemfs(`pfn ${m.path('one')}`)
    expect(r.status, r.stderr).to.equal(0)
    expect(r.stdout.split('\n')[0]).to.equal(`${m.path('one')}: 1 run, 1 frame of 4K (size 1 byte)`)
  })

  it('colours the map on a terminal only (and not with NO_COLOR)', function () {
    if (sh('command -v script').status !== 0) this.skip()
    m.ok('head -c 1M /dev/urandom > data')
    const tty = sh(`script -qec ${shellQuote(`${BIN} stat ${m.mnt}`)} /dev/null`)
    expect(tty.status, tty.stderr).to.equal(0)
    expect(tty.stdout).to.include('\x1b[32m#') // used, green
    expect(tty.stdout).to.include('\x1b[2m.') // free, dim
    const noColour = sh(`script -qec ${shellQuote(`NO_COLOR=1 ${BIN} stat ${m.mnt}`)} /dev/null`)
    expect(noColour.stdout).to.not.include('\x1b[')
    expect(noColour.stdout).to.include('####')
  })

  it('--watch redraws every second, showing changes, until SIGINT (exit 0)', async function () {
    const proc = spawn(BIN, ['stat', m.mnt, '--watch', '--cells', '64'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    proc.stdout.on('data', (d: Buffer) => { out += d.toString() })
    proc.stderr.on('data', (d: Buffer) => { err += d.toString() })
    const exited = new Promise<number | null>(resolve => proc.on('exit', code => resolve(code)))
    const frames = (): string[] => out.split(/(?=Every 1s: dmemfs stat )/).filter(f => f.startsWith('Every'))
    const waitFor = async (what: () => boolean, ms: number): Promise<void> => {
      const deadline = Date.now() + ms
      while (!what()) {
        if (Date.now() > deadline) throw new Error(`timed out; output so far:\n${out}\n${err}`)
        await sleep(50)
      }
    }
    try {
      const whole = (f: string | undefined): boolean => /\n {4}0x100000 [.+#X]{64}\n/.test(f ?? '')
      await waitFor(() => whole(frames()[0]), 5000)
      const t0 = Date.now()
      expect(frames()[0]).to.include('0 used, 0 poisoned')
      m.ok('head -c 1M /dev/urandom > data')
      await waitFor(() => frames().some(f => whole(f) && f.includes('256 used')), 4000)
      const n = frames().length
      await waitFor(() => frames().length >= n + 1, 3000)
      expect(Date.now() - t0).to.be.greaterThan(900) // about one frame a second, not a flood
      expect(frames().length).to.be.at.most(Math.ceil((Date.now() - t0) / 1000) + 2)
      proc.kill('SIGINT')
      expect(await exited).to.equal(0)
      expect(err).to.equal('')
    } finally {
      proc.kill('SIGKILL')
    }
  })

  it('fails with one line and a non-zero exit on bad usage or a path that is not a dmemfs', function () {
    const notDmemfs = tempDir()
    const cases: Array<[string, number, RegExp]> = [
      [`stat ${notDmemfs}`, 1, /is not a mounted dmemfs/],
      ['stat /nonexistent/dmemfs', 1, /^dmemfs: \/nonexistent\/dmemfs does not exist$/m],
      [`stat ${m.mnt}/nothing`, 1, /nothing does not exist$/m],
      [`pfn ${m.path('.dmem/stat')}`, 1, /\.dmem\/stat is not a regular dmemfs file/],
      [`pfn ${m.path('.dmem/pfns')} --json`, 1, /\.dmem\/pfns is not a regular dmemfs file/],
      [`pfn ${m.mnt}`, 1, /is not a regular dmemfs file/],
      ['stat', 2, /stat needs exactly one MOUNTPOINT/],
      [`stat ${m.mnt} ${m.mnt}`, 2, /stat needs exactly one MOUNTPOINT/],
      [`stat ${m.mnt} --cells 0`, 2, /--cells needs a number from 1 to 4096/],
      [`stat ${m.mnt} --cells 4097`, 2, /--cells needs a number from 1 to 4096/],
      [`stat ${m.mnt} --cells x`, 2, /--cells needs a number/],
      [`stat ${m.mnt} --svg`, 2, /--svg needs a value/],
      [`stat ${m.mnt} --colour`, 2, /unknown flag '--colour'/],
      [`stat ${m.mnt} --json --watch`, 2, /not with --json/],
      [`stat ${m.mnt} --svg ${notDmemfs}/no/such/dir/x.svg`, 1, /x\.svg: no such file or directory/],
      [`pfn /etc/passwd --map`, 1, /is not on a dmemfs/],
      [`pfn ${m.path('nothing')} --map`, 1, /nothing: no such file or directory/],
      [`pfn ${m.path('.dmem/stat')} --cells 8`, 2, /--cells goes with --map/]
    ]
    for (const [args, status, message] of cases) {
      const r = dmemfs(args)
      expect(r.status, args).to.equal(status)
      expect(r.stderr, args).to.match(message)
      expect(r.stderr.trim().split('\n'), args).to.have.length(1)
      expect(r.stderr, args).to.match(/^dmemfs: /)
    }
    const help = dmemfs('stat --help')
    expect(help.status).to.equal(0)
    expect(help.stdout).to.match(/^usage: dmemfs stat MOUNTPOINT \[--json\] \[--svg FILE\] \[--watch\] \[--cells N\]/)
    expect(dmemfs('--help').stdout).to.match(/^ {2}stat MOUNTPOINT/m)
  })
})

describe('dmemfs stat as a user other than root (allow_other)', function () {
  let m: DmemfsMount

  before(async function () {
    m = await DmemfsMount.start('size=64M,allow_other')
    m.ok('head -c 300K /dev/urandom > a && head -c 5M /dev/urandom > b && rm a && head -c 1M /dev/urandom > c')
    m.ok(`echo ${hex(0x100000 + 16383)} > .dmem/mce`) // free, the pool's last dpage
    m.ok(`echo ${hex(filePfns(m.path('b'))[7])} > .dmem/mce`) // in b
  })

  after(stopAll)

  const asNobody = (args: string): ShResult => sh(`setpriv --reuid=65534 --regid=65534 --clear-groups ${BIN} ${args}`)

  it('draws the same map as root does, writing nothing', function () {
    const before = fs.readFileSync(m.path('.dmem/map'), 'utf8')
    for (const cells of ['', ' --cells 4096', ' --cells 300', ' --cells 1']) {
      const user = asNobody(`stat ${m.mnt} --json${cells}`)
      expect(user.status, user.stderr).to.equal(0)
      expect(user.stderr).to.equal('')
      // Everything root sees but the poisoned list, which only root may read: absent, with the reason.
      const mine = JSON.parse(user.stdout) as StatJson
      expect([mine.poisoned, mine.poisoned_absent]).to.deep.equal([null, 'only root may read .dmem/poisoned'])
      const root = okJson<StatJson>(`stat ${m.mnt} --json${cells}`)
      expect(root.poisoned).to.have.length(2)
      expect({ ...mine, poisoned: root.poisoned, poisoned_absent: undefined }).to.deep.equal({ ...root, poisoned_absent: undefined })
    }
    const text = asNobody(`stat ${m.mnt}`)
    expect(text.status, text.stderr).to.equal(0)
    expect(text.stdout).to.equal(dmemfs(`stat ${m.mnt}`).stdout)
    expect(fs.readFileSync(m.path('.dmem/map'), 'utf8')).to.equal(before)
  })

  it('counts exactly what the pool holds, from .dmem/map read by that user', function () {
    const st = m.stat()
    const fine = JSON.parse(asNobody(`stat ${m.mnt} --json --cells 4096`).stdout) as StatJson
    const r = fine.regions[0]
    expect([r.per_cell, r.cells.length]).to.deep.equal([4, 4096])
    expect(sum(fine.regions, 'used')).to.equal(1280 + 256) // b and c
    expect(sum(fine.regions, 'poisoned')).to.equal(st.poisoned_dpages)
    const coarse = JSON.parse(asNobody(`stat ${m.mnt} --json`).stdout) as StatJson
    expect([coarse.regions[0].per_cell, coarse.regions[0].cells.length]).to.deep.equal([32, 512])
    expect(sum(coarse.regions, 'used')).to.equal(1280 + 256)
    expect(sum(coarse.regions, 'poisoned')).to.equal(2)
    // A cell that does not divide evenly: fewer, larger cells with the same totals.
    const odd = JSON.parse(asNobody(`stat ${m.mnt} --json --cells 300`).stdout) as StatJson
    expect(odd.regions[0].cells.length).to.be.at.most(300)
    expect(odd.regions[0].per_cell % 4).to.equal(0)
    expect([sum(odd.regions, 'dpages'), sum(odd.regions, 'used'), sum(odd.regions, 'poisoned')]).to.deep.equal([16384, 1536, 2])
  })

  it('.dmem/map is read-only: what a read shows is all it does; writes are refused', function () {
    const text = m.ok('cat .dmem/map')
    expect(text.split('\n')[1]).to.match(/^region 0 node 0 phys 0x100000000 dpages 16384 dpage_size 4096 per_cell 4 cells /)
    const w = m.sh('echo cells=8 > .dmem/map')
    expect(w.status).to.not.equal(0)
    expect(w.stderr).to.match(/Permission denied/)
    expect(m.ok('cat .dmem/map')).to.equal(text)
    expect(m.ok('stat -c %a .dmem/map')).to.equal('444\n')
  })
})

describe('dmemfs stat: two nodes of 2M dpages, and the SVG', function () {
  let m: DmemfsMount

  before(async function () {
    m = await DmemfsMount.start('dmem=64M:2M,nodes=2,pagesize=2M')
    // Files go to their home node (ino mod nodes): both nodes get some.
    m.ok('for i in 1 2 3 4 5; do head -c 5M /dev/urandom > f$i; done && truncate -s 100M sparse')
  })

  after(async function () {
    await stopAll()
  })

  it('per node, the map counts what .dmem/stat says is in use', function () {
    const st = m.stat()
    const json = statJson(m)
    expect(json.regions.map(r => [r.node, r.dpages, r.per_cell, r.cells.length, r.pfn_first]))
      .to.deep.equal([[0, 32, 1, 32, '0x100000'], [1, 32, 1, 32, '0x140000']])
    for (const node of [0, 1]) {
      const used = sum(json.regions, 'used', node)
      expect(used, `node ${node}`).to.equal(st[`node${node}.total_dpages`] - st[`node${node}.free_dpages`])
      expect(used, `node ${node}`).to.be.greaterThan(0)
    }
    expect(sum(json.regions, 'used')).to.equal(5 * 3) // 5M in 2M dpages; the sparse file has none
    const text = dmemfs(`stat ${m.mnt}`).stdout
    expect(text).to.include('  1 cell = 1 dpage of 2M = 2 MiB\n')
    expect(text).to.match(/^node 0: 32 dpages, \d+ free, \d+ used, 0 poisoned$/m)
    expect(text).to.match(/^node 1: 32 dpages, \d+ free, \d+ used, 0 poisoned$/m)
    expect(gridRows(text).map(r => r.pfn)).to.deep.equal([0x100000, 0x140000])
    // A file's 2M dpages: each F cell is one of its dpages.
    const runs = okJson<Run[]>(`pfn ${m.path('f2')} --json`)
    const map = dmemfs(`pfn ${m.path('f2')} --map`).stdout
    const want = runs.flatMap(r => Array.from({ length: r.frames / 512 }, (_, i) => parseInt(r.pfn, 16) + i * 512))
    expect(cellsDrawn(map, 'F', 512)).to.deep.equal(want.sort((a, b) => a - b))
  })

  it('--svg writes a well-formed SVG with one cell per map cell, titled with its PFN range', function () {
    const dir = tempDir()
    const file = path.join(dir, 'pool.svg')
    const r = dmemfs(`stat ${m.mnt} --svg ${file}`)
    expect(r.status, r.stderr).to.equal(0)
    expect(r.stdout).to.match(/^legend: /m) // the text map still goes to the terminal
    const svg = pythonSvg(file)
    expect(svg.root).to.equal('{http://www.w3.org/2000/svg}svg')
    expect(svg.regions).to.equal(2)
    expect(svg.cells).to.have.length(64)
    const json = statJson(m)
    const cells = json.regions.flatMap(reg => reg.cells)
    svg.cells.forEach((c, i) => {
      expect(c.cls).to.equal(`cell ${cells[i].state}`)
      const first = parseInt(cells[i].first_pfn, 16)
      expect(c.title).to.include(`pfn ${hex(first)}-${hex(first + 511)}, 1 dpage, ${cells[i].used} used, 0 poisoned`)
    })
    // Finer cells than dpages cannot be: a 2M dpage is one cell at most.
    const fine = path.join(dir, 'fine.svg')
    expect(dmemfs(`stat ${m.mnt} --svg ${fine} --cells 4096`).status).to.equal(0)
    expect(pythonSvg(fine).cells).to.have.length(64)
    // --svg - writes the image to standard output instead of the text.
    const stdout = dmemfs(`stat ${m.mnt} --svg - --cells 16`)
    expect(stdout.status).to.equal(0)
    fs.writeFileSync(path.join(dir, 'out.svg'), stdout.stdout)
    const coarse = pythonSvg(path.join(dir, 'out.svg'))
    expect(coarse.cells).to.have.length(32)
    expect(coarse.cells[0].title).to.include('2 dpages')
  })
})
