import { expect } from 'chai'
import { GiB, MiB, PAGE_SIZE, layoutPool, parseDmemSpec } from '../../src/pool/layout'
import { DmemPool, DpageRun, NO_OWNER, findZeroBit } from '../../src/pool/pool'

function makePool (dmem: string, nodes: number, shift: number): DmemPool {
  const spec = parseDmemSpec(dmem)
  if (!spec.ok) throw new Error(spec.error)
  const layout = layoutPool(spec.value, nodes, shift)
  if (!layout.ok) throw new Error(layout.error)
  return new DmemPool(layout.value)
}

// A small deterministic PRNG (mulberry32), so churn tests are reproducible.
function rng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function runDpages (run: DpageRun | null): number[] {
  if (!run) return []
  return Array.from({ length: run.count }, (_, i) => run.first + i)
}

/** Takes every free dpage one at a time and returns them in order. */
function drain (pool: DmemPool, node = 0): number[] {
  const out: number[] = []
  for (;;) {
    const run = pool.alloc(node, 1)
    if (!run) return out
    expect(run.count).to.equal(1)
    out.push(run.first)
  }
}

/** Checks the free counts of every region, node and the pool against the bitmap seen through isUsed(). */
function checkCounts (pool: DmemPool, poisonedFree = new Set<number>()): void {
  let poolFree = 0
  const nodeFree = pool.nodes.map(() => 0)
  for (const region of pool.regions) {
    let free = 0
    for (let d = region.base; d < region.base + region.dpages; d++) if (!pool.isUsed(d)) free++
    expect(region.free, `region ${region.id} free`).to.equal(free)
    nodeFree[region.node] += free
    poolFree += free
  }
  pool.nodes.forEach((n, i) => expect(n.free, `node ${i} free`).to.equal(nodeFree[i]))
  expect(pool.free, 'pool free').to.equal(poolFree)
  for (const d of poisonedFree) expect(pool.isUsed(d)).to.equal(true)
}

interface Config { name: string, dmem: string, nodes: number, shift: number }

const CONFIGS: Config[] = [
  { name: '4K dpages, one node, two regions', dmem: '1280M', nodes: 1, shift: 12 },
  { name: '4K dpages, two nodes, unaligned start', dmem: '4M@0x100101000:4K', nodes: 2, shift: 12 },
  { name: '2M dpages, two nodes, unaligned bounds', dmem: '6M@0x100101000:4K', nodes: 2, shift: 21 },
  { name: '2M dpages, two nodes, two regions each', dmem: '1280M', nodes: 2, shift: 21 },
  { name: '1G dpages, two nodes, two regions each', dmem: '2G', nodes: 2, shift: 30 },
  { name: '1G dpages, unaligned bounds', dmem: '3G@0x108000000', nodes: 1, shift: 30 }
]

describe('pool: address arithmetic', () => {
  for (const cfg of CONFIGS) {
    describe(cfg.name, () => {
      let pool: DmemPool
      before(() => { pool = makePool(cfg.dmem, cfg.nodes, cfg.shift) })

      it('numbers dpages region by region and maps first and last dpages to their addresses', () => {
        const ds = 2 ** cfg.shift
        expect(pool.dpageSize).to.equal(ds)
        expect(pool.framesPerDpage).to.equal(ds / PAGE_SIZE)
        let base = 0
        for (const r of pool.layout.regions) {
          const region = pool.regions[r.id]
          expect(region.base).to.equal(base)
          const first = base
          const last = base + r.dpages - 1
          expect(pool.physOf(first)).to.equal(r.phys)
          expect(pool.physOf(last)).to.equal(r.phys + (r.dpages - 1) * ds)
          expect(pool.pfnOf(first)).to.equal(r.phys / PAGE_SIZE)
          expect(pool.pfnOf(last)).to.equal((r.phys + (r.dpages - 1) * ds) / PAGE_SIZE)
          expect(pool.regionOf(first)).to.equal(region)
          expect(pool.regionOf(last)).to.equal(region)
          expect(pool.offsetOf(region, last)).to.equal((r.dpages - 1) * ds)
          // first and last 4K frame of the first and last dpage
          expect(pool.dpageOfPfn(pool.pfnOf(first))).to.equal(first)
          expect(pool.dpageOfPfn(pool.pfnOf(first) + pool.framesPerDpage - 1)).to.equal(first)
          expect(pool.dpageOfPfn(pool.pfnOf(last))).to.equal(last)
          expect(pool.dpageOfPfn(pool.pfnOf(last) + pool.framesPerDpage - 1)).to.equal(last)
          base += r.dpages
        }
        expect(base).to.equal(pool.total)
      })

      it('gives -1 for the PFN just before and just after a region unless a neighbouring region holds it', () => {
        const ds = pool.dpageSize
        const regions = pool.regions
        let misses = 0
        regions.forEach((r, i) => {
          const prev = regions[i - 1]
          const next = regions[i + 1]
          const before = r.phys / PAGE_SIZE - 1
          const after = (r.phys + r.dpages * ds) / PAGE_SIZE
          const beforeWant = prev && prev.phys + prev.dpages * ds === r.phys ? r.base - 1 : -1
          const afterWant = next && next.phys === r.phys + r.dpages * ds ? next.base : -1
          expect(pool.dpageOfPfn(before), `pfn ${before.toString(16)}`).to.equal(beforeWant)
          expect(pool.dpageOfPfn(after), `pfn ${after.toString(16)}`).to.equal(afterWant)
          if (beforeWant === -1) misses++
          if (afterWant === -1) misses++
        })
        // at least the pool's own ends are outside every region
        expect(misses).to.be.at.least(2)
      })

      it('gives -1 for non-integer, negative and absurd PFNs', () => {
        const pfn = pool.pfnOf(0)
        for (const bad of [pfn + 0.5, pfn - 0.25, -1, -pfn, NaN, Infinity, -Infinity, 2 ** 53, 0]) {
          expect(pool.dpageOfPfn(bad), String(bad)).to.equal(-1)
        }
      })
    })
  }

  it('maps the PFNs around an unaligned 2M pool exactly', () => {
    const pool = makePool('6M@0x100101000:4K', 2, 21)
    // node 0: reservation 0x100101000..0x100701000, dpages 0x100200000..0x100600000
    expect(pool.dpageOfPfn(0x100101)).to.equal(-1)
    expect(pool.dpageOfPfn(0x1001ff)).to.equal(-1)
    expect(pool.dpageOfPfn(0x100200)).to.equal(0)
    expect(pool.dpageOfPfn(0x1003ff)).to.equal(0)
    expect(pool.dpageOfPfn(0x100400)).to.equal(1)
    expect(pool.dpageOfPfn(0x1005ff)).to.equal(1)
    expect(pool.dpageOfPfn(0x100600)).to.equal(-1)
    expect(pool.dpageOfPfn(0x100700)).to.equal(-1)
    // node 1: reservation 0x100701000..0x100d01000, dpages 0x100800000..0x100c00000
    expect(pool.dpageOfPfn(0x100701)).to.equal(-1)
    expect(pool.dpageOfPfn(0x1007ff)).to.equal(-1)
    expect(pool.dpageOfPfn(0x100800)).to.equal(2)
    expect(pool.dpageOfPfn(0x100bff)).to.equal(3)
    expect(pool.dpageOfPfn(0x100c00)).to.equal(-1)
    expect(pool.physOf(3)).to.equal(0x100a00000)
    expect(pool.pfnOf(2)).to.equal(0x100800)
  })

  it('maps every 4K frame inside a 2M dpage to that dpage', () => {
    const pool = makePool('6M@0x100101000:4K', 2, 21)
    expect(pool.framesPerDpage).to.equal(512)
    for (let d = 0; d < pool.total; d++) {
      const pfn = pool.pfnOf(d)
      for (let f = 0; f < 512; f++) expect(pool.dpageOfPfn(pfn + f)).to.equal(d)
    }
  })

  it('maps frames across a 1G dpage to that dpage', () => {
    const pool = makePool('2G', 2, 30)
    for (let d = 0; d < pool.total; d++) {
      const pfn = pool.pfnOf(d)
      for (const f of [0, 1, 511, 512, 131071, 131072, 262142, 262143]) expect(pool.dpageOfPfn(pfn + f)).to.equal(d)
    }
    expect(pool.pfnOf(3)).to.equal(7 * GiB / PAGE_SIZE)
    expect(pool.dpageOfPfn(8 * GiB / PAGE_SIZE)).to.equal(-1)
    expect(pool.dpageOfPfn(4 * GiB / PAGE_SIZE - 1)).to.equal(-1)
  })
})

describe('pool: allocation', () => {
  // 64K at 4G in 4K dpages: 16 dpages, one region
  const SMALL = '64K@0x100000000:4K'

  it('starts with every dpage free', () => {
    const pool = makePool('16K@0x100000000:4K', 3, 12)
    expect(pool.total).to.equal(12)
    expect(pool.free).to.equal(12)
    expect(pool.nodes.map(n => [n.total, n.free, n.poisoned])).to.deep.equal([[4, 4, 0], [4, 4, 0], [4, 4, 0]])
    expect(pool.regions.map(r => r.free)).to.deep.equal([4, 4, 4])
    for (let d = 0; d < 12; d++) expect(pool.isUsed(d)).to.equal(false)
  })

  it('hands out single dpages first-fit in order', () => {
    const pool = makePool(SMALL, 1, 12)
    expect(drain(pool)).to.deep.equal([...Array(16).keys()])
    checkCounts(pool)
  })

  it('searches from the hint and advances it past the run', () => {
    const pool = makePool(SMALL, 1, 12)
    const region = pool.regions[0]
    expect(pool.alloc(0, 3)).to.deep.equal({ first: 0, count: 3 })
    expect(region.hint).to.equal(3)
    region.hint = 9 // dpages 3..8 are free, but the search starts at the hint
    expect(pool.alloc(0, 2)).to.deep.equal({ first: 9, count: 2 })
    expect(region.hint).to.equal(11)
  })

  it('wraps to the start of the region when nothing is free after the hint', () => {
    const pool = makePool(SMALL, 1, 12)
    const region = pool.regions[0]
    expect(pool.alloc(0, 16)).to.deep.equal({ first: 0, count: 16 })
    expect(region.hint).to.equal(16)
    pool.release(5)
    pool.release(12)
    region.hint = 13
    expect(pool.alloc(0, 1)).to.deep.equal({ first: 5, count: 1 })
    expect(pool.alloc(0, 1)).to.deep.equal({ first: 12, count: 1 })
    expect(pool.alloc(0, 1)).to.equal(null)
  })

  it('release puts a dpage back and the next alloc reuses the lowest free one', () => {
    const pool = makePool(SMALL, 1, 12)
    for (let i = 0; i < 10; i++) pool.alloc(0, 1)
    pool.release(7)
    pool.release(3)
    expect(pool.isUsed(3)).to.equal(false)
    expect(pool.isUsed(7)).to.equal(false)
    expect(pool.free).to.equal(8)
    checkCounts(pool)
    expect(pool.alloc(0, 1)).to.deep.equal({ first: 3, count: 1 })
    expect(pool.alloc(0, 1)).to.deep.equal({ first: 7, count: 1 })
    expect(pool.alloc(0, 1)).to.deep.equal({ first: 10, count: 1 })
    checkCounts(pool)
  })

  it('takes contiguous runs up to tryMax', () => {
    const pool = makePool(SMALL, 1, 12)
    expect(pool.alloc(0, 1)).to.deep.equal({ first: 0, count: 1 })
    expect(pool.alloc(0, 4)).to.deep.equal({ first: 1, count: 4 })
    expect(pool.alloc(0, 3)).to.deep.equal({ first: 5, count: 3 })
    expect(pool.free).to.equal(8)
    for (let d = 0; d < 8; d++) expect(pool.isUsed(d)).to.equal(true)
    for (let d = 8; d < 16; d++) expect(pool.isUsed(d)).to.equal(false)
    checkCounts(pool)
  })

  it('stops a run at a used dpage', () => {
    const pool = makePool(SMALL, 1, 12)
    pool.alloc(0, 16)
    for (const d of [8, 9, 11, 12, 13]) pool.release(d)
    expect(pool.alloc(0, 4)).to.deep.equal({ first: 8, count: 2 })
    expect(pool.alloc(0, 4)).to.deep.equal({ first: 11, count: 3 })
    expect(pool.alloc(0, 4)).to.equal(null)
    checkCounts(pool)
  })

  it('stops a run at the end of a region, even when the next region follows it', () => {
    const pool = makePool(SMALL, 1, 12)
    expect(pool.alloc(0, 10)).to.deep.equal({ first: 0, count: 10 })
    expect(pool.alloc(0, 10)).to.deep.equal({ first: 10, count: 6 })
    expect(pool.alloc(0, 10)).to.equal(null)

    // 1280M in 2M dpages: region 0 (512 dpages) ends where region 1 (128 dpages) begins
    const two = makePool('1280M', 1, 21)
    expect(two.regions.map(r => [r.base, r.dpages])).to.deep.equal([[0, 512], [512, 128]])
    expect(two.alloc(0, 600)).to.deep.equal({ first: 0, count: 512 })
    expect(two.alloc(0, 600)).to.deep.equal({ first: 512, count: 128 })
    expect(two.regions.map(r => r.free)).to.deep.equal([0, 0])
    checkCounts(two)
  })

  it('does not run across nodes', () => {
    const pool = makePool('16K@0x100000000:4K', 3, 12)
    // node 0 ends at the address where node 1 starts
    expect(pool.regions[0].phys + 4 * 4096).to.equal(pool.regions[1].phys)
    expect(pool.alloc(0, 6)).to.deep.equal({ first: 0, count: 4 })
    expect(pool.alloc(0, 6)).to.deep.equal({ first: 4, count: 4 })
  })

  it('tries the preferred node first, then the next ones in order', () => {
    const pool = makePool('16K@0x100000000:4K', 3, 12)
    expect(pool.alloc(1, 1)).to.deep.equal({ first: 4, count: 1 })
    expect(pool.alloc(1, 4)).to.deep.equal({ first: 5, count: 3 })
    // node 1 is full: node 2 comes next, then node 0
    expect(pool.alloc(1, 1)).to.deep.equal({ first: 8, count: 1 })
    expect(pool.alloc(1, 4)).to.deep.equal({ first: 9, count: 3 })
    expect(pool.alloc(1, 1)).to.deep.equal({ first: 0, count: 1 })
    expect(pool.nodes.map(n => n.free)).to.deep.equal([3, 0, 0])
    checkCounts(pool)
  })

  it('wraps from the last node to node 0 before the ones below the preferred node', () => {
    const pool = makePool('16K@0x100000000:4K', 3, 12)
    expect(pool.alloc(2, 4)).to.deep.equal({ first: 8, count: 4 })
    expect(pool.alloc(2, 1)).to.deep.equal({ first: 0, count: 1 })
    expect(pool.alloc(2, 8)).to.deep.equal({ first: 1, count: 3 })
    expect(pool.alloc(2, 1)).to.deep.equal({ first: 4, count: 1 })
    expect(pool.nodes.map(n => n.free)).to.deep.equal([0, 3, 0])
    checkCounts(pool)
  })

  it('falls back past a node that holds no dpage at all', () => {
    // node 0 [0x100001000, 0x100301000) holds no whole 2M dpage; node 1 holds one
    const spec = { size: 3 * MiB, addr: 0x100001000, align: 4096 }
    const layout = layoutPool(spec, 2, 21)
    if (!layout.ok) throw new Error(layout.error)
    const pool = new DmemPool(layout.value)
    expect(pool.nodes.map(n => n.total)).to.deep.equal([0, 1])
    expect(pool.alloc(0, 1)).to.deep.equal({ first: 0, count: 1 })
    expect(pool.alloc(0, 1)).to.equal(null)
  })

  it('uses the next region of a node when the first is full', () => {
    const pool = makePool('1280M', 2, 21)
    expect(pool.alloc(0, 512)).to.deep.equal({ first: 0, count: 512 })
    expect(pool.alloc(0, 1)).to.deep.equal({ first: 512, count: 1 })
    expect(pool.regions.map(r => r.free)).to.deep.equal([0, 127, 512, 128])
    expect(pool.nodes.map(n => n.free)).to.deep.equal([127, 640])
    expect(pool.free).to.equal(767)
  })

  it('keeps exact free counts per region, node and pool', () => {
    const pool = makePool('1280M', 2, 21)
    pool.alloc(0, 10)
    pool.alloc(1, 300)
    pool.alloc(1, 300)
    pool.alloc(1, 3)
    pool.release(5)
    pool.release(700)
    expect(pool.regions.map(r => r.free)).to.deep.equal([503, 128, 1, 125])
    expect(pool.nodes.map(n => n.free)).to.deep.equal([631, 126])
    expect(pool.free).to.equal(757)
    checkCounts(pool)
  })

  it('returns null once the pool is exhausted, and counts stay at zero', () => {
    const pool = makePool('16K@0x100000000:4K', 3, 12)
    expect(drain(pool, 1)).to.have.length(12)
    expect(pool.alloc(0, 1)).to.equal(null)
    expect(pool.alloc(1, 4)).to.equal(null)
    expect(pool.alloc(2, 1)).to.equal(null)
    expect(pool.free).to.equal(0)
    expect(pool.nodes.map(n => n.free)).to.deep.equal([0, 0, 0])
    expect(pool.regions.map(r => r.free)).to.deep.equal([0, 0, 0])
    pool.release(6)
    expect(pool.alloc(0, 4)).to.deep.equal({ first: 6, count: 1 })
  })

  it('allocates 1G dpages one region at a time', () => {
    const pool = makePool('2G', 2, 30)
    expect(pool.alloc(1, 4)).to.deep.equal({ first: 2, count: 1 })
    expect(pool.alloc(1, 4)).to.deep.equal({ first: 3, count: 1 })
    expect(pool.alloc(1, 4)).to.deep.equal({ first: 0, count: 1 })
    expect(pool.alloc(1, 4)).to.deep.equal({ first: 1, count: 1 })
    expect(pool.alloc(1, 4)).to.equal(null)
    pool.release(2)
    expect(pool.alloc(0, 1)).to.deep.equal({ first: 2, count: 1 })
  })
})

describe('pool: reverse map', () => {
  it('starts with no owners', () => {
    const pool = makePool('64K@0x100000000:4K', 1, 12)
    for (let d = 0; d < pool.total; d++) {
      expect(pool.ownerOf(d)).to.equal(NO_OWNER)
      expect(pool.indexOf(d)).to.equal(0)
    }
  })

  it('stores full 32-bit owners and indexes and clears them on release', () => {
    const pool = makePool('64K@0x100000000:4K', 1, 12)
    pool.alloc(0, 3)
    pool.setOwner(0, 0xffffffff, 0xfffffffe)
    pool.setOwner(1, 7, 0)
    pool.setOwner(2, 7, 1)
    expect([pool.ownerOf(0), pool.indexOf(0)]).to.deep.equal([0xffffffff, 0xfffffffe])
    expect([pool.ownerOf(1), pool.indexOf(1)]).to.deep.equal([7, 0])
    expect([pool.ownerOf(2), pool.indexOf(2)]).to.deep.equal([7, 1])
    pool.release(1)
    expect([pool.ownerOf(1), pool.indexOf(1)]).to.deep.equal([NO_OWNER, 0])
    expect([pool.ownerOf(2), pool.indexOf(2)]).to.deep.equal([7, 1])
  })

  it('stays exact under random allocation and release churn', () => {
    const pool = makePool('256K@0x100000000:4K', 2, 12) // 64 dpages per node
    const rand = rng(0xd0e55)
    const model = new Map<number, { owner: number, index: number }>()
    let nulls = 0
    let releases = 0
    for (let step = 0; step < 3000; step++) {
      // lean towards allocation early and towards release later, so the pool fills and drains
      const allocBias = step % 1000 < 600 ? 0.7 : 0.3
      if (model.size === 0 || rand() < allocBias) {
        const run = pool.alloc(Math.floor(rand() * 2), 1 + Math.floor(rand() * 4))
        if (run === null) {
          expect(model.size).to.equal(pool.total)
          nulls++
          continue
        }
        expect(run.count).to.be.within(1, 4)
        for (const d of runDpages(run)) {
          expect(model.has(d), `dpage ${d} handed out twice`).to.equal(false)
          const owner = 1 + Math.floor(rand() * 0xfffffffe)
          const index = Math.floor(rand() * 0x100000000)
          pool.setOwner(d, owner, index)
          model.set(d, { owner, index })
        }
      } else {
        const keys = [...model.keys()]
        const d = keys[Math.floor(rand() * keys.length)]
        pool.release(d)
        model.delete(d)
        releases++
      }
      for (let d = 0; d < pool.total; d++) {
        const want = model.get(d)
        const owner = want ? want.owner : NO_OWNER
        const index = want ? want.index : 0
        if (pool.ownerOf(d) !== owner || pool.indexOf(d) !== index || pool.isUsed(d) !== model.has(d)) {
          expect.fail(`step ${step}, dpage ${d}: pool has (${pool.ownerOf(d)}, ${pool.indexOf(d)}, used ` +
            `${pool.isUsed(d)}), model has (${owner}, ${index}, used ${model.has(d)})`)
        }
      }
      expect(pool.free).to.equal(pool.total - model.size)
    }
    checkCounts(pool)
    // the churn really filled the pool and emptied parts of it
    expect(nulls).to.be.above(0)
    expect(releases).to.be.above(500)
  })
})

describe('pool: poison', () => {
  const SMALL = '64K@0x100000000:4K'

  it('takes a poisoned free dpage out of service', () => {
    const pool = makePool(SMALL, 1, 12)
    expect(pool.poison(3)).to.equal(true)
    expect(pool.isPoisoned(3)).to.equal(true)
    expect(pool.isPoisoned(4)).to.equal(false)
    expect(pool.free).to.equal(15)
    expect(pool.nodes[0].free).to.equal(15)
    expect(pool.regions[0].free).to.equal(15)
    expect(pool.poisoned).to.equal(1)
    expect(pool.nodes[0].poisoned).to.equal(1)
    checkCounts(pool)
    const got = drain(pool)
    expect(got).to.have.length(15)
    expect(got).to.not.include(3)
    expect(pool.alloc(0, 1)).to.equal(null)
  })

  it('stops a contiguous run at a poisoned dpage', () => {
    const pool = makePool(SMALL, 1, 12)
    pool.poison(2)
    expect(pool.alloc(0, 8)).to.deep.equal({ first: 0, count: 2 })
    expect(pool.alloc(0, 8)).to.deep.equal({ first: 3, count: 8 })
  })

  it('counts poison per node', () => {
    const pool = makePool('16K@0x100000000:4K', 3, 12)
    pool.poison(5)
    pool.poison(6)
    pool.poison(11)
    expect(pool.nodes.map(n => n.poisoned)).to.deep.equal([0, 2, 1])
    expect(pool.nodes.map(n => n.free)).to.deep.equal([4, 2, 3])
    expect(pool.poisoned).to.equal(3)
    expect(pool.free).to.equal(9)
  })

  it('leaves a poisoned used dpage with its owner, and keeps it out once released', () => {
    const pool = makePool(SMALL, 1, 12)
    expect(pool.alloc(0, 2)).to.deep.equal({ first: 0, count: 2 })
    pool.setOwner(0, 42, 9)
    expect(pool.poison(0)).to.equal(true)
    // still used and still owned: the free counts do not move
    expect(pool.free).to.equal(14)
    expect(pool.regions[0].free).to.equal(14)
    expect(pool.ownerOf(0)).to.equal(42)
    expect(pool.indexOf(0)).to.equal(9)
    expect(pool.poisoned).to.equal(1)
    pool.release(0)
    expect(pool.ownerOf(0)).to.equal(NO_OWNER)
    expect(pool.isUsed(0)).to.equal(true)
    expect(pool.free).to.equal(14)
    expect(pool.nodes[0].free).to.equal(14)
    expect(pool.regions[0].free).to.equal(14)
    checkCounts(pool)
    const got = drain(pool)
    expect(got).to.deep.equal([...Array(14).keys()].map(i => i + 2))
  })

  it('returns false when poisoning twice and counts the poison once', () => {
    const pool = makePool(SMALL, 1, 12)
    expect(pool.poison(7)).to.equal(true)
    expect(pool.poison(7)).to.equal(false)
    expect(pool.poisoned).to.equal(1)
    expect(pool.nodes[0].poisoned).to.equal(1)
    expect(pool.free).to.equal(15)
    checkCounts(pool)

    pool.alloc(0, 1)
    expect(pool.poison(0)).to.equal(true)
    expect(pool.poison(0)).to.equal(false)
    expect(pool.poisoned).to.equal(2)
    expect(pool.free).to.equal(14)
  })

  it("unpoison of a clean dpage is 'not-poisoned' and changes nothing", () => {
    const pool = makePool(SMALL, 1, 12)
    pool.alloc(0, 1)
    pool.setOwner(0, 1, 0)
    expect(pool.unpoison(0)).to.equal('not-poisoned')
    expect(pool.unpoison(1)).to.equal('not-poisoned')
    expect(pool.free).to.equal(15)
    expect(pool.isUsed(0)).to.equal(true)
    expect(pool.poisoned).to.equal(0)
    checkCounts(pool)
  })

  it("unpoison of a dpage an owner still holds is 'owned' and leaves it poisoned", () => {
    const pool = makePool(SMALL, 1, 12)
    pool.alloc(0, 1)
    pool.setOwner(0, 5, 3)
    pool.poison(0)
    expect(pool.unpoison(0)).to.equal('owned')
    expect(pool.isPoisoned(0)).to.equal(true)
    expect(pool.isUsed(0)).to.equal(true)
    expect(pool.ownerOf(0)).to.equal(5)
    expect(pool.poisoned).to.equal(1)
    expect(pool.free).to.equal(15)
  })

  it('unpoison of a released poisoned dpage returns it to the pool', () => {
    const pool = makePool(SMALL, 1, 12)
    pool.alloc(0, 4)
    pool.setOwner(1, 5, 3)
    pool.poison(1)
    pool.release(1)
    expect(pool.free).to.equal(12)
    expect(pool.unpoison(1)).to.equal('unpoisoned')
    expect(pool.isPoisoned(1)).to.equal(false)
    expect(pool.isUsed(1)).to.equal(false)
    expect(pool.poisoned).to.equal(0)
    expect(pool.nodes[0].poisoned).to.equal(0)
    expect(pool.free).to.equal(13)
    expect(pool.nodes[0].free).to.equal(13)
    expect(pool.regions[0].free).to.equal(13)
    checkCounts(pool)
    expect(pool.alloc(0, 1)).to.deep.equal({ first: 1, count: 1 })
    expect(pool.unpoison(1)).to.equal('not-poisoned')
  })

  it('unpoison of a poisoned free dpage returns it to the pool', () => {
    const pool = makePool(SMALL, 1, 12)
    pool.poison(15)
    pool.poison(4)
    expect(pool.free).to.equal(14)
    expect(pool.unpoison(4)).to.equal('unpoisoned')
    expect(pool.free).to.equal(15)
    expect(pool.poisoned).to.equal(1)
    checkCounts(pool)
    const got = drain(pool)
    expect(got).to.include(4)
    expect(got).to.not.include(15)
    expect(got).to.have.length(15)
  })
})

describe('pool: prepare', () => {
  function bytesOf (pool: DmemPool, dpage: number): Buffer {
    const region = pool.regionOf(dpage)
    const off = pool.offsetOf(region, dpage)
    return region.buf.subarray(off, off + pool.dpageSize)
  }

  function expectRange (buf: Buffer, from: number, to: number, value: number, what: string): void {
    for (let i = from; i < to; i++) {
      if (buf[i] !== value) expect.fail(`${what}: byte ${i} is ${buf[i]}, expected ${value}`)
    }
  }

  it('does not touch a dpage never used since mount', () => {
    const pool = makePool('64K@0x100000000:4K', 1, 12)
    const run = pool.alloc(0, 1)!
    const buf = bytesOf(pool, run.first)
    buf.fill(0xaa) // stands in for anything the pool must not clear
    pool.prepare(run.first, 100, 200)
    expectRange(buf, 0, 4096, 0xaa, 'fresh dpage')
  })

  it('zeroes a reused dpage outside the kept range and nothing else', () => {
    const pool = makePool('64K@0x100000000:4K', 1, 12)
    pool.alloc(0, 3)
    bytesOf(pool, 0).fill(0x11)
    bytesOf(pool, 1).fill(0xaa)
    bytesOf(pool, 2).fill(0x22)
    pool.release(1)
    expect(pool.alloc(0, 1)).to.deep.equal({ first: 1, count: 1 })
    pool.prepare(1, 100, 200)
    const buf = bytesOf(pool, 1)
    expectRange(buf, 0, 100, 0, 'before the kept range')
    expectRange(buf, 100, 200, 0xaa, 'kept range')
    expectRange(buf, 200, 4096, 0, 'after the kept range')
    expectRange(bytesOf(pool, 0), 0, 4096, 0x11, 'dpage before')
    expectRange(bytesOf(pool, 2), 0, 4096, 0x22, 'dpage after')
  })

  it('clears a reused dpage only once', () => {
    const pool = makePool('64K@0x100000000:4K', 1, 12)
    pool.alloc(0, 1)
    pool.release(0)
    pool.alloc(0, 1)
    pool.prepare(0, 0, 0)
    const buf = bytesOf(pool, 0)
    buf.fill(0x33)
    pool.prepare(0, 0, 0)
    expectRange(buf, 0, 4096, 0x33, 'already prepared dpage')
  })

  it('handles kept ranges at the edges of the dpage', () => {
    const pool = makePool('64K@0x100000000:4K', 1, 12)
    pool.alloc(0, 2)
    bytesOf(pool, 0).fill(0xaa)
    bytesOf(pool, 1).fill(0xbb)
    pool.release(0)
    pool.release(1)
    pool.alloc(0, 2)
    pool.prepare(0, 0, 4096) // keeps everything
    expectRange(bytesOf(pool, 0), 0, 4096, 0xaa, 'fully kept dpage')
    pool.prepare(1, 0, 0) // keeps nothing
    expectRange(bytesOf(pool, 1), 0, 4096, 0, 'fully cleared dpage')
  })

  it('clears the right bytes of a 2M dpage in a later region', () => {
    const pool = makePool('1280M', 1, 21)
    const d = 513 // the second dpage of region 1
    expect(pool.regionOf(d).id).to.equal(1)
    pool.alloc(0, 512)
    pool.alloc(0, 3)
    const buf = bytesOf(pool, d)
    buf.fill(0xaa)
    bytesOf(pool, d + 1).fill(0xcc)
    pool.release(d)
    expect(pool.alloc(0, 1)).to.deep.equal({ first: d, count: 1 })
    pool.prepare(d, 4096, 2 * MiB - 1)
    expectRange(buf, 0, 4096, 0, 'head')
    expectRange(buf, 4096, 2 * MiB - 1, 0xaa, 'kept range')
    expectRange(buf, 2 * MiB - 1, 2 * MiB, 0, 'tail')
    expectRange(bytesOf(pool, d + 1), 0, 2 * MiB, 0xcc, 'next dpage')
    expectRange(bytesOf(pool, d - 1), 0, 2 * MiB, 0, 'previous dpage')
  })

  it('clears a dpage that comes back from poison before its next owner sees it', () => {
    const pool = makePool('64K@0x100000000:4K', 1, 12)
    pool.alloc(0, 1)
    bytesOf(pool, 0).fill(0xee)
    pool.setOwner(0, 1, 0)
    pool.poison(0)
    pool.release(0)
    expect(pool.unpoison(0)).to.equal('unpoisoned')
    expect(pool.alloc(0, 1)).to.deep.equal({ first: 0, count: 1 })
    pool.prepare(0, 10, 20)
    const buf = bytesOf(pool, 0)
    expectRange(buf, 0, 10, 0, 'head')
    expectRange(buf, 10, 20, 0xee, 'kept range')
    expectRange(buf, 20, 4096, 0, 'tail')
  })
})

describe('pool: findZeroBit', () => {
  const bits = (...words: number[]): Uint32Array => Uint32Array.from(words)

  it('finds the first clear bit at or after from', () => {
    expect(findZeroBit(bits(0), 0, 32)).to.equal(0)
    expect(findZeroBit(bits(0), 5, 32)).to.equal(5)
    expect(findZeroBit(bits(0), 31, 32)).to.equal(31)
    expect(findZeroBit(bits(0b1011), 0, 32)).to.equal(2)
    expect(findZeroBit(bits(0b1011), 3, 32)).to.equal(4)
    expect(findZeroBit(bits(0, 0), 40, 64)).to.equal(40)
  })

  it('ignores clear bits below from', () => {
    expect(findZeroBit(bits(0b0000), 3, 32)).to.equal(3)
    expect(findZeroBit(bits(0xfffffff0, 0), 4, 64)).to.equal(32)
    expect(findZeroBit(bits(0, 0xffff0000), 40, 64)).to.equal(40)
    expect(findZeroBit(bits(0, 0xffff00ff), 40, 64)).to.equal(40)
    expect(findZeroBit(bits(0, 0x0000ffff), 33, 64)).to.equal(48)
  })

  it('handles bit 31', () => {
    expect(findZeroBit(bits(0x7fffffff), 0, 32)).to.equal(31)
    expect(findZeroBit(bits(0x7fffffff, 0), 0, 64)).to.equal(31)
    expect(findZeroBit(bits(0xffffffff, 0x7fffffff), 0, 64)).to.equal(63)
    expect(findZeroBit(bits(0xffffffff, 0x7fffffff), 63, 64)).to.equal(63)
    expect(findZeroBit(bits(0x80000000), 31, 32)).to.equal(-1)
  })

  it('skips full words', () => {
    expect(findZeroBit(bits(0xffffffff, 0), 0, 64)).to.equal(32)
    expect(findZeroBit(bits(0xffffffff, 0xffffffff, 0xfffffffe), 0, 96)).to.equal(64)
    expect(findZeroBit(bits(0xffffffff, 0xffffffff, 0xffff7fff), 1, 96)).to.equal(79)
  })

  it('returns -1 when every bit is set', () => {
    expect(findZeroBit(bits(0xffffffff), 0, 32)).to.equal(-1)
    expect(findZeroBit(bits(0xffffffff, 0xffffffff), 0, 64)).to.equal(-1)
    expect(findZeroBit(bits(0xffffffff, 0xffffffff), 37, 64)).to.equal(-1)
  })

  it('returns -1 for a clear bit at or past the limit', () => {
    expect(findZeroBit(bits(0x0000000f), 0, 4)).to.equal(-1)
    expect(findZeroBit(bits(0x0000000f), 0, 5)).to.equal(4)
    expect(findZeroBit(bits(0xffffffff, 0), 0, 32)).to.equal(-1)
    expect(findZeroBit(bits(0xffffffff, 0), 0, 33)).to.equal(32)
    expect(findZeroBit(bits(0xffffffff, 0xfffffffe), 5, 32)).to.equal(-1)
  })

  it('returns -1 when from is at or past the limit', () => {
    expect(findZeroBit(bits(0), 32, 32)).to.equal(-1)
    expect(findZeroBit(bits(0), 10, 10)).to.equal(-1)
    expect(findZeroBit(bits(0), 11, 10)).to.equal(-1)
    expect(findZeroBit(bits(0), 9, 10)).to.equal(9)
  })

  it('agrees with a bit-by-bit scan on random bitmaps', () => {
    const rand = rng(12345)
    for (let trial = 0; trial < 500; trial++) {
      const words = 1 + Math.floor(rand() * 4)
      const density = rand()
      const map = new Uint32Array(words)
      const set: boolean[] = []
      for (let pos = 0; pos < words * 32; pos++) {
        const on = rand() < density
        set.push(on)
        if (on) map[pos >>> 5] |= 1 << (pos & 31)
      }
      const limit = 1 + Math.floor(rand() * words * 32)
      const from = Math.floor(rand() * (limit + 2))
      let want = -1
      for (let pos = from; pos < limit; pos++) if (!set[pos]) { want = pos; break }
      expect(findZeroBit(map, from, limit), `trial ${trial}`).to.equal(want)
    }
  })
})
