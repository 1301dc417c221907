// Unit tests of the control directory's files without FUSE: what stat and pfns render, what mce and
// unpoison accept, what they refuse (with EINVAL and a readable reason, changing nothing), and what they
// reply.

import { expect } from 'chai'
import { EBUSY, EINVAL } from '../../src/fs/errno'
import { Superblock } from '../../src/fs/super'
import { ControlDir, ControlFile, MAP_CELLS, renderMap, renderPfns, renderStat, WriteResult } from '../../src/control/control'
import { MiB } from '../../src/pool/layout'
import { createFile, createOpen, FakeEnv, fakeEnv, lookup, makeSb, pfnOfIndex, writeAt } from './mce-fixtures'

const BASE_PFN = 0x100000
const NODE1_PFN = 0x140000

function file (dir: ControlDir, name: string): ControlFile {
  const f = dir.files.get(name)
  if (!f) throw new Error(`no control file ${name}`)
  return f
}

function write (dir: ControlDir, name: string, text: string): WriteResult {
  const f = file(dir, name)
  if (!f.write) throw new Error(`${name} is not writable`)
  const r = f.write(text)
  if (r instanceof Promise) throw new Error(`${name} answers later: use writeMce`)
  return r
}

/** `.dmem/mce` answers once the revocation and the signals are done. */
async function writeMce (dir: ControlDir, text: string): Promise<WriteResult> {
  return await file(dir, 'mce').write!(text)
}

function render (dir: ControlDir, name: string): string {
  return file(dir, name).render()
}

/** Everything a refused write must leave alone. */
function poolState (sb: Superblock): object {
  const pool = sb.pool
  const poisoned: number[] = []
  for (let d = 0; d < pool.total; d++) if (pool.isPoisoned(d)) poisoned.push(d)
  return {
    free: pool.free,
    poisoned: pool.poisoned,
    nodes: pool.nodes.map(n => ({ free: n.free, poisoned: n.poisoned })),
    poisonedDpages: poisoned,
    stat: renderStat(pool)
  }
}

function statValue (text: string, name: string): number {
  const m = new RegExp(`^${name.replace('.', '\\.')}: (\\d+)$`, 'm').exec(text)
  if (!m) throw new Error(`no ${name} in\n${text}`)
  return Number(m[1])
}

describe('control directory', () => {
  let sb: Superblock
  let env: FakeEnv
  let dir: ControlDir

  beforeEach(() => {
    sb = makeSb({ size: 8 * MiB, nodes: 2, shift: 21 })
    env = fakeEnv()
    dir = new ControlDir(sb, env)
  })

  it('has stat, pfns, map, mce, unpoison and the tracing files, read-only or root-only', async () => {
    expect([...dir.files.keys()]).to.deep.equal([
      'stat', 'pfns', 'map', 'mce', 'unpoison', 'poisoned', 'soft_offline', 'offline', 'ce', 'ce_counts', 'datapath',
      'tracing_on', 'trace', 'trace_pipe'
    ])
    expect([...dir.files.values()].map(f => f.mode)).to.deep.equal([
      0o444, 0o400, 0o444, 0o600, 0o600, 0o400, 0o600, 0o400, 0o600, 0o400, 0o444, 0o600, 0o600, 0o400
    ])
    // Readable by every user: the statistics, the map and the data path's counters; PFNs and injection are root's.
    expect([...dir.files.values()].filter(f => f.public).map(f => f.name)).to.deep.equal(['stat', 'map', 'datapath'])
    expect(file(dir, 'stat').write).to.equal(undefined)
    expect(file(dir, 'pfns').write).to.equal(undefined)
    expect(file(dir, 'map').write).to.equal(undefined) // read-only: every user gets the same whole map
    expect(file(dir, 'mce').write).to.be.a('function')
    expect(file(dir, 'unpoison').write).to.be.a('function')
    expect(render(dir, 'mce')).to.equal('no memory failure yet\n')
    expect(render(dir, 'unpoison')).to.equal('nothing unpoisoned yet\n')
  })

  describe('stat', () => {
    it('renders the pool and each node, poisoned dpages included', async () => {
      expect(render(dir, 'stat')).to.equal([
        'region_num: 2',
        'registered_pages: 4096',
        'unaligned_pages: 0',
        'dpage_shift: 21',
        'total_dpages: 8',
        'free_dpages: 8',
        'poisoned_dpages: 0',
        'offline_dpages: 0',
        'node0.total_dpages: 4',
        'node0.free_dpages: 4',
        'node0.poisoned_dpages: 0',
        'node0.offline_dpages: 0',
        'node1.total_dpages: 4',
        'node1.free_dpages: 4',
        'node1.poisoned_dpages: 0',
        'node1.offline_dpages: 0'
      ].join('\n') + '\n')
    })

    it('follows memory failures on free and used dpages', async () => {
      createFile(sb, '/f', 2 * MiB) // ino 2, home node 0
      expect((await writeMce(dir, `0x${(NODE1_PFN + 512 + 9).toString(16)}`)).errno).to.equal(0)
      expect((await writeMce(dir, `${BASE_PFN + 3}\n`)).errno).to.equal(0) // the file's dpage
      const text = render(dir, 'stat')
      expect(statValue(text, 'free_dpages')).to.equal(6)
      expect(statValue(text, 'poisoned_dpages')).to.equal(2)
      expect(statValue(text, 'node0.free_dpages')).to.equal(3)
      expect(statValue(text, 'node0.poisoned_dpages')).to.equal(1)
      expect(statValue(text, 'node1.free_dpages')).to.equal(3)
      expect(statValue(text, 'node1.poisoned_dpages')).to.equal(1)
    })
  })

  describe('mce', () => {
    it('poisons a free dpage and replies with the report, which the file then renders', async () => {
      const r = await writeMce(dir, '0x140000\n')
      expect(r.errno).to.equal(0)
      expect(r.reply).to.equal([
        'pfn 0x140000 phys 0x140000000 node 1 region 1 dpage 0x140000 (2M) state free',
        'flags 0x0',
        'result MCE: free dpage, mark 0x140000 disabled in dmem'
      ].join('\n') + '\n')
      expect(render(dir, 'mce')).to.equal(r.reply)
      expect(sb.pool.poisoned).to.equal(1)
      expect(sb.pool.nodes[1].free).to.equal(3)
      expect(env.lines).to.deep.equal(['MCE: free dpage, mark 0x140000 disabled in dmem'])
    })

    it('traces a used dpage with its flags and asks for the file\'s holders', async () => {
      const f = createFile(sb, '/f', 4 * MiB)
      const pfn = pfnOfIndex(sb, f, 1) + 2
      const r = await writeMce(dir, `${pfn} must_kill action_required\n`)
      expect(r.errno).to.equal(0)
      const got = r.reply.split('\n')
      expect(got[0]).to.match(/ state used$/)
      expect(got[1]).to.equal('flags 0x6 (action_required must_kill)')
      expect(got[3]).to.equal(`file /f ino ${f.ino} pgoff 0x202 offset ${0x202 * 4096}`)
      expect(got[4]).to.equal('processes none')
      expect(env.holderCalls).to.deep.equal([f.ino])
    })

    it('replies in JSON when asked, and still renders the text report', async () => {
      const r = await writeMce(dir, '0x100000 must_kill json\n')
      expect(r.errno).to.equal(0)
      const j = JSON.parse(r.reply)
      expect(j).to.include({ pfn: '0x100000', state: 'free', flags: 4, node: 0 })
      expect(j.flag_names).to.deep.equal(['must_kill'])
      expect(render(dir, 'mce')).to.match(/^pfn 0x100000 phys 0x100000000 node 0 region 0 dpage 0x100000 \(2M\) state free\n/)
    })

    it('reports a repeated failure as already poisoned', async () => {
      await writeMce(dir, '0x100001')
      const before = poolState(sb)
      const r = await writeMce(dir, '0x1001ff')
      expect(r.errno).to.equal(0)
      expect(r.reply.split('\n')[2]).to.equal('result Memory failure: 0x1001ff: already hardware poisoned')
      expect(poolState(sb)).to.deep.equal(before)
    })

    const bad: Array<{ kind: string, text: string, error: RegExp }> = [
      { kind: 'not a number', text: 'hello\n', error: /not a number/ },
      { kind: 'negative', text: '-1\n', error: /not a number/ },
      { kind: 'out of range', text: '0x14000000000000000\n', error: /out of range/ },
      { kind: 'trailing junk', text: '1310720abc\n', error: /not a number/ },
      { kind: 'two newlines', text: '0x140000\n\n', error: /line/ },
      { kind: 'unknown flag', text: '0x140000 zz\n', error: /unknown flag 'zz'/ },
      { kind: 'unknown flag bits', text: '0x140000 flags=0x80\n', error: /unknown bits/ },
      { kind: 'empty', text: '', error: /empty/ },
      { kind: 'only a newline', text: '\n', error: /empty/ },
      { kind: 'whitespace', text: '  \t \n', error: /empty/ },
      { kind: 'huge', text: '0x140000' + ' '.repeat(300) + '\n', error: /too long/ },
      { kind: 'binary', text: '0x140000\x00\n', error: /not text/ },
      { kind: 'binary high bytes', text: '\xff\xfe0x140000', error: /not text/ },
      { kind: 'not a dmem pfn (below the pool)', text: '0x1\n', error: /^0x1: not a dmem pfn$/ },
      { kind: 'not a dmem pfn (between nodes)', text: '0x100800 must_kill\n', error: /^0x100800: not a dmem pfn$/ },
      { kind: 'not a dmem pfn (past 2^53)', text: '0xffffffffffffffff\n', error: /not a dmem pfn/ }
    ]

    for (const { kind, text, error } of bad) {
      it(`refuses bad input with EINVAL and changes nothing: ${kind}`, async () => {
        // Something to keep: a report and a poisoned dpage. The PFNs in the bad input are of a free dpage
        // (0x140000, node 1), so that any of them taken would show.
        const f = createFile(sb, '/f', 2 * MiB)
        await writeMce(dir, `${pfnOfIndex(sb, f, 0)}`)
        expect(sb.pool.isUsed(4)).to.equal(false)
        env.lines.length = 0
        const before = poolState(sb)
        const r = await writeMce(dir, text)
        expect(r.errno).to.equal(EINVAL)
        expect(r.errno).to.equal(-22)
        expect(r.reply.startsWith('error: ')).to.equal(true)
        expect(r.reply.endsWith('\n')).to.equal(true)
        expect(r.reply.slice('error: '.length, -1)).to.match(error)
        expect(render(dir, 'mce')).to.equal(r.reply)
        expect(poolState(sb)).to.deep.equal(before)
        expect(env.holderCalls).to.deep.equal([f.ino]) // only the first, good write's
        expect(env.lines).to.deep.equal([`dmemfs: .dmem/mce: ${r.reply.slice('error: '.length, -1)}`])
      })
    }

    it('refuses a PFN just past the pool and accepts the last one in it', async () => {
      const last = NODE1_PFN + 4 * 512 - 1
      expect((await writeMce(dir, `0x${(last + 1).toString(16)}`)).errno).to.equal(EINVAL)
      expect(sb.pool.poisoned).to.equal(0)
      expect((await writeMce(dir, `0x${last.toString(16)}`)).errno).to.equal(0)
      expect(sb.pool.nodes[1].poisoned).to.equal(1)
    })
  })

  describe('unpoison', () => {
    it('says a dpage that is not poisoned already is unpoisoned', async () => {
      const before = poolState(sb)
      const r = write(dir, 'unpoison', '0x100000\n')
      expect(r.errno).to.equal(0)
      expect(r.reply).to.equal('Unpoison: Page was already unpoisoned 0x100000\n')
      expect(render(dir, 'unpoison')).to.equal(r.reply)
      expect(poolState(sb)).to.deep.equal(before)
      expect(env.lines).to.deep.equal(['Unpoison: Page was already unpoisoned 0x100000'])
    })

    it('returns an unowned poisoned dpage to the pool', async () => {
      await writeMce(dir, '0x140005')
      expect(sb.pool.free).to.equal(7)
      const r = write(dir, 'unpoison', '0x140005')
      expect(r.errno).to.equal(0)
      expect(r.reply).to.equal('Unpoison: Software-unpoisoned free page 0x140005\n')
      expect(sb.pool.free).to.equal(8)
      expect(sb.pool.poisoned).to.equal(0)
      expect(sb.pool.nodes[1]).to.include({ free: 4, poisoned: 0 })
      expect(sb.pool.isPoisoned(4)).to.equal(false)
      // It can be allocated again.
      const got: number[] = []
      for (let run = sb.pool.alloc(1, 8); run; run = sb.pool.alloc(1, 8)) {
        for (let i = 0; i < run.count; i++) got.push(run.first + i)
      }
      expect(got).to.include(4)
    })

    it('keeps a dpage poisoned while a file owns it (EBUSY), and frees it once the file lets go', async () => {
      const f = createFile(sb, '/f', 4 * MiB)
      const pfn = pfnOfIndex(sb, f, 1)
      await writeMce(dir, `${pfn + 17}`)
      const freeBefore = sb.pool.free
      const r = write(dir, 'unpoison', `${pfn + 17}`)
      expect(r.errno).to.equal(EBUSY)
      expect(r.errno).to.equal(-16)
      expect(r.reply).to.equal(`Unpoison: the hwpoison page has non-NULL mapping 0x${(pfn + 17).toString(16)}: ` +
        `still owned by /f (ino ${f.ino}); it stays poisoned\n`)
      expect(render(dir, 'unpoison')).to.equal(r.reply)
      expect(sb.pool.isPoisoned(f.dpages!.get(1)!)).to.equal(true)
      expect(sb.pool.poisoned).to.equal(1)
      expect(sb.pool.free).to.equal(freeBefore)

      // Truncated away, the dpage stays out of the pool, owned by nobody, until unpoisoned.
      expect(sb.truncate(f, 2 * MiB)).to.equal(0)
      expect(sb.pool.free).to.equal(freeBefore)
      const r2 = write(dir, 'unpoison', `${pfn}`)
      expect(r2.errno).to.equal(0)
      expect(r2.reply).to.match(/Software-unpoisoned free page/)
      expect(sb.pool.free).to.equal(freeBefore + 1)
      expect(sb.pool.poisoned).to.equal(0)
    })

    it('names an unlinked owner (deleted)', async () => {
      const fh = createOpen(sb, '/f', 2 * MiB)
      const ino = lookup(sb, '/f').ino
      const pfn = pfnOfIndex(sb, lookup(sb, '/f'), 0)
      expect(sb.unlink('/f')).to.equal(0)
      await writeMce(dir, `${pfn}`)
      const r = write(dir, 'unpoison', `${pfn}`)
      expect(r.errno).to.equal(EBUSY)
      expect(r.reply).to.contain(`still owned by (deleted) (ino ${ino})`)
      expect(sb.release(fh)).to.equal(0)
      expect(write(dir, 'unpoison', `${pfn}`).errno).to.equal(0)
    })

    for (const { kind, text, error } of [
      { kind: 'not a number', text: 'abc', error: /not a number/ },
      { kind: 'with flags', text: '0x140000 must_kill', error: /not a number/ },
      { kind: 'out of range', text: '18446744073709551616', error: /out of range/ },
      { kind: 'empty', text: '', error: /empty/ },
      { kind: 'huge', text: '0'.repeat(300) + '5000000', error: /too long/ }, // 0x140000 in octal
      { kind: 'binary', text: '0x140000\x00', error: /not text/ },
      { kind: 'not a dmem pfn', text: '0x13ffff\n', error: /^0x13ffff: not a dmem pfn$/ }
    ]) {
      it(`refuses bad input with EINVAL and changes nothing: ${kind}`, async () => {
        await writeMce(dir, '0x140000')
        const before = poolState(sb)
        const r = write(dir, 'unpoison', text)
        expect(r.errno).to.equal(EINVAL)
        expect(r.reply.startsWith('error: ')).to.equal(true)
        expect(r.reply.slice('error: '.length, -1)).to.match(error)
        expect(render(dir, 'unpoison')).to.equal(r.reply)
        expect(poolState(sb)).to.deep.equal(before)
        expect(sb.pool.isPoisoned(4)).to.equal(true)
      })
    }
  })

  describe('pfns', () => {
    const HEADER = '# ino offset pfn frames path'

    it('is only the header with no data', async () => {
      createFile(sb, '/empty', 0)
      expect(sb.mkdir('/dir', 0o755)).to.equal(0)
      expect(render(dir, 'pfns')).to.equal(HEADER + '\n')
    })

    it('merges dpages contiguous in the file and in memory into one run', async () => {
      const big = makeSb({ size: 8 * MiB, nodes: 1, shift: 21, maxAllocTry: 4 })
      createFile(big, '/f', 6 * MiB)
      expect(renderPfns(big)).to.equal(`${HEADER}\n2 0 0x100000 1536 /f\n`)
    })

    it('splits runs at holes in the file, at jumps in memory, and between nodes', async () => {
      const small = makeSb({ size: 64 * 4096, nodes: 1, shift: 12 })
      createFile(small, '/a', 3 * 4096) // ino 2: dpages 0-2
      const b = createOpen(small, '/b') // ino 3
      writeAt(small, b, 4096, 0) // dpage 3
      writeAt(small, b, 4096, 2 * 4096) // dpage 4, at index 2: contiguous in memory, not in the file
      const c = createOpen(small, '/c') // ino 4
      const d = createOpen(small, '/d') // ino 5
      writeAt(small, c, 4096, 0) // dpage 5
      writeAt(small, d, 4096, 0) // dpage 6
      writeAt(small, c, 4096, 4096) // dpage 7, at index 1: contiguous in the file, not in memory
      writeAt(small, d, 2 * 4096, 4096) // dpages 8, 9 at 1, 2
      expect(renderPfns(small)).to.equal([
        HEADER,
        '2 0 0x100000 3 /a',
        '3 0 0x100003 1 /b',
        '3 8192 0x100004 1 /b',
        '4 0 0x100005 1 /c',
        '4 4096 0x100007 1 /c',
        '5 0 0x100006 1 /d',
        '5 4096 0x100008 2 /d'
      ].join('\n') + '\n')
      for (const fh of [b, c, d]) expect(small.release(fh)).to.equal(0)
    })

    it('lists files in inode order, skips those without data, and splits a file over two nodes', async () => {
      createFile(sb, '/x', 6 * MiB) // ino 2, node 0: dpages 0-2
      createFile(sb, '/y', 0) // ino 3, no data
      expect(sb.mkdir('/dir', 0o755)).to.equal(0) // ino 4, node 0
      createFile(sb, '/dir/z', 4 * MiB) // ino 5, node 1: dpages 4, 5
      const fh = createOpen(sb, '/dir/w', 4 * MiB) // ino 6, node 0: dpage 3, then node 1's 6
      expect(lookup(sb, '/dir/w').dpages).to.deep.equal(new Map([[0, 3], [1, 6]]))
      expect(render(dir, 'pfns')).to.equal([
        HEADER,
        '2 0 0x100000 1536 /x',
        '5 0 0x140000 1024 /dir/z',
        '6 0 0x100600 512 /dir/w',
        '6 2097152 0x140400 512 /dir/w'
      ].join('\n') + '\n')
      expect(sb.release(fh)).to.equal(0)
    })

    it('splits dpages contiguous in number but not in memory', async () => {
      createFile(sb, '/x', 6 * MiB) // ino 2, node 0: dpages 0-2
      createFile(sb, '/y', 0) // ino 3, node 1, no data
      const fh = createOpen(sb, '/w', 4 * MiB) // ino 4, node 0: dpage 3, then node 1's first, dpage 4
      expect(lookup(sb, '/w').dpages).to.deep.equal(new Map([[0, 3], [1, 4]]))
      expect(render(dir, 'pfns')).to.equal([
        HEADER,
        '2 0 0x100000 1536 /x',
        '4 0 0x100600 512 /w',
        '4 2097152 0x140000 512 /w'
      ].join('\n') + '\n')
      expect(sb.release(fh)).to.equal(0)
    })

    it('writes (deleted) for an unlinked file that is still open, and drops it once closed', async () => {
      const fh = createOpen(sb, '/gone', 2 * MiB)
      createFile(sb, '/kept', 2 * MiB)
      expect(sb.unlink('/gone')).to.equal(0)
      expect(render(dir, 'pfns')).to.equal(`${HEADER}\n2 0 0x100000 512 (deleted)\n3 0 0x140000 512 /kept\n`)
      expect(sb.release(fh)).to.equal(0)
      expect(render(dir, 'pfns')).to.equal(`${HEADER}\n3 0 0x140000 512 /kept\n`)
    })

    it('escapes a name as seq_file does: one line per run, bytes 0x80-0xff as they are', () => {
      expect(sb.mkdir('/d\n', 0o755)).to.equal(0)
      createFile(sb, '/d\n/a b\\\xff\xe9', 2 * MiB)
      expect(render(dir, 'pfns')).to.equal(`${HEADER}\n3 0 0x140000 512 /d\\012/a\\040b\\134\xff\xe9\n`)
    })
  })

  describe('map', () => {
    it('gives each region with per-cell used/poisoned counts, a dpage a cell in a small region', async () => {
      const f = createFile(sb, '/f', 3 * 4096)
      const owned = f.dpages!.get(0)!
      sb.pool.poison(owned)
      const text = file(dir, 'map').render()
      const lines = text.trim().split('\n')
      expect(lines[0]).to.match(/^# region/)
      const m = /^region 0 node 0 phys 0x([0-9a-f]+) dpages (\d+) dpage_size \d+ per_cell (\d+) cells (.*)$/.exec(lines[1])!
      expect(m, lines[1]).to.not.equal(null)
      const cells = m[4].split(' ').map(c => c.split('/').map(Number))
      expect(cells.reduce((n, c) => n + c[0], 0)).to.equal(f.dpages!.size)
      expect(cells.reduce((n, c) => n + c[1], 0)).to.equal(1)
      expect(Number(m[3])).to.equal(1)
      expect(cells.length).to.equal(Number(m[2]))
    })

    it('cuts a large region into MAP_CELLS cells, fine enough for dmemfs stat to merge exactly', () => {
      const big = makeSb({ size: 64 * MiB, nodes: 1, shift: 12 }) // 16384 dpages
      createFile(big, '/f', 5 * 4096)
      const line = renderMap(big.pool, MAP_CELLS).split('\n')[1]
      const m = / dpages (\d+) dpage_size 4096 per_cell (\d+) cells (.*)$/.exec(line)!
      expect([Number(m[1]), Number(m[2])]).to.deep.equal([16384, 4])
      expect(m[3].split(' ')).to.have.length(MAP_CELLS)
      expect(m[3].split(' ').slice(0, 3)).to.deep.equal(['4/0', '1/0', '0/0'])
    })
  })
})
