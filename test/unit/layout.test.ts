import { expect } from 'chai'
import {
  DmemSpec, GiB, KiB, MiB, PoolLayout, DEFAULT_ALIGN, DEFAULT_POOL_BASE, REGION_MAX_BYTES,
  fmtSize, layoutPool, memparse, parseDmemSpec
} from '../../src/pool/layout'

const TiB = 1024 * GiB

function spec (text: string): DmemSpec {
  const r = parseDmemSpec(text)
  if (!r.ok) throw new Error(`parseDmemSpec('${text}') failed: ${r.error}`)
  return r.value
}

function layout (text: string, nodes: number, shift: number): PoolLayout {
  const r = layoutPool(spec(text), nodes, shift)
  if (!r.ok) throw new Error(`layoutPool('${text}', ${nodes}, ${shift}) failed: ${r.error}`)
  return r.value
}

describe('layout: memparse', () => {
  it('parses plain decimal numbers', () => {
    expect(memparse('0')).to.equal(0)
    expect(memparse('1')).to.equal(1)
    expect(memparse('123')).to.equal(123)
    expect(memparse('4096')).to.equal(4096)
  })

  it('parses 0x hexadecimal, either case', () => {
    expect(memparse('0x10')).to.equal(16)
    expect(memparse('0X10')).to.equal(16)
    expect(memparse('0xff')).to.equal(255)
    expect(memparse('0xFF')).to.equal(255)
    expect(memparse('0x100101000')).to.equal(0x100101000)
    // E is a hex digit here, not the exa suffix
    expect(memparse('0x1E')).to.equal(0x1e)
  })

  it('parses a leading 0 as octal', () => {
    expect(memparse('010')).to.equal(8)
    expect(memparse('0777')).to.equal(511)
    expect(memparse('00')).to.equal(0)
  })

  it('applies K/M/G/T suffixes in either case', () => {
    expect(memparse('4K')).to.equal(4 * KiB)
    expect(memparse('4k')).to.equal(4 * KiB)
    expect(memparse('2M')).to.equal(2 * MiB)
    expect(memparse('2m')).to.equal(2 * MiB)
    expect(memparse('1G')).to.equal(GiB)
    expect(memparse('1g')).to.equal(GiB)
    expect(memparse('3T')).to.equal(3 * TiB)
    expect(memparse('3t')).to.equal(3 * TiB)
    expect(memparse('0x10K')).to.equal(16 * KiB)
    expect(memparse('010M')).to.equal(8 * MiB)
    expect(memparse('0K')).to.equal(0)
  })

  it('rejects junk, empty and negative input', () => {
    for (const bad of ['', ' ', '-1', '-4K', '+1', ' 1', '1 ', 'K', '1KB', '1KK', '1.5', '1e3x', 'abc', '0x',
      '0xg', '08', '09', '1Z', '4 K', '1_000', '0b101']) {
      expect(memparse(bad), `memparse('${bad}')`).to.equal(null)
    }
  })

  it('accepts values up to 2^53-1 and rejects anything at or over 2^53', () => {
    expect(memparse('9007199254740991')).to.equal(2 ** 53 - 1)
    expect(memparse('0x1fffffffffffff')).to.equal(2 ** 53 - 1)
    expect(memparse('9007199254740992')).to.equal(null)
    expect(memparse('9007199254740993')).to.equal(null)
    expect(memparse('0x20000000000000')).to.equal(null)
    expect(memparse('99999999999999999999999')).to.equal(null)
    expect(memparse('8191T')).to.equal(8191 * TiB)
    expect(memparse('8192T')).to.equal(null) // exactly 2^53
    expect(memparse('7P')).to.equal(7 * 2 ** 50)
    expect(memparse('8P')).to.equal(null)
    expect(memparse('1E')).to.equal(null)
    expect(memparse('0x1fffffffffffffK')).to.equal(null) // base fits, value does not
  })
})

describe('layout: parseDmemSpec', () => {
  it('parses size alone with the default alignment and no address', () => {
    expect(parseDmemSpec('1G')).to.deep.equal({ ok: true, value: { size: GiB, addr: null, align: DEFAULT_ALIGN } })
    expect(DEFAULT_ALIGN).to.equal(128 * MiB)
    expect(parseDmemSpec('256M')).to.deep.equal({ ok: true, value: { size: 256 * MiB, addr: null, align: 128 * MiB } })
  })

  it('parses size:align', () => {
    expect(parseDmemSpec('6M:2M')).to.deep.equal({ ok: true, value: { size: 6 * MiB, addr: null, align: 2 * MiB } })
    expect(parseDmemSpec('2G:1G')).to.deep.equal({ ok: true, value: { size: 2 * GiB, addr: null, align: GiB } })
    expect(parseDmemSpec('4K:4K')).to.deep.equal({ ok: true, value: { size: 4 * KiB, addr: null, align: 4 * KiB } })
  })

  it('parses size@addr', () => {
    expect(parseDmemSpec('1G@0x200000000')).to.deep.equal(
      { ok: true, value: { size: GiB, addr: 8 * GiB, align: DEFAULT_ALIGN } })
    expect(parseDmemSpec('256M@12G')).to.deep.equal(
      { ok: true, value: { size: 256 * MiB, addr: 12 * GiB, align: DEFAULT_ALIGN } })
  })

  it('parses size@addr:align', () => {
    expect(parseDmemSpec('6M@0x100101000:4K')).to.deep.equal(
      { ok: true, value: { size: 6 * MiB, addr: 0x100101000, align: 4 * KiB } })
    expect(parseDmemSpec('2G@4G:1G')).to.deep.equal(
      { ok: true, value: { size: 2 * GiB, addr: 4 * GiB, align: GiB } })
  })

  function error (text: string): string {
    const r = parseDmemSpec(text)
    if (r.ok) throw new Error(`parseDmemSpec('${text}') unexpectedly gave ${JSON.stringify(r.value)}`)
    return r.error
  }

  it('rejects an alignment that is not a power of two, or below 4K', () => {
    expect(error('12M:3M')).to.match(/power of two/)
    expect(error('1G:0x3000')).to.match(/power of two/)
    expect(error('1G:0')).to.match(/power of two/)
    expect(error('8K:2K')).to.match(/power of two of at least 4K/)
    expect(error('1G:junk')).to.match(/align 'junk'/)
  })

  it('rejects a size that is not a multiple of the alignment', () => {
    expect(error('6M:4M')).to.match(/not a multiple of align 4M/)
    expect(error('6M')).to.match(/not a multiple of align 128M/)
    expect(error('4097:4K')).to.match(/not a multiple/)
  })

  it('rejects an address not aligned to the alignment', () => {
    expect(error('1G@0x100001000')).to.match(/not aligned to 128M/)
    expect(error('6M@0x100101000:2M')).to.match(/not aligned to 2M/)
    expect(error('4K@0x100000800:4K')).to.match(/not aligned to 4K/)
  })

  it('rejects address 0', () => {
    expect(error('1G@0')).to.match(/must not be 0/)
    expect(error('1G@0x0')).to.match(/must not be 0/)
    expect(error('4K@0:4K')).to.match(/must not be 0/)
  })

  it('rejects a zero or unparsable size and an unparsable address', () => {
    expect(error('0')).to.match(/bad size '0'/)
    expect(error('abc')).to.match(/bad size 'abc'/)
    expect(error('-1G')).to.match(/bad size/)
    expect(error('1G@xyz')).to.match(/bad address 'xyz'/)
  })

  it('rejects text that is not of the form size[@addr][:align]', () => {
    for (const bad of ['', '@4G', ':4K', '1G@', '1G:', '1G@@4G', '1G@4G@8G', '1G:4K:4K', '1G:4K@4G', '1G@4G:4K:4K']) {
      expect(error(bad), `parseDmemSpec('${bad}')`).to.match(/cannot parse/)
    }
  })
})

describe('layout: layoutPool', () => {
  it('starts a pool without an address at 4 GiB', () => {
    const l = layout('1G', 1, 12)
    expect(DEFAULT_POOL_BASE).to.equal(4 * GiB)
    expect(l.nodes).to.deep.equal([{ id: 0, phys: 4 * GiB, size: GiB, unalignedPages: 0 }])
    expect(l.regions).to.deep.equal([{ id: 0, node: 0, phys: 4 * GiB, dpages: GiB / 4096 }])
    expect(l.dpageShift).to.equal(12)
    expect(l.dpageSize).to.equal(4096)
    expect(l.totalDpages).to.equal(GiB / 4096)
    expect(l.registeredPages).to.equal(GiB / 4096)
    expect(l.unalignedPages).to.equal(0)
  })

  it('rounds the default base up to an alignment above 4 GiB', () => {
    const l = layout('8G:8G', 1, 30)
    expect(l.nodes[0].phys).to.equal(8 * GiB)
    expect(l.regions[0].phys).to.equal(8 * GiB)
  })

  it('uses the given address as the start of the first node', () => {
    const l = layout('256M@0x200000000', 1, 21)
    expect(l.nodes[0].phys).to.equal(8 * GiB)
    expect(l.regions).to.deep.equal([{ id: 0, node: 0, phys: 8 * GiB, dpages: 128 }])
  })

  it('gives nodes without an address their own ranges at least a GiB apart', () => {
    const l = layout('256M', 3, 21)
    expect(l.nodes.map(n => n.phys)).to.deep.equal([4 * GiB, 5 * GiB, 6 * GiB])
    expect(l.nodes.map(n => n.id)).to.deep.equal([0, 1, 2])
    expect(l.regions).to.deep.equal([
      { id: 0, node: 0, phys: 4 * GiB, dpages: 128 },
      { id: 1, node: 1, phys: 5 * GiB, dpages: 128 },
      { id: 2, node: 2, phys: 6 * GiB, dpages: 128 }
    ])
    expect(l.totalDpages).to.equal(384)
    expect(l.registeredPages).to.equal(3 * 256 * MiB / 4096)

    const big = layout('2G', 2, 30)
    expect(big.nodes.map(n => n.phys)).to.deep.equal([4 * GiB, 6 * GiB])
    expect(big.regions.map(r => [r.node, r.phys])).to.deep.equal(
      [[0, 4 * GiB], [0, 5 * GiB], [1, 6 * GiB], [1, 7 * GiB]])
  })

  it('places nodes with an address one after another', () => {
    const l = layout('256M@0x200000000', 2, 12)
    expect(l.nodes.map(n => n.phys)).to.deep.equal([8 * GiB, 8 * GiB + 256 * MiB])
    expect(l.regions.map(r => [r.node, r.phys, r.dpages])).to.deep.equal(
      [[0, 8 * GiB, 65536], [1, 8 * GiB + 256 * MiB, 65536]])
  })

  it('never lets node ranges or regions overlap', () => {
    for (const [text, nodes, shift] of [['256M', 4, 12], ['2G', 3, 30], ['1280M', 2, 21], ['6M@0x100101000:4K', 3, 21],
      ['3G@0x108000000', 2, 30]] as Array<[string, number, number]>) {
      const l = layout(text, nodes, shift)
      for (let i = 1; i < l.nodes.length; i++) {
        expect(l.nodes[i].phys, text).to.be.at.least(l.nodes[i - 1].phys + l.nodes[i - 1].size)
      }
      for (let i = 1; i < l.regions.length; i++) {
        const prev = l.regions[i - 1]
        expect(l.regions[i].phys, text).to.be.at.least(prev.phys + prev.dpages * l.dpageSize)
      }
      for (const r of l.regions) {
        const n = l.nodes[r.node]
        expect(r.phys, text).to.be.at.least(n.phys)
        expect(r.phys + r.dpages * l.dpageSize, text).to.be.at.most(n.phys + n.size)
        expect(r.phys % l.dpageSize, text).to.equal(0)
      }
    }
  })

  it('carves regions of at most 1 GiB', () => {
    expect(REGION_MAX_BYTES).to.equal(GiB)
    const l = layout('2560M', 1, 12)
    expect(l.regions).to.deep.equal([
      { id: 0, node: 0, phys: 4 * GiB, dpages: 262144 },
      { id: 1, node: 0, phys: 5 * GiB, dpages: 262144 },
      { id: 2, node: 0, phys: 6 * GiB, dpages: 131072 }
    ])
    expect(l.totalDpages).to.equal(2560 * MiB / 4096)

    const m = layout('1280M', 2, 21)
    expect(m.regions).to.deep.equal([
      { id: 0, node: 0, phys: 4 * GiB, dpages: 512 },
      { id: 1, node: 0, phys: 5 * GiB, dpages: 128 },
      { id: 2, node: 1, phys: 6 * GiB, dpages: 512 },
      { id: 3, node: 1, phys: 7 * GiB, dpages: 128 }
    ])
  })

  it('puts each 1G dpage in a region of its own', () => {
    const l = layout('2G', 1, 30)
    expect(l.dpageSize).to.equal(GiB)
    expect(l.regions).to.deep.equal([
      { id: 0, node: 0, phys: 4 * GiB, dpages: 1 },
      { id: 1, node: 0, phys: 5 * GiB, dpages: 1 }
    ])
    expect(l.totalDpages).to.equal(2)
    expect(l.unalignedPages).to.equal(0)
  })

  it('leaves the unaligned ends of a pool out of the dpages and counts them', () => {
    // [0x100101000, 0x100701000): whole 2M dpages only from 0x100200000 to 0x100600000
    const l = layout('6M@0x100101000:4K', 1, 21)
    expect(l.nodes).to.deep.equal([{ id: 0, phys: 0x100101000, size: 6 * MiB, unalignedPages: 512 }])
    expect(l.regions).to.deep.equal([{ id: 0, node: 0, phys: 0x100200000, dpages: 2 }])
    expect(l.totalDpages).to.equal(2)
    expect(l.unalignedPages).to.equal(512)
    expect(l.registeredPages).to.equal(1536)

    // the same reservation in 4K dpages is all usable
    const small = layout('6M@0x100101000:4K', 1, 12)
    expect(small.regions).to.deep.equal([{ id: 0, node: 0, phys: 0x100101000, dpages: 1536 }])
    expect(small.unalignedPages).to.equal(0)
  })

  it('counts unaligned pages per node and in total', () => {
    const l = layout('6M@0x100101000:4K', 2, 21)
    // node 1: [0x100701000, 0x100d01000) -> dpages 0x100800000..0x100c00000
    expect(l.nodes.map(n => [n.phys, n.unalignedPages])).to.deep.equal([[0x100101000, 512], [0x100701000, 512]])
    expect(l.regions).to.deep.equal([
      { id: 0, node: 0, phys: 0x100200000, dpages: 2 },
      { id: 1, node: 1, phys: 0x100800000, dpages: 2 }
    ])
    expect(l.unalignedPages).to.equal(1024)
    expect(l.registeredPages).to.equal(3072)
    expect(l.totalDpages).to.equal(4)
  })

  it('handles unaligned bounds with 1G dpages', () => {
    // [4G+128M, 7G+128M): whole 1G dpages at 5G and 6G
    const l = layout('3G@0x108000000', 1, 30)
    expect(l.regions).to.deep.equal([
      { id: 0, node: 0, phys: 5 * GiB, dpages: 1 },
      { id: 1, node: 0, phys: 6 * GiB, dpages: 1 }
    ])
    expect(l.unalignedPages).to.equal(GiB / 4096)
    expect(l.registeredPages).to.equal(3 * GiB / 4096)
  })

  it('counts a node that holds no whole dpage as entirely unaligned', () => {
    // node 0 [0x100001000, 0x100301000) holds no whole 2M dpage; node 1 [0x100301000, 0x100601000) holds one
    const r = layoutPool({ size: 3 * MiB, addr: 0x100001000, align: 4096 }, 2, 21)
    if (!r.ok) throw new Error(r.error)
    expect(r.value.regions).to.deep.equal([{ id: 0, node: 1, phys: 0x100400000, dpages: 1 }])
    expect(r.value.nodes.map(n => n.unalignedPages)).to.deep.equal([768, 256])
    expect(r.value.unalignedPages).to.equal(1024)
    expect(r.value.totalDpages).to.equal(1)
    expect(r.value.registeredPages).to.equal(1536)
  })

  it('reports an error when the pool holds no whole dpage', () => {
    const cases: Array<[DmemSpec, number, RegExp]> = [
      [spec('1M:4K'), 21, /no whole 2M dpage/],
      [spec('2M@0x100101000:4K'), 21, /no whole 2M dpage/],
      [spec('128M'), 30, /no whole 1G dpage/],
      [spec('1G@0x108000000'), 30, /no whole 1G dpage/]
    ]
    for (const [s, shift, re] of cases) {
      const r = layoutPool(s, 2, shift)
      expect(r.ok, JSON.stringify(s)).to.equal(false)
      if (!r.ok) expect(r.error).to.match(re)
    }
  })

  it('reports an error when the pool would end past 2^53', () => {
    const r = layoutPool({ size: GiB, addr: 2 ** 53 - GiB, align: GiB }, 2, 30)
    expect(r.ok).to.equal(false)
    if (!r.ok) expect(r.error).to.match(/2\^53/)
    expect(layoutPool({ size: GiB, addr: 2 ** 52, align: GiB }, 2, 30).ok).to.equal(true)
  })
})

describe('layout: fmtSize', () => {
  it('prints sizes with the largest exact unit', () => {
    expect(fmtSize(4096)).to.equal('4K')
    expect(fmtSize(2097152)).to.equal('2M')
    expect(fmtSize(GiB)).to.equal('1G')
    expect(fmtSize(128 * MiB)).to.equal('128M')
    expect(fmtSize(6 * MiB)).to.equal('6M')
    expect(fmtSize(TiB)).to.equal('1T')
    expect(fmtSize(2 ** 50)).to.equal('1P')
    expect(fmtSize(2 ** 60)).to.equal('1024P')
  })

  it('keeps a smaller unit when the size is not a whole number of the larger one', () => {
    expect(fmtSize(1536 * KiB)).to.equal('1536K')
    expect(fmtSize(1536)).to.equal('1536')
    expect(fmtSize(4097)).to.equal('4097')
    expect(fmtSize(GiB + 4096)).to.equal('1048580K')
  })

  it('prints small sizes in bytes', () => {
    expect(fmtSize(0)).to.equal('0')
    expect(fmtSize(1)).to.equal('1')
    expect(fmtSize(1023)).to.equal('1023')
    expect(fmtSize(1024)).to.equal('1K')
  })
})
