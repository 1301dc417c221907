import { expect } from 'chai'
import { GiB, MiB } from '../../src/pool/layout'
import { DEFAULT_NR_INODES, MAX_NODES, MountOptions, defaultMountOptions, parseMountOptions } from '../../src/options'

function parse (...texts: string[]): MountOptions {
  const r = parseMountOptions(texts)
  if (!r.ok) throw new Error(`parseMountOptions(${JSON.stringify(texts)}) failed: ${r.error}`)
  return r.value
}

function error (...texts: string[]): string {
  const r = parseMountOptions(texts)
  if (r.ok) throw new Error(`parseMountOptions(${JSON.stringify(texts)}) unexpectedly succeeded`)
  return r.error
}

describe('options: parseMountOptions', () => {
  describe('defaults', () => {
    it('gives 4K dpages, dmem=1G, one node, one dpage per try and 1048576 inodes', () => {
      const o = parse()
      expect(o.dpageShift).to.equal(12)
      expect(o.dmem).to.deep.equal({ size: GiB, addr: null, align: 128 * MiB })
      expect(o.nodes).to.equal(1)
      expect(o.maxAllocTry).to.equal(1)
      expect(o.nrInodes).to.equal(1048576)
      expect(DEFAULT_NR_INODES).to.equal(1048576)
      expect(o.mode).to.equal(0o755)
      expect(o.allowOther).to.equal(false)
      expect(o.uid).to.equal(process.getuid?.() ?? 0)
      expect(o.gid).to.equal(process.getgid?.() ?? 0)
    })

    it('matches defaultMountOptions() and ignores empty option strings and items', () => {
      expect(parse('')).to.deep.equal(defaultMountOptions())
      expect(parse(',,', '')).to.deep.equal(defaultMountOptions())
    })
  })

  describe('pagesize', () => {
    it('accepts 4K, 2M and 1G, in any memparse spelling', () => {
      expect(parse('pagesize=4K').dpageShift).to.equal(12)
      expect(parse('pagesize=4096').dpageShift).to.equal(12)
      expect(parse('pagesize=2M').dpageShift).to.equal(21)
      expect(parse('pagesize=2m').dpageShift).to.equal(21)
      expect(parse('pagesize=0x200000').dpageShift).to.equal(21)
      expect(parse('pagesize=1G').dpageShift).to.equal(30)
      expect(parse('pagesize=1024M').dpageShift).to.equal(30)
    })

    it("rejects other sizes with 'unknown pagesize'", () => {
      for (const bad of ['pagesize=8K', 'pagesize=1M', 'pagesize=4M', 'pagesize=2G', 'pagesize=abc', 'pagesize=',
        'pagesize']) {
        const e = error(bad)
        expect(e, bad).to.include('unknown pagesize')
        expect(e, bad).to.include(`'${bad}'`)
      }
    })
  })

  describe('dmem', () => {
    it('takes size[@addr][:align]', () => {
      expect(parse('dmem=2G').dmem).to.deep.equal({ size: 2 * GiB, addr: null, align: 128 * MiB })
      expect(parse('dmem=2G@0x200000000:1G').dmem).to.deep.equal({ size: 2 * GiB, addr: 8 * GiB, align: GiB })
      expect(parse('dmem=6M@0x100101000:4K').dmem).to.deep.equal({ size: 6 * MiB, addr: 0x100101000, align: 4096 })
    })

    it('reports the spec error under the option', () => {
      expect(error('dmem=1G:3M')).to.match(/^bad mount option 'dmem=1G:3M': .*power of two/)
      expect(error('dmem=6M:4M')).to.match(/^bad mount option 'dmem=6M:4M': .*not a multiple/)
      expect(error('dmem=1G@0x100001000')).to.match(/^bad mount option 'dmem=1G@0x100001000': .*not aligned/)
      expect(error('dmem=1G@0')).to.match(/^bad mount option 'dmem=1G@0': .*must not be 0/)
      expect(error('dmem=junk')).to.match(/^bad mount option 'dmem=junk': bad size/)
      expect(error('dmem')).to.match(/^bad mount option 'dmem': needs a value/)
    })
  })

  describe('size', () => {
    it('gives a one-node pool aligned only to 4K', () => {
      expect(parse('size=64M').dmem).to.deep.equal({ size: 64 * MiB, addr: null, align: 4096 })
      expect(parse('size=12K').dmem).to.deep.equal({ size: 12 * 1024, addr: null, align: 4096 })
    })

    it('rejects sizes that are not a positive multiple of 4K', () => {
      for (const bad of ['size=5000', 'size=0', 'size=2K', 'size=abc', 'size=', 'size']) {
        expect(error(bad), bad).to.match(new RegExp(`^bad mount option '${bad}': expects a size that is a multiple of 4K`))
      }
    })

    it('cannot be given together with dmem, in either order', () => {
      expect(error('size=64M,dmem=1G')).to.match(/^bad mount option 'dmem=1G': dmem= and size= both describe the pool/)
      expect(error('dmem=1G,size=64M')).to.match(/^bad mount option 'size=64M': dmem= and size= both describe the pool/)
      expect(error('dmem=1G', 'size=64M')).to.include('both describe the pool')
    })

    it('cannot be used with more than one node, in either order', () => {
      for (const texts of [['size=64M,nodes=2'], ['nodes=2,size=64M'], ['nodes=3', 'size=4M']]) {
        const e = error(...texts)
        expect(e, texts.join(' ')).to.match(/^bad mount option 'size'/)
        expect(e).to.include('nodes=')
      }
      expect(parse('size=64M,nodes=1').nodes).to.equal(1)
    })
  })

  describe('nodes', () => {
    it('takes 1 to 64 nodes', () => {
      expect(MAX_NODES).to.equal(64)
      expect(parse('nodes=1').nodes).to.equal(1)
      expect(parse('nodes=4').nodes).to.equal(4)
      expect(parse('nodes=64').nodes).to.equal(64)
    })

    it('rejects a bad count', () => {
      for (const bad of ['nodes=0', 'nodes=65', 'nodes=-1', 'nodes=x', 'nodes=2.5', 'nodes=0x2', 'nodes=', 'nodes']) {
        expect(error(bad), bad).to.match(new RegExp(`^bad mount option '${bad}': expects a number of nodes from 1 to 64`))
      }
    })
  })

  describe('max_alloc_try_dpages', () => {
    it('takes a whole number of at least 1', () => {
      expect(parse('max_alloc_try_dpages=1').maxAllocTry).to.equal(1)
      expect(parse('max_alloc_try_dpages=16').maxAllocTry).to.equal(16)
    })

    it('rejects 0 and junk', () => {
      for (const bad of ['max_alloc_try_dpages=0', 'max_alloc_try_dpages=-1', 'max_alloc_try_dpages=x',
        'max_alloc_try_dpages']) {
        expect(error(bad), bad).to.match(new RegExp(`^bad mount option '${bad}': expects a whole number of at least 1`))
      }
    })
  })

  describe('mode', () => {
    it('takes octal permission bits', () => {
      expect(parse('mode=0700').mode).to.equal(0o700)
      expect(parse('mode=755').mode).to.equal(0o755)
      expect(parse('mode=1777').mode).to.equal(0o1777)
      expect(parse('mode=0').mode).to.equal(0)
    })

    it('rejects non-octal or overlong modes', () => {
      for (const bad of ['mode=999', 'mode=0789', 'mode=rwx', 'mode=12345', 'mode=', 'mode']) {
        expect(error(bad), bad).to.match(new RegExp(`^bad mount option '${bad}': expects octal permission bits`))
      }
    })
  })

  describe('ce_threshold', () => {
    it('takes a whole number, 0 (the default) meaning never', () => {
      expect(parse('').ceThreshold).to.equal(0)
      expect(parse('ce_threshold=3').ceThreshold).to.equal(3)
      expect(parse('ce_threshold=0').ceThreshold).to.equal(0)
    })
    it('rejects junk and a missing value', () => {
      expect(error('ce_threshold=x')).to.match(/ce_threshold.*whole number/)
      expect(error('ce_threshold=-1')).to.match(/ce_threshold/)
      expect(error('ce_threshold')).to.match(/ce_threshold/)
    })
  })

  describe('uid, gid, nr_inodes, allow_other', () => {
    it('takes numeric ids', () => {
      const o = parse('uid=1000,gid=2000')
      expect(o.uid).to.equal(1000)
      expect(o.gid).to.equal(2000)
      expect(parse('uid=0,gid=0')).to.include({ uid: 0, gid: 0 })
      expect(parse('uid=4294967294').uid).to.equal(0xfffffffe)
    })

    it('rejects bad ids', () => {
      expect(error('uid=4294967295')).to.match(/^bad mount option 'uid=4294967295': expects a numeric user id/)
      expect(error('uid=root')).to.match(/expects a numeric user id/)
      expect(error('gid=-1')).to.match(/^bad mount option 'gid=-1': expects a numeric group id/)
      expect(error('gid')).to.match(/expects a numeric group id/)
    })

    it('takes nr_inodes with memparse, 0 meaning unlimited', () => {
      expect(parse('nr_inodes=0').nrInodes).to.equal(0)
      expect(parse('nr_inodes=1000').nrInodes).to.equal(1000)
      expect(parse('nr_inodes=1M').nrInodes).to.equal(1048576)
      expect(parse('nr_inodes=4294967295').nrInodes).to.equal(0xffffffff)
      expect(error('nr_inodes=4294967296')).to.match(/^bad mount option 'nr_inodes=4294967296': expects a number of inodes/)
      expect(error('nr_inodes=lots')).to.match(/expects a number of inodes/)
    })

    it('takes allow_other without a value', () => {
      expect(parse('allow_other').allowOther).to.equal(true)
      expect(error('allow_other=1')).to.match(/^bad mount option 'allow_other=1': takes no value/)
    })
  })

  describe('combinations and unknown options', () => {
    it('applies several option strings, each comma-separated', () => {
      const o = parse('nodes=2,pagesize=2M', 'max_alloc_try_dpages=4,dmem=256M', 'mode=0750')
      expect(o.nodes).to.equal(2)
      expect(o.dpageShift).to.equal(21)
      expect(o.maxAllocTry).to.equal(4)
      expect(o.dmem).to.deep.equal({ size: 256 * MiB, addr: null, align: 128 * MiB })
      expect(o.mode).to.equal(0o750)
    })

    it('lets a later value of the same option win', () => {
      expect(parse('nodes=2,nodes=3').nodes).to.equal(3)
      expect(parse('pagesize=2M', 'pagesize=4K').dpageShift).to.equal(12)
    })

    it('names an unknown option', () => {
      expect(error('foo')).to.equal("unknown mount option 'foo'")
      expect(error('nodes=2,foo=bar')).to.equal("unknown mount option 'foo'")
      expect(error('Nodes=2')).to.equal("unknown mount option 'Nodes'")
      expect(error('toString')).to.equal("unknown mount option 'toString'")
      expect(error('__proto__=1')).to.equal("unknown mount option '__proto__'")
    })

    it('stops at the first bad option', () => {
      expect(error('nodes=0,mode=999')).to.match(/'nodes=0'/)
      expect(error('mode=999,nodes=0')).to.match(/'mode=999'/)
    })
  })

  describe('pool layout', () => {
    it('reports a pool too small for the dpage size as a dmem error', () => {
      expect(error('pagesize=1G,dmem=128M')).to.match(/^bad mount option 'dmem': .*no whole 1G dpage/)
      expect(error('dmem=128M', 'pagesize=1G')).to.match(/^bad mount option 'dmem': .*no whole 1G dpage/)
      expect(error('pagesize=2M,size=1M')).to.match(/^bad mount option 'size': .*no whole 2M dpage/)
      expect(error('pagesize=2M,dmem=2M@0x100101000:4K')).to.match(/no whole 2M dpage/)
    })

    it('accepts the same pools when the dpages fit', () => {
      expect(parse('pagesize=2M,dmem=128M').dpageShift).to.equal(21)
      expect(parse('pagesize=1G,dmem=1G').dpageShift).to.equal(30)
      expect(parse('pagesize=2M,size=2M').dmem.size).to.equal(2 * MiB)
    })

    it('reports a pool that ends past 2^53', () => {
      expect(error('dmem=1G@0x1fffffc0000000,nodes=2')).to.match(/^bad mount option 'dmem': .*2\^53/)
    })
  })

  describe('native', () => {
    it('is on by default; native=0 turns the native data path off, native=1 on', () => {
      expect(parse().native).to.equal(true)
      expect(parse('native=0').native).to.equal(false)
      expect(parse('native=0,native=1').native).to.equal(true)
    })

    it('takes only 0 or 1', () => {
      expect(error('native')).to.equal("bad mount option 'native': expects 0 or 1")
      expect(error('native=yes')).to.equal("bad mount option 'native=yes': expects 0 or 1")
    })
  })
})
