// Unit tests of the poison file, pure text in and out: the layout signature, rendering and parsing, the
// refusals (not a poison file, another layout, a bad line); and the control directory telling the mount
// when the set of poisoned dpages changed, so that it can rewrite the file.

import { expect } from 'chai'
import { ControlDir, WriteResult } from '../../src/control/control'
import { DmemSpec, GiB, layoutPool, MiB, PoolLayout } from '../../src/pool/layout'
import { layoutSignature, parsePoisonFile, poisonedPfns, renderPoisonFile } from '../../src/pool/persist'
import { DmemPool } from '../../src/pool/pool'
import { createFile, fakeEnv, makeSb, pfnOfIndex } from './mce-fixtures'

const MAGIC = '# dmemfs poison file v1'

function layout (spec: Partial<DmemSpec>, nodes = 1, shift = 12): PoolLayout {
  const r = layoutPool({ size: 16 * MiB, addr: null, align: 4096, ...spec }, nodes, shift)
  if (!r.ok) throw new Error(r.error)
  return r.value
}

function parseOk (text: string, l: PoolLayout): number[] {
  const r = parsePoisonFile(text, l)
  if (!r.ok) throw new Error(`parsePoisonFile failed: ${r.error}`)
  return r.value
}

function parseError (text: string, l: PoolLayout): string {
  const r = parsePoisonFile(text, l)
  if (r.ok) throw new Error(`parsePoisonFile accepted ${JSON.stringify(text)}`)
  return r.error
}

function poisonedDpages (pool: DmemPool): number[] {
  const out: number[] = []
  for (let d = 0; d < pool.total; d++) if (pool.isPoisoned(d)) out.push(d)
  return out
}

describe('poison file', () => {
  describe('layoutSignature', () => {
    it('names the dpage size and every region as node:phys+dpages', () => {
      expect(layoutSignature(layout({}))).to.equal('dpage_shift=12 regions=0:0x100000000+4096')
      expect(layoutSignature(layout({ size: 8 * MiB }, 2, 21)))
        .to.equal('dpage_shift=21 regions=0:0x100000000+4,1:0x140000000+4')
    })

    it('is the same for the same layout, computed again', () => {
      expect(layoutSignature(layout({ size: 64 * MiB }, 2))).to.equal(layoutSignature(layout({ size: 64 * MiB }, 2)))
    })

    it('differs for a different size, dpage size, number of nodes or address', () => {
      const base = layoutSignature(layout({}))
      const others = {
        size: layoutSignature(layout({ size: 32 * MiB })),
        dpageSize: layoutSignature(layout({}, 1, 21)),
        nodes: layoutSignature(layout({}, 2)),
        addr: layoutSignature(layout({ addr: 8 * GiB })),
        addrAndSize: layoutSignature(layout({ addr: 8 * GiB, size: 32 * MiB }))
      }
      for (const [what, sig] of Object.entries(others)) expect(sig, what).to.not.equal(base)
      expect(new Set(Object.values(others)).size).to.equal(Object.keys(others).length)
    })

    it('names every region of a pool carved into several', () => {
      // 2 GiB of 4K dpages is two 1 GiB regions; the same size of 1G dpages, two regions of one dpage.
      expect(layoutSignature(layout({ size: 2 * GiB, align: GiB })))
        .to.equal('dpage_shift=12 regions=0:0x100000000+262144,0:0x140000000+262144')
      expect(layoutSignature(layout({ size: 2 * GiB, align: GiB }, 1, 30)))
        .to.equal('dpage_shift=30 regions=0:0x100000000+1,0:0x140000000+1')
    })
  })

  describe('render and parse', () => {
    it('a pool with nothing poisoned renders the magic line and the layout only, and parses to []', () => {
      const pool = new DmemPool(layout({}))
      const text = renderPoisonFile(pool)
      expect(text).to.equal(`${MAGIC}\nlayout dpage_shift=12 regions=0:0x100000000+4096\n`)
      expect(parseOk(text, pool.layout)).to.deep.equal([])
      expect(poisonedPfns(pool)).to.deep.equal([])
    })

    it('lists the first PFN of every poisoned dpage, in pool order, and parses back to them', () => {
      const l = layout({ size: 8 * MiB }, 2, 21)
      const pool = new DmemPool(l)
      pool.poison(6) // node 1, second dpage
      pool.poison(1)
      const text = renderPoisonFile(pool)
      expect(text.split('\n')).to.deep.equal([
        MAGIC,
        'layout dpage_shift=21 regions=0:0x100000000+4,1:0x140000000+4',
        '0x100200',
        '0x140400',
        ''
      ])
      expect(parseOk(text, l)).to.deep.equal([0x100200, 0x140400])
    })

    it('round trip: applying the parsed PFNs to a new pool of the same layout poisons the same dpages', () => {
      const sb = makeSb({ size: 4 * MiB, nodes: 2, shift: 12 })
      const f = createFile(sb, '/f', 8 * 4096)
      const pool = sb.pool
      pool.poison(pool.dpageOfPfn(pfnOfIndex(sb, f, 3))) // used
      pool.poison(pool.dpageOfPfn(0x100000 + 700)) // free, node 0
      pool.poison(pool.dpageOfPfn(0x140000 + 1023)) // free, node 1, its last
      const text = renderPoisonFile(pool)
      const pfns = parseOk(text, pool.layout)
      expect(pfns).to.have.length(3)
      const again = new DmemPool(layout({ size: 4 * MiB }, 2)) // computed afresh, as a new mount does
      for (const pfn of pfns) expect(again.poison(again.dpageOfPfn(pfn))).to.equal(true)
      expect(poisonedDpages(again)).to.deep.equal(poisonedDpages(pool))
      expect(again.poisoned).to.equal(3)
      expect(again.free).to.equal(again.total - 3)
      expect(again.nodes.map(n => n.poisoned)).to.deep.equal(pool.nodes.map(n => n.poisoned))
      expect(renderPoisonFile(again)).to.equal(text)
    })

    it('tolerates blank lines and a missing final newline', () => {
      const l = layout({})
      const text = `${MAGIC}\n\nlayout ${layoutSignature(l)}\n0x100005\n\n0x100007`
      expect(parseOk(text, l)).to.deep.equal([0x100005, 0x100007])
    })
  })

  describe('refusals', () => {
    const l = layout({})
    const good = `${MAGIC}\nlayout ${layoutSignature(l)}\n0x100005\n`

    it('a file that does not start with the magic line is not a poison file', () => {
      for (const text of ['', '\n', 'hello\n', `# dmemfs poison file v2\nlayout ${layoutSignature(l)}\n`,
        `layout ${layoutSignature(l)}\n0x100005\n`, good.replace(MAGIC, MAGIC + ' ')]) {
        expect(parseError(text, l), JSON.stringify(text)).to.equal('is not a dmemfs poison file')
      }
    })

    it('a file written for another layout is refused, naming both layouts', () => {
      const other = layout({ size: 32 * MiB })
      const e = parseError(good, other)
      expect(e).to.match(/^was written for another pool layout \(/)
      expect(e).to.include('dpage_shift=12 regions=0:0x100000000+4096') // the file's
      expect(e).to.include('this one is dpage_shift=12 regions=0:0x100000000+8192')
      for (const l2 of [layout({}, 1, 21), layout({}, 2), layout({ addr: 8 * GiB })]) {
        expect(parseError(good, l2)).to.match(/another pool layout/)
      }
      expect(parseError(`${MAGIC}\n0x100005\n`, l)).to.match(/another pool layout/)
      expect(parseError(`${MAGIC}\n`, l)).to.match(/another pool layout/)
    })

    it('a bad line is refused, and quoted', () => {
      for (const line of ['100005', '0x', '0X100005', '0x10000G', ' 0x100005', '0x100005 ', 'pfn 0x1', '-0x1', '0x1,0x2']) {
        const e = parseError(good + line + '\n', l)
        expect(e, line).to.equal(`has a bad line '${line}'`)
      }
      expect(parseError(good + 'x'.repeat(100) + '\n', l)).to.equal(`has a bad line '${'x'.repeat(40)}'`)
    })
  })

  describe('the control directory reports poison changes', () => {
    it('after a memory failure on a free or used dpage and a successful unpoison; not otherwise', async () => {
      const sb = makeSb({ size: MiB, nodes: 1, shift: 12 })
      const f = createFile(sb, '/f', 4096)
      let changes = 0
      const dir = new ControlDir(sb, fakeEnv(), { earlyKill: 'all', onPoisonChange: () => { changes++ } })
      const mce = dir.files.get('mce')!.write!
      const unpoison = (text: string) => dir.files.get('unpoison')!.write!(text) as WriteResult
      expect((await mce('0x100010')).errno).to.equal(0) // free
      expect(changes).to.equal(1)
      expect((await mce(`${pfnOfIndex(sb, f, 0)}`)).errno).to.equal(0) // used
      expect(changes).to.equal(2)
      expect((await mce('0x100010')).errno).to.equal(0) // already poisoned: nothing changed
      expect(changes).to.equal(2)
      expect((await mce('nonsense')).errno).to.not.equal(0)
      expect(unpoison('0x100011').errno).to.equal(0) // not poisoned
      expect(unpoison(`${pfnOfIndex(sb, f, 0)}`).errno).to.not.equal(0) // still owned
      expect(changes).to.equal(2)
      expect(unpoison('0x100010').errno).to.equal(0)
      expect(changes).to.equal(3)
    })
  })
})
