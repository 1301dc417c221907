import { expect } from 'chai'
import { GiB, layoutPool, parseDmemSpec, PoolLayout } from '../../src/pool/layout'
import { BOOKKEEPING_BYTES_PER_DPAGE, checkPoolFits, MachineLimits, poolCost } from '../../src/pool/limits'

const TiB = 1024 * GiB

function layout (dmem: string, dpageShift = 12, nodes = 1): PoolLayout {
  const spec = parseDmemSpec(dmem)
  if (!spec.ok) throw new Error(spec.error)
  const r = layoutPool(spec.value, nodes, dpageShift)
  if (!r.ok) throw new Error(r.error)
  return r.value
}

// A machine like the project's: 24 GiB, no swap, heuristic overcommit, no ulimit -v.
function machine (over: Partial<MachineLimits> = {}): MachineLimits {
  return {
    memAvailable: 22 * GiB,
    memTotal: 24 * GiB,
    overcommit: 0,
    commitFree: 11 * GiB,
    addressSpaceFree: Infinity,
    addressSpaceUsed: GiB,
    maxMapCount: 65530,
    mapsUsed: 100,
    ...over
  }
}

describe('pool limits', function () {
  it('counts what mounting allocates: region Buffers, 9 bytes of tables and a bitmap bit a dpage', function () {
    const cost = poolCost(layout('64G'))
    expect(cost.dpages).to.equal(16777216)
    expect(cost.data).to.equal(64 * GiB)
    expect(cost.bookkeeping).to.equal(16777216 * BOOKKEEPING_BYTES_PER_DPAGE)
    expect(cost.mappings).to.equal(64 + 3)
    expect(cost.largestAllocation).to.equal(GiB)
  })

  it('a 64G pool of 4K dpages fits a 24 GiB machine (address space, not memory), and so does 1T of 2M', function () {
    expect(checkPoolFits(layout('64G'), machine())).to.equal(null)
    expect(checkPoolFits(layout('1T', 21), machine())).to.equal(null)
  })

  it('64T of 4K dpages: its bookkeeping (146G) is past the memory available', function () {
    const error = checkPoolFits(layout('64T'), machine())
    expect(error).to.equal('a pool of 64T (17179869184 dpages of 4K) needs 146G of memory for its bookkeeping ' +
      '(9.125 bytes a dpage); this machine has 22G available (MemAvailable); use fewer or larger dpages')
  })

  it('bookkeeping may take exactly what is available, not a byte more', function () {
    const need = poolCost(layout('64G')).bookkeeping
    expect(checkPoolFits(layout('64G'), machine({ memAvailable: need }))).to.equal(null)
    expect(checkPoolFits(layout('64G'), machine({ memAvailable: need - 1 }))).to.match(/bookkeeping/)
  })

  it('64T of 1G dpages: one mapping a region is past vm.max_map_count', function () {
    expect(checkPoolFits(layout('64T', 30), machine())).to.equal('a pool of 64T (65536 dpages of 1G) needs ' +
      '65539 memory mappings (one a region of at most 1G); this process may add 64406 (vm.max_map_count 65530)')
    expect(checkPoolFits(layout('32T', 30), machine())).to.equal(null)
  })

  it('more dpages than one per-dpage table holds (2^32) is refused even with memory to spare', function () {
    const big = machine({ memAvailable: 1024 * TiB })
    expect(checkPoolFits(layout('16T'), big)).to.equal(null)
    expect(checkPoolFits(layout('32T'), big)).to.match(/more dpages than one table holds \(4294967296\)/)
  })

  it('past the 47-bit user address space', function () {
    const roomy = machine({ maxMapCount: 10000000 })
    expect(checkPoolFits(layout('64T', 30, 2), roomy)).to.match(/needs 128T of address space; a process has 128T \(47-bit\)/)
  })

  it('past ulimit -v (RLIMIT_AS)', function () {
    const limited = machine({ addressSpaceFree: 20 * GiB })
    expect(checkPoolFits(layout('8G'), limited)).to.equal(null)
    expect(checkPoolFits(layout('16G'), limited)).to.match(/ulimit -v \(RLIMIT_AS\) leaves 16G$/)
  })

  it('strict overcommit charges the whole pool: past CommitLimit - Committed_AS', function () {
    const strict = machine({ overcommit: 2, commitFree: 10 * GiB })
    expect(checkPoolFits(layout('8G'), strict)).to.equal(null)
    expect(checkPoolFits(layout('16G'), strict)).to.match(/strict overcommit \(vm.overcommit_memory=2\) leaves 10G/)
    expect(checkPoolFits(layout('64G'), machine({ overcommit: 0, commitFree: 10 * GiB }))).to.equal(null)
  })

  it('heuristic overcommit refuses one allocation larger than memory and swap; "always" does not', function () {
    const small = { memTotal: 512 * 1024 * 1024, memAvailable: 400 * 1024 * 1024 }
    expect(checkPoolFits(layout('1G'), machine(small))).to.match(/refuses any larger than memory and swap, 512M$/)
    expect(checkPoolFits(layout('1G'), machine({ ...small, overcommit: 1 }))).to.equal(null)
    expect(checkPoolFits(layout('256M'), machine(small))).to.equal(null)
  })
})
