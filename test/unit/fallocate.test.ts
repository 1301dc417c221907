// fallocate(2) in the core, as tmpfs answers it: mode 0 and KEEP_SIZE take zeroed dpages (all or none),
// PUNCH_HOLE|KEEP_SIZE frees whole dpages and zeroes partial ones; other modes EOPNOTSUPP. Then a random
// mix of writes, truncates, allocations and punched holes checked byte for byte against a model.

import { expect } from 'chai'
import { randomBytes } from 'crypto'
import { EFBIG, EINVAL, ENOSPC, EOPNOTSUPP } from '../../src/fs/errno'
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE } from '../../src/fs/file'
import { Superblock } from '../../src/fs/super'
import { MiB } from '../../src/pool/layout'
import { lookup, makeSb, O_RDWR } from './mce-fixtures'

const KiB = 1024
const PUNCH = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE

function open (sb: Superblock, path: string): number {
  return sb.create(path, 0o644, O_RDWR) as number
}

function readAll (sb: Superblock, fh: number, size: number): Buffer {
  const buf = Buffer.alloc(size)
  const n = sb.read(fh, buf, size, 0)
  expect(n).to.equal(size)
  return buf
}

function blocks (sb: Superblock, path: string): number {
  return sb.getattr(lookup(sb, path)).blocks
}

describe('fallocate', () => {
  let sb: Superblock
  beforeEach(() => { sb = makeSb({ size: MiB, nodes: 1, shift: 12 }) })

  it('mode 0 takes zeroed dpages for the range and extends the size; data before it stays', () => {
    const fh = open(sb, '/f')
    const data = randomBytes(5000)
    sb.write(fh, data, data.length, 0)
    const free = sb.pool.free
    expect(sb.fallocate(fh, 0, 8 * KiB, 20 * KiB)).to.equal(0)
    expect(sb.getattr(lookup(sb, '/f')).size).to.equal(28 * KiB)
    expect(sb.pool.free).to.equal(free - 5) // dpages 2..6; 0 and 1 held data already
    const all = readAll(sb, fh, 28 * KiB)
    expect(all.subarray(0, 5000).equals(data)).to.equal(true)
    expect(all.subarray(5000).every(b => b === 0)).to.equal(true)
  })

  it('KEEP_SIZE takes dpages past the end without growing the file; they read as zeros once it grows', () => {
    const fh = open(sb, '/f')
    sb.write(fh, Buffer.alloc(100, 1), 100, 0)
    expect(sb.fallocate(fh, FALLOC_FL_KEEP_SIZE, 0, 64 * KiB)).to.equal(0)
    expect(sb.getattr(lookup(sb, '/f')).size).to.equal(100)
    expect(blocks(sb, '/f')).to.equal(64 * KiB / 512)
    expect(sb.truncate(lookup(sb, '/f'), 64 * KiB)).to.equal(0)
    expect(readAll(sb, fh, 64 * KiB).subarray(100).every(b => b === 0)).to.equal(true)
  })

  it('a range the pool cannot hold is ENOSPC, and nothing is taken', () => {
    const fh = open(sb, '/f')
    sb.write(fh, Buffer.alloc(4096, 7), 4096, 0)
    const free = sb.pool.free
    expect(sb.fallocate(fh, 0, 0, 2 * MiB)).to.equal(ENOSPC)
    expect(sb.pool.free).to.equal(free)
    expect(sb.getattr(lookup(sb, '/f')).size).to.equal(4096)
    expect(lookup(sb, '/f').dpages!.size).to.equal(1)
  })

  it('PUNCH_HOLE|KEEP_SIZE frees whole dpages and zeroes the partial ones at the ends', () => {
    const fh = open(sb, '/f')
    const data = randomBytes(40 * KiB)
    sb.write(fh, data, data.length, 0)
    const free = sb.pool.free
    expect(sb.fallocate(fh, PUNCH, 6 * KiB, 20 * KiB)).to.equal(0) // [6K, 26K): dpages 2..5 whole
    expect(sb.pool.free).to.equal(free + 4)
    expect(sb.getattr(lookup(sb, '/f')).size).to.equal(40 * KiB)
    const want = Buffer.from(data)
    want.fill(0, 6 * KiB, 26 * KiB)
    expect(readAll(sb, fh, 40 * KiB).equals(want)).to.equal(true)
  })

  it('refuses other modes (EOPNOTSUPP) and bad ranges (EINVAL, EFBIG)', () => {
    const fh = open(sb, '/f')
    for (const mode of [FALLOC_FL_PUNCH_HOLE, 0x08, 0x10, 0x20, 0x40, FALLOC_FL_KEEP_SIZE | 0x10]) {
      expect(sb.fallocate(fh, mode, 0, 4096), `mode ${mode}`).to.equal(EOPNOTSUPP)
    }
    expect(sb.fallocate(fh, 0, -1, 4096)).to.equal(EINVAL)
    expect(sb.fallocate(fh, 0, 0, 0)).to.equal(EINVAL)
    expect(sb.fallocate(fh, 0, 0, Number.MAX_SAFE_INTEGER)).to.equal(EFBIG)
    expect(sb.pool.free).to.equal(sb.pool.total)
  })

  it('holds up under 100,000 random writes, truncates, allocations and punched holes (against a model)', function () {
    this.timeout(30000) // a second or two alone; more on a busy machine
    const big = makeSb({ size: 4 * MiB, nodes: 2, shift: 12, maxAllocTry: 4 })
    const fh = open(big, '/r')
    const SPAN = 256 * KiB
    const MAX_LEN = 3 * 4096
    // The model: the file's bytes in a fixed buffer, zero past `size` (as the file must read once grown).
    const model = Buffer.alloc(SPAN + MAX_LEN)
    let size = 0
    let seed = 12345
    const rand = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n }
    for (let op = 0; op < 100000; op++) {
      const off = rand(SPAN)
      const len = 1 + rand(MAX_LEN)
      switch (rand(5)) {
        case 0: {
          const buf = Buffer.alloc(len, op & 0xff)
          expect(big.write(fh, buf, len, off)).to.equal(len)
          buf.copy(model, off)
          size = Math.max(size, off + len)
          break
        }
        case 1:
          expect(big.truncate(lookup(big, '/r'), off)).to.equal(0)
          if (off < size) model.fill(0, off, size)
          size = off
          break
        case 2: {
          const keep = rand(2) === 1
          expect(big.fallocate(fh, keep ? FALLOC_FL_KEEP_SIZE : 0, off, len)).to.equal(0)
          if (!keep) size = Math.max(size, off + len)
          break
        }
        case 3:
          expect(big.fallocate(fh, PUNCH, off, len)).to.equal(0)
          model.fill(0, Math.min(off, size), Math.min(off + len, size))
          break
        default:
          expect(big.getattr(lookup(big, '/r')).size).to.equal(size)
          if (op % 997 === 0) expect(readAll(big, fh, size).equals(model.subarray(0, size)), `op ${op}`).to.equal(true)
      }
    }
    expect(readAll(big, fh, size).equals(model.subarray(0, size))).to.equal(true)
    big.release(fh)
    expect(big.unlink('/r')).to.equal(0)
    expect(big.pool.free).to.equal(big.pool.total)
  })
})
