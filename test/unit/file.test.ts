// Unit tests of the file data path through the Superblock, without FUSE: reads and writes against pool
// dpages, holes, truncate, a full pool, contiguous allocation and the reverse map, reuse of freed dpages,
// and poisoned dpages.

import { expect } from 'chai'
import { EFBIG, EINVAL, EIO, ENOSPC, isErrno } from '../../src/fs/errno'
import { Inode } from '../../src/fs/inode'
import { Superblock, SuperOptions } from '../../src/fs/super'
import { layoutPool } from '../../src/pool/layout'
import { DmemPool, DpageRun, NO_OWNER } from '../../src/pool/pool'

const O_RDWR = 2
const DS = 4096
const TOTAL = 256 // 1 MiB of 4 KiB dpages

function makeSb (opts: Partial<SuperOptions> = {}): Superblock {
  const layout = layoutPool({ size: 1 << 20, addr: null, align: 4096 }, 1, 12)
  if (!layout.ok) throw new Error(layout.error)
  const pool = new DmemPool(layout.value)
  return new Superblock(pool, { rootMode: 0o755, rootUid: 0, rootGid: 0, nrInodes: 0, maxAllocTry: 1, ...opts })
}

interface Open {
  fh: number
  inode: Inode
}

function create (sb: Superblock, path: string): Open {
  const fh = sb.create(path, 0o644, O_RDWR)
  if (isErrno(fh)) throw new Error(`create ${path}: ${fh}`)
  return { fh, inode: sb.handle(fh)!.inode }
}

function write (sb: Superblock, f: Open, data: Buffer, pos: number): number {
  return sb.write(f.fh, data, data.length, pos)
}

function read (sb: Superblock, f: Open, len: number, pos: number): Buffer | number {
  const buf = Buffer.alloc(len, 0xee)
  const n = sb.read(f.fh, buf, len, pos)
  return isErrno(n) ? n : buf.subarray(0, n)
}

function readOk (sb: Superblock, f: Open, len: number, pos: number): Buffer {
  const r = read(sb, f, len, pos)
  if (typeof r === 'number') throw new Error(`read: ${r}`)
  return r
}

/** A recognisable pattern: byte i of the file is (i * 7 + seed) & 0xff. */
function pattern (len: number, seed = 1, from = 0): Buffer {
  const buf = Buffer.alloc(len)
  for (let i = 0; i < len; i++) buf[i] = ((from + i) * 7 + seed) & 0xff
  return buf
}

function zeros (len: number): Buffer {
  return Buffer.alloc(len)
}

function blocks (sb: Superblock, f: Open): number {
  return sb.getattr(f.inode).blocks
}

/** Records every run the pool hands out. */
function spyAlloc (pool: DmemPool): DpageRun[] {
  const runs: DpageRun[] = []
  const orig = pool.alloc.bind(pool)
  pool.alloc = (node: number, tryMax: number) => {
    const run = orig(node, tryMax)
    if (run) runs.push({ ...run })
    return run
  }
  return runs
}

describe('file data path', () => {
  let sb: Superblock
  let pool: DmemPool

  beforeEach(() => {
    sb = makeSb()
    pool = sb.pool
    expect(pool.dpageSize).to.equal(DS)
    expect(pool.total).to.equal(TOTAL)
  })

  describe('read and write', () => {
    it('reads and rewrites across dpages that are and are not next to each other in the pool', () => {
      const a = create(sb, '/a')
      const b = create(sb, '/b')
      // Interleaved writes give each file runs of neighbouring dpages broken by the other file's.
      for (let i = 0; i < 12; i++) write(sb, i % 3 === 2 ? b : a, pattern(DS, 7 + i), (i % 3 === 2 ? i / 3 | 0 : i - (i / 3 | 0)) * DS)
      const expected = Buffer.concat(Array.from({ length: 12 }, (_, i) => i).filter(i => i % 3 !== 2).map(i => pattern(DS, 7 + i)))
      expect(readOk(sb, a, expected.length, 0).equals(expected)).to.equal(true)
      expect(readOk(sb, a, 3 * DS, DS + 100).equals(expected.subarray(DS + 100, 4 * DS + 100))).to.equal(true)
      const over = pattern(5 * DS, 99)
      expect(write(sb, a, over, 1000)).to.equal(over.length)
      expected.set(over, 1000)
      expect(readOk(sb, a, expected.length, 0).equals(expected)).to.equal(true)
      expect(readOk(sb, b, 4 * DS, 0).equals(Buffer.concat([2, 5, 8, 11].map(i => pattern(DS, 7 + i))))).to.equal(true)
    })

    it('reads back what was written and grows the size', () => {
      const f = create(sb, '/f')
      expect(write(sb, f, Buffer.from('hello world'), 0)).to.equal(11)
      expect(f.inode.size).to.equal(11)
      expect(readOk(sb, f, 100, 0).toString()).to.equal('hello world')
      expect(readOk(sb, f, 5, 6).toString()).to.equal('world')
    })

    it('writes at an offset inside existing data without disturbing the rest', () => {
      const f = create(sb, '/f')
      write(sb, f, Buffer.from('abcdefghij'), 0)
      expect(write(sb, f, Buffer.from('XYZ'), 4)).to.equal(3)
      expect(f.inode.size).to.equal(10)
      expect(readOk(sb, f, 10, 0).toString()).to.equal('abcdXYZhij')
    })

    it('writes only len bytes of the buffer', () => {
      const f = create(sb, '/f')
      expect(sb.write(f.fh, Buffer.from('abcdef'), 2, 0)).to.equal(2)
      expect(f.inode.size).to.equal(2)
      expect(readOk(sb, f, 10, 0).toString()).to.equal('ab')
    })

    it('returns 0 at or past the end of file and clips reads at the size', () => {
      const f = create(sb, '/f')
      write(sb, f, Buffer.from('abc'), 0)
      expect(sb.read(f.fh, Buffer.alloc(10), 10, 3)).to.equal(0)
      expect(sb.read(f.fh, Buffer.alloc(10), 10, 5000)).to.equal(0)
      expect(sb.read(f.fh, Buffer.alloc(10), 10, 1)).to.equal(2)
      // the length never passes the caller's buffer
      const small = Buffer.alloc(2)
      expect(sb.read(f.fh, small, 10, 0)).to.equal(2)
      expect(small.toString()).to.equal('ab')
    })

    it('handles writes spanning dpage boundaries', () => {
      const f = create(sb, '/f')
      const data = pattern(2 * DS + 100, 3)
      expect(write(sb, f, data, DS - 50)).to.equal(data.length)
      // indices 0..3 are touched: DS-50 .. 3*DS+50
      expect(f.inode.dpages!.size).to.equal(4)
      expect(blocks(sb, f)).to.equal(4 * DS / 512)
      expect(pool.free).to.equal(TOTAL - 4)
      expect(readOk(sb, f, data.length, DS - 50).equals(data)).to.equal(true)
      expect(readOk(sb, f, DS - 50, 0).equals(zeros(DS - 50))).to.equal(true)
      // a read spanning a boundary from the middle
      expect(readOk(sb, f, 200, 2 * DS - 100).equals(data.subarray(DS - 50, DS + 150))).to.equal(true)
    })

    it('reads holes as zeros and gives them no dpage', () => {
      const f = create(sb, '/f')
      expect(write(sb, f, Buffer.from('tail'), 5 * DS + 10)).to.equal(4)
      expect(f.inode.size).to.equal(5 * DS + 14)
      expect([...f.inode.dpages!.keys()]).to.deep.equal([5])
      expect(blocks(sb, f)).to.equal(DS / 512)
      expect(pool.free).to.equal(TOTAL - 1)
      const all = readOk(sb, f, 5 * DS + 14, 0)
      expect(all.length).to.equal(5 * DS + 14)
      expect(all.subarray(0, 5 * DS + 10).equals(zeros(5 * DS + 10))).to.equal(true)
      expect(all.subarray(5 * DS + 10).toString()).to.equal('tail')
    })

    it('fills the hole between two writes in a later write without touching either side', () => {
      const f = create(sb, '/f')
      write(sb, f, Buffer.from('A'), 0)
      write(sb, f, Buffer.from('C'), 3 * DS)
      expect(blocks(sb, f)).to.equal(2 * DS / 512)
      write(sb, f, Buffer.from('B'), DS + 5)
      expect(blocks(sb, f)).to.equal(3 * DS / 512)
      const all = readOk(sb, f, 3 * DS + 1, 0)
      const expected = zeros(3 * DS + 1)
      expected[0] = 0x41
      expected[DS + 5] = 0x42
      expected[3 * DS] = 0x43
      expect(all.equals(expected)).to.equal(true)
    })

    it('counts st_blocks as allocated dpages in 512-byte units', () => {
      const f = create(sb, '/f')
      expect(blocks(sb, f)).to.equal(0)
      write(sb, f, Buffer.from('x'), 0)
      expect(blocks(sb, f)).to.equal(8)
      write(sb, f, Buffer.from('x'), 10 * DS)
      expect(blocks(sb, f)).to.equal(16)
      // indices 1..3 are new, 0 was there already
      write(sb, f, pattern(3 * DS), DS)
      expect(blocks(sb, f)).to.equal(40)
      expect(sb.getattr(f.inode).size).to.equal(10 * DS + 1)
    })

    it('moves mtime and ctime on a write', () => {
      const f = create(sb, '/f')
      f.inode.mtime = 1n
      f.inode.ctime = 1n
      write(sb, f, Buffer.from('x'), 0)
      expect(f.inode.mtime > 1n).to.equal(true)
      expect(f.inode.ctime > 1n).to.equal(true)
    })

    it('moves atime on a read when it is not newer than mtime (relatime)', () => {
      const f = create(sb, '/f')
      write(sb, f, Buffer.from('x'), 0)
      f.inode.atime = 5n
      f.inode.mtime = 10n
      readOk(sb, f, 1, 0)
      expect(f.inode.atime > 10n).to.equal(true)
      f.inode.atime = 20n
      readOk(sb, f, 1, 0)
      expect(f.inode.atime).to.equal(20n)
    })

    it('shares data between handles and hard links', () => {
      const f = create(sb, '/f')
      write(sb, f, Buffer.from('shared'), 0)
      expect(sb.link('/f', '/g')).to.equal(0)
      const g = sb.lookup('/g') as Inode
      const fh = sb.open(g, O_RDWR) as number
      expect(sb.write(fh, Buffer.from('S'), 1, 0)).to.equal(1)
      expect(readOk(sb, f, 6, 0).toString()).to.equal('Shared')
    })
  })

  describe('truncate', () => {
    it('frees dpages past the new end and gives them back to the pool', () => {
      const f = create(sb, '/f')
      write(sb, f, pattern(4 * DS), 0)
      expect(pool.free).to.equal(TOTAL - 4)
      expect(sb.truncate(f.inode, DS + 10)).to.equal(0)
      expect(f.inode.size).to.equal(DS + 10)
      expect([...f.inode.dpages!.keys()].sort()).to.deep.equal([0, 1])
      expect(pool.free).to.equal(TOTAL - 2)
      expect(blocks(sb, f)).to.equal(2 * DS / 512)
      expect(readOk(sb, f, DS + 10, 0).equals(pattern(DS + 10))).to.equal(true)
      expect(sb.truncate(f.inode, 0)).to.equal(0)
      expect(pool.free).to.equal(TOTAL)
      expect(blocks(sb, f)).to.equal(0)
    })

    it('keeps a dpage that ends exactly at the new size', () => {
      const f = create(sb, '/f')
      write(sb, f, pattern(3 * DS), 0)
      expect(sb.truncate(f.inode, 2 * DS)).to.equal(0)
      expect(pool.free).to.equal(TOTAL - 2)
      expect(readOk(sb, f, 2 * DS, 0).equals(pattern(2 * DS))).to.equal(true)
    })

    it('zeroes the tail of a partial last dpage so growing again reads zeros', () => {
      const f = create(sb, '/f')
      write(sb, f, Buffer.alloc(DS, 0x41), 0)
      expect(sb.truncate(f.inode, 10)).to.equal(0)
      expect(sb.truncate(f.inode, DS)).to.equal(0)
      const all = readOk(sb, f, DS, 0)
      expect(all.subarray(0, 10).equals(Buffer.alloc(10, 0x41))).to.equal(true)
      expect(all.subarray(10).equals(zeros(DS - 10))).to.equal(true)
    })

    it('zeroes the tail so a write past the new end leaves zeros in the gap', () => {
      const f = create(sb, '/f')
      write(sb, f, Buffer.alloc(DS, 0x41), 0)
      expect(sb.truncate(f.inode, 10)).to.equal(0)
      expect(write(sb, f, Buffer.from('Z'), 100)).to.equal(1)
      const all = readOk(sb, f, 101, 0)
      expect(all.subarray(10, 100).equals(zeros(90))).to.equal(true)
      expect(all[100]).to.equal(0x5a)
    })

    it('grows a file without allocating, and the new part reads as zeros', () => {
      const f = create(sb, '/f')
      write(sb, f, Buffer.from('abc'), 0)
      expect(sb.truncate(f.inode, 3 * DS)).to.equal(0)
      expect(sb.getattr(f.inode).size).to.equal(3 * DS)
      expect(blocks(sb, f)).to.equal(DS / 512)
      expect(pool.free).to.equal(TOTAL - 1)
      const all = readOk(sb, f, 3 * DS, 0)
      expect(all.subarray(0, 3).toString()).to.equal('abc')
      expect(all.subarray(3).equals(zeros(3 * DS - 3))).to.equal(true)
    })

    it('moves mtime and ctime', () => {
      const f = create(sb, '/f')
      f.inode.mtime = 1n
      f.inode.ctime = 1n
      expect(sb.truncate(f.inode, 100)).to.equal(0)
      expect(f.inode.mtime > 1n).to.equal(true)
      expect(f.inode.ctime > 1n).to.equal(true)
    })

    it('returns EINVAL for a negative or fractional size', () => {
      const f = create(sb, '/f')
      write(sb, f, Buffer.from('abc'), 0)
      expect(sb.truncate(f.inode, -1)).to.equal(EINVAL)
      expect(sb.truncate(f.inode, 1.5)).to.equal(EINVAL)
      expect(sb.truncate(f.inode, NaN)).to.equal(EINVAL)
      expect(f.inode.size).to.equal(3)
    })

    it('returns EFBIG past limits.maxSize and accepts maxSize itself', () => {
      const f = create(sb, '/f')
      const max = sb.limits.maxSize
      expect(max).to.equal(2 ** 32 * DS)
      expect(sb.truncate(f.inode, max + 1)).to.equal(EFBIG)
      expect(f.inode.size).to.equal(0)
      expect(sb.truncate(f.inode, max)).to.equal(0)
      expect(f.inode.size).to.equal(max)
      expect(blocks(sb, f)).to.equal(0)
      expect(readOk(sb, f, 16, max - 16).equals(zeros(16))).to.equal(true)
    })

    it('returns EFBIG for a write at maxSize and cuts a write that crosses it short', () => {
      const f = create(sb, '/f')
      const max = sb.limits.maxSize
      expect(write(sb, f, Buffer.from('x'), max)).to.equal(EFBIG)
      expect(f.inode.size).to.equal(0)
      expect(blocks(sb, f)).to.equal(0)
      expect(write(sb, f, Buffer.from('0123456789'), max - 4)).to.equal(4)
      expect(f.inode.size).to.equal(max)
      expect(readOk(sb, f, 4, max - 4).toString()).to.equal('0123')
      expect([...f.inode.dpages!.keys()]).to.deep.equal([2 ** 32 - 1])
    })
  })

  describe('a full pool', () => {
    it('returns ENOSPC for a write that gets no dpage and changes nothing', () => {
      const a = create(sb, '/a')
      const data = pattern(TOTAL * DS, 9)
      expect(write(sb, a, data, 0)).to.equal(TOTAL * DS)
      expect(pool.free).to.equal(0)
      expect(sb.statfs().bfree).to.equal(0)
      const b = create(sb, '/b')
      expect(write(sb, b, Buffer.from('x'), 0)).to.equal(ENOSPC)
      expect(b.inode.size).to.equal(0)
      // extending a into a new dpage fails too, and leaves its size alone
      expect(write(sb, a, Buffer.from('x'), TOTAL * DS)).to.equal(ENOSPC)
      expect(a.inode.size).to.equal(TOTAL * DS)
      // overwriting allocated dpages needs no new one
      expect(write(sb, a, Buffer.from('over'), 100)).to.equal(4)
      data.write('over', 100)
      expect(readOk(sb, a, TOTAL * DS, 0).equals(data)).to.equal(true)
    })

    it('returns the short count for a write that gets only some dpages', () => {
      const a = create(sb, '/a')
      write(sb, a, pattern((TOTAL - 3) * DS, 5), 0)
      expect(pool.free).to.equal(3)
      const b = create(sb, '/b')
      const data = pattern(6 * DS, 2)
      // starts half way into a dpage: that one, and two more whole ones, fit
      expect(write(sb, b, data, DS / 2)).to.equal(DS / 2 + 2 * DS)
      expect(b.inode.size).to.equal(3 * DS)
      expect(pool.free).to.equal(0)
      expect(readOk(sb, b, 3 * DS, 0).equals(Buffer.concat([zeros(DS / 2), data.subarray(0, DS / 2 + 2 * DS)])))
        .to.equal(true)
      expect(readOk(sb, a, (TOTAL - 3) * DS, 0).equals(pattern((TOTAL - 3) * DS, 5))).to.equal(true)
      // a retry of the rest gets nothing
      expect(write(sb, b, data.subarray(DS / 2 + 2 * DS), 3 * DS)).to.equal(ENOSPC)
      expect(b.inode.size).to.equal(3 * DS)
    })

    it('returns every dpage to the pool once everything is unlinked', () => {
      const files: Open[] = []
      for (let i = 0; ; i++) {
        const f = create(sb, `/f${i}`)
        files.push(f)
        const n = write(sb, f, pattern(7 * DS + 123, i), i * 1000)
        if (n === ENOSPC) break
        expect(n).to.be.greaterThan(0)
      }
      expect(pool.free).to.equal(0)
      for (const [i, f] of files.entries()) {
        expect(sb.release(f.fh)).to.equal(0)
        expect(sb.unlink(`/f${i}`)).to.equal(0)
      }
      expect(pool.free).to.equal(pool.total)
      expect(sb.statfs().bfree).to.equal(TOTAL)
      expect(sb.inodeCount).to.equal(1)
      for (let d = 0; d < TOTAL; d++) expect(pool.isUsed(d)).to.equal(false)
    })
  })

  describe('allocation and the reverse map', () => {
    it('with maxAllocTry 4 allocates runs of 4 contiguous dpages for a large write', () => {
      sb = makeSb({ maxAllocTry: 4 })
      pool = sb.pool
      const runs = spyAlloc(pool)
      const f = create(sb, '/f')
      expect(write(sb, f, pattern(10 * DS), 0)).to.equal(10 * DS)
      expect(runs.map(r => r.count)).to.deep.equal([4, 4, 2])
      const table = f.inode.dpages!
      const first = table.get(0)!
      for (let i = 0; i < 10; i++) expect(table.get(i)).to.equal(first + i)
      expect(readOk(sb, f, 10 * DS, 0).equals(pattern(10 * DS))).to.equal(true)
    })

    it('with maxAllocTry 1 takes one dpage per allocation', () => {
      const runs = spyAlloc(pool)
      const f = create(sb, '/f')
      expect(write(sb, f, pattern(3 * DS), 0)).to.equal(3 * DS)
      expect(runs.map(r => r.count)).to.deep.equal([1, 1, 1])
    })

    it('never allocates beyond what the write covers, nor over dpages already there', () => {
      sb = makeSb({ maxAllocTry: 4 })
      pool = sb.pool
      const runs = spyAlloc(pool)
      const f = create(sb, '/f')
      expect(write(sb, f, pattern(DS + 2), DS - 1)).to.equal(DS + 2)
      expect(runs.map(r => r.count)).to.deep.equal([3])
      expect(pool.free).to.equal(TOTAL - 3)
      write(sb, f, Buffer.from('x'), 5 * DS)
      runs.length = 0
      // indices 3 and 4 are holes, 5 is allocated, 6 and 7 are holes
      expect(write(sb, f, pattern(5 * DS), 3 * DS)).to.equal(5 * DS)
      expect(runs.map(r => r.count)).to.deep.equal([2, 2])
      expect(f.inode.dpages!.size).to.equal(8)
      expect(pool.free).to.equal(TOTAL - 8)
    })

    it('names the inode and the file index of every dpage in the reverse map', () => {
      sb = makeSb({ maxAllocTry: 4 })
      pool = sb.pool
      const f = create(sb, '/f')
      const g = create(sb, '/g')
      write(sb, f, pattern(6 * DS), 0)
      write(sb, g, Buffer.from('g'), 17 * DS + 3)
      write(sb, f, Buffer.from('far'), 100 * DS)
      for (const file of [f, g]) {
        for (const [index, dpage] of file.inode.dpages!) {
          expect(pool.ownerOf(dpage)).to.equal(file.inode.ino)
          expect(pool.indexOf(dpage)).to.equal(index)
          expect(pool.isUsed(dpage)).to.equal(true)
        }
      }
      expect(pool.indexOf(g.inode.dpages!.get(17)!)).to.equal(17)
      expect(pool.indexOf(f.inode.dpages!.get(100)!)).to.equal(100)
      const owned = f.inode.dpages!.size + g.inode.dpages!.size
      let counted = 0
      for (let d = 0; d < pool.total; d++) if (pool.ownerOf(d) !== NO_OWNER) counted++
      expect(counted).to.equal(owned)
    })

    it('clears the reverse map of freed dpages', () => {
      const f = create(sb, '/f')
      write(sb, f, pattern(3 * DS), 0)
      const dpages = [...f.inode.dpages!.values()]
      expect(sb.truncate(f.inode, DS)).to.equal(0)
      expect(pool.ownerOf(dpages[0])).to.equal(f.inode.ino)
      expect(pool.ownerOf(dpages[1])).to.equal(NO_OWNER)
      expect(pool.ownerOf(dpages[2])).to.equal(NO_OWNER)
      expect(sb.release(f.fh)).to.equal(0)
      expect(sb.unlink('/f')).to.equal(0)
      expect(pool.ownerOf(dpages[0])).to.equal(NO_OWNER)
    })

    it('reads a reused dpage as zeros outside what was written', () => {
      const a = create(sb, '/a')
      write(sb, a, Buffer.alloc(DS, 0xaa), 0)
      const old = a.inode.dpages!.get(0)!
      expect(sb.release(a.fh)).to.equal(0)
      expect(sb.unlink('/a')).to.equal(0)
      const b = create(sb, '/b')
      expect(write(sb, b, Buffer.from('mid'), 100)).to.equal(3)
      expect(b.inode.dpages!.get(0)).to.equal(old)
      expect(sb.truncate(b.inode, DS)).to.equal(0)
      const all = readOk(sb, b, DS, 0)
      const expected = zeros(DS)
      expected.write('mid', 100)
      expect(all.equals(expected)).to.equal(true)
    })

    it('reads reused dpages of a multi-dpage run as zeros outside the write', () => {
      sb = makeSb({ maxAllocTry: 4 })
      pool = sb.pool
      const a = create(sb, '/a')
      write(sb, a, Buffer.alloc(4 * DS, 0xbb), 0)
      const old = [...a.inode.dpages!.values()]
      expect(sb.truncate(a.inode, 0)).to.equal(0)
      const b = create(sb, '/b')
      const data = pattern(2 * DS)
      expect(write(sb, b, data, DS / 2)).to.equal(2 * DS)
      expect([...b.inode.dpages!.values()]).to.deep.equal(old.slice(0, 3))
      expect(sb.truncate(b.inode, 3 * DS)).to.equal(0)
      const all = readOk(sb, b, 3 * DS, 0)
      expect(all.equals(Buffer.concat([zeros(DS / 2), data, zeros(DS / 2)]))).to.equal(true)
    })
  })

  describe('poisoned dpages', () => {
    let f: Open
    let bad: number

    beforeEach(() => {
      f = create(sb, '/f')
      expect(write(sb, f, pattern(3 * DS), 0)).to.equal(3 * DS)
      bad = f.inode.dpages!.get(1)!
      expect(pool.poison(bad)).to.equal(true)
    })

    it('returns EIO for a read of the poisoned dpage while the others read fine', () => {
      expect(read(sb, f, 10, DS)).to.equal(EIO)
      expect(read(sb, f, 10, 2 * DS - 10)).to.equal(EIO)
      expect(readOk(sb, f, DS, 0).equals(pattern(DS))).to.equal(true)
      expect(readOk(sb, f, DS, 2 * DS).equals(pattern(DS, 1, 2 * DS))).to.equal(true)
    })

    it('returns a short count for a read that starts before the poisoned dpage', () => {
      const r = readOk(sb, f, 2 * DS, 100)
      expect(r.length).to.equal(DS - 100)
      expect(r.equals(pattern(DS - 100, 1, 100))).to.equal(true)
    })

    it('returns EIO for a write into the poisoned dpage and a short count for one that reaches it', () => {
      expect(write(sb, f, Buffer.from('x'), DS + 5)).to.equal(EIO)
      expect(write(sb, f, Buffer.alloc(20, 0x7a), DS - 10)).to.equal(10)
      expect(readOk(sb, f, 10, DS - 10).equals(Buffer.alloc(10, 0x7a))).to.equal(true)
      expect(f.inode.size).to.equal(3 * DS)
    })

    it('keeps the poisoned dpage out of the pool when truncate drops it', () => {
      const free = pool.free
      expect(sb.truncate(f.inode, DS)).to.equal(0)
      // index 2 comes back, index 1 (poisoned) does not
      expect(pool.free).to.equal(free + 1)
      expect(pool.isUsed(bad)).to.equal(true)
      expect(pool.ownerOf(bad)).to.equal(NO_OWNER)
      expect(readOk(sb, f, DS, 0).equals(pattern(DS))).to.equal(true)
    })

    it('truncates into a poisoned last dpage without touching it', () => {
      expect(sb.truncate(f.inode, DS + 10)).to.equal(0)
      expect(f.inode.size).to.equal(DS + 10)
      expect(f.inode.dpages!.get(1)).to.equal(bad)
      expect(read(sb, f, 10, DS)).to.equal(EIO)
    })

    it('keeps the poisoned dpage out of the pool when the file is unlinked', () => {
      expect(sb.release(f.fh)).to.equal(0)
      expect(sb.unlink('/f')).to.equal(0)
      expect(pool.free).to.equal(TOTAL - 1)
      expect(pool.isUsed(bad)).to.equal(true)
      expect(pool.ownerOf(bad)).to.equal(NO_OWNER)
      // and no later write gets it
      const g = create(sb, '/g')
      expect(write(sb, g, pattern((TOTAL - 1) * DS), 0)).to.equal((TOTAL - 1) * DS)
      expect([...g.inode.dpages!.values()]).to.not.include(bad)
      expect(write(sb, g, Buffer.from('x'), (TOTAL - 1) * DS)).to.equal(ENOSPC)
    })

    it('keeps a file\'s poisoned dpage until the last handle of the unlinked file goes', () => {
      expect(sb.unlink('/f')).to.equal(0)
      expect(pool.free).to.equal(TOTAL - 3)
      expect(pool.ownerOf(bad)).to.equal(f.inode.ino)
      expect(sb.release(f.fh)).to.equal(0)
      expect(pool.free).to.equal(TOTAL - 1)
    })
  })
})
