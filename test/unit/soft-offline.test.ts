// Soft offline and the poisoned list, without FUSE: a free dpage retires at once, a used one moves its
// data to a fresh dpage first; offline is not poisoned; `.dmem/poisoned` remembers what each poisoned
// dpage held.

import { expect } from 'chai'
import { ControlDir, renderStat, WriteResult } from '../../src/control/control'
import { EBUSY, EINVAL } from '../../src/fs/errno'
import { Superblock } from '../../src/fs/super'
import { parsePoisoned, poisonedJson } from '../../src/mce/poison-book'
import { MiB } from '../../src/pool/layout'
import { randomBytes } from 'crypto'
import { createFile, fakeEnv, lookup, makeSb, O_RDWR, pfnOfIndex as pfnOfInode } from './mce-fixtures'

const BASE_PFN = 0x100000

function statValue (sb: Superblock, name: string): number {
  const m = new RegExp(`^${name.replace('.', '\\.')}: (\\d+)$`, 'm').exec(renderStat(sb.pool))
  return Number(m![1])
}

function pfnOfIndex (sb: Superblock, path: string, index: number): number {
  return pfnOfInode(sb, lookup(sb, path), index)
}

/** A file of random bytes, so that a byte in the wrong place shows. */
function createRandom (sb: Superblock, path: string, bytes: number): Buffer {
  const data = randomBytes(bytes)
  const fh = sb.create(path, 0o644, O_RDWR) as number
  expect(sb.write(fh, data, bytes, 0)).to.equal(bytes)
  sb.release(fh)
  return data
}

/** soft_offline, ce and unpoison answer at once; only mce may wait (for revocation and delivery). */
function sync (r: WriteResult | Promise<WriteResult>): WriteResult {
  if (r instanceof Promise) throw new Error('expected an answer at once')
  return r
}

function readFile (sb: Superblock, path: string, len: number): Buffer {
  const inode = lookup(sb, path)
  const fh = sb.open(inode, 0) as number
  const buf = Buffer.alloc(len)
  expect(sb.read(fh, buf, len, 0)).to.equal(len)
  sb.release(fh)
  return buf
}

describe('soft offline', () => {
  let sb: Superblock
  let dir: ControlDir
  const write = (text: string) => sync(dir.files.get('soft_offline')!.write!(text))

  beforeEach(() => {
    sb = makeSb({ size: 4 * MiB, nodes: 2, shift: 12 })
    dir = new ControlDir(sb, fakeEnv())
  })

  it('a free dpage leaves service, counted offline and not poisoned, and is never handed out', () => {
    const free = statValue(sb, 'free_dpages')
    const r = write('0x100005\n')
    expect(r.errno).to.equal(0)
    expect(r.reply).to.match(/state free/)
    expect(statValue(sb, 'free_dpages')).to.equal(free - 1)
    expect(statValue(sb, 'offline_dpages')).to.equal(1)
    expect(statValue(sb, 'node0.offline_dpages')).to.equal(1)
    expect(statValue(sb, 'poisoned_dpages')).to.equal(0)
    createFile(sb, '/big', 32 * 4096)
    for (let i = 0; i < 32; i++) expect(pfnOfIndex(sb, '/big', i)).to.not.equal(BASE_PFN + 5)
  })

  it('a used dpage: the data moves to a fresh dpage of the same node, the file keeps every byte', () => {
    const data = createRandom(sb, '/f', 3 * 4096)
    const victim = pfnOfIndex(sb, '/f', 1)
    const r = write(`0x${victim.toString(16)}`)
    expect(r.errno).to.equal(0)
    expect(r.reply).to.match(/state used/).and.match(/new pfn 0x[0-9a-f]+ node 0/)
    const moved = pfnOfIndex(sb, '/f', 1)
    expect(moved).to.not.equal(victim)
    expect(readFile(sb, '/f', 3 * 4096).equals(data)).to.equal(true)
    // The reverse map follows: the new PFN traces back to the file, the old one to nobody.
    const pool = sb.pool
    expect(pool.ownerOf(pool.dpageOfPfn(moved))).to.equal(lookup(sb, '/f').ino)
    expect(pool.ownerOf(pool.dpageOfPfn(victim))).to.equal(0)
    expect(pool.isUsed(pool.dpageOfPfn(victim))).to.equal(true) // out of service
    expect(statValue(sb, 'offline_dpages')).to.equal(1)
    expect(statValue(sb, 'poisoned_dpages')).to.equal(0)
    // Deleting the file does not bring the retired dpage back.
    const free = statValue(sb, 'free_dpages')
    expect(sb.unlink('/f')).to.equal(0)
    expect(statValue(sb, 'free_dpages')).to.equal(free + 3)
  })

  it('a poisoned dpage is EINVAL (already poisoned); an offline one EINVAL (already offline)', async () => {
    await dir.files.get('mce')!.write!('0x100001')
    expect(write('0x100001').errno).to.equal(EINVAL)
    expect(dir.files.get('soft_offline')!.render()).to.match(/already poisoned/)
    expect(write('0x100002').errno).to.equal(0)
    expect(write('0x100002').errno).to.equal(EINVAL)
    expect(dir.files.get('soft_offline')!.render()).to.match(/already offline/)
  })

  it('with no free dpage to move to: EBUSY, and nothing changes', () => {
    const small = makeSb({ size: 64 * 1024, nodes: 1, shift: 12 })
    const d = new ControlDir(small, fakeEnv())
    const data = createRandom(small, '/full', 16 * 4096)
    const victim = pfnOfIndex(small, '/full', 3)
    expect(sync(d.files.get('soft_offline')!.write!(`${victim}`)).errno).to.equal(EBUSY)
    expect(pfnOfIndex(small, '/full', 3)).to.equal(victim)
    expect(small.pool.offline).to.equal(0)
    expect(readFile(small, '/full', 16 * 4096).equals(data)).to.equal(true)
  })

  it('refuses what is not a dmem PFN with EINVAL', () => {
    expect(write('0x10').errno).to.equal(EINVAL)
    expect(write('zz').errno).to.equal(EINVAL)
    expect(sb.pool.offline).to.equal(0)
  })

  it('a later memory failure on an offline dpage counts it poisoned instead', async () => {
    write('0x100003')
    await dir.files.get('mce')!.write!('0x100003')
    expect([sb.pool.offline, sb.pool.poisoned]).to.deep.equal([0, 1])
  })
})

describe('.dmem/soft_offline json and .dmem/offline', () => {
  it('the word json gives the reply as JSON; other words are refused; offline lists the retired dpages', () => {
    const sb = makeSb({ size: 4 * MiB, nodes: 1, shift: 12 })
    const dir = new ControlDir(sb, fakeEnv())
    const file = dir.files.get('soft_offline')!
    const write = (text: string) => sync(file.write!(text))
    const r = write('0x100300 json\n')
    expect(r.errno).to.equal(0)
    expect(JSON.parse(r.reply)).to.include({ pfn: '0x100300', state: 'free', errno: 0 })
    expect(write('0x100301 jsonx\n').errno).to.equal(EINVAL)
    expect(write('json\n').errno).to.equal(EINVAL)
    const again = write('0x100300 json')
    expect([again.errno, JSON.parse(again.reply).state]).to.deep.equal([EINVAL, 'already-offline'])
    expect(write('0x100302').reply).to.match(/^pfn 0x100302 .* state free\n/)
    expect(dir.files.get('offline')!.render()).to.equal('# dpage node\n0x100300 0\n0x100302 0\n')
  })
})

describe('.dmem/poisoned', () => {
  it('lists each poisoned dpage with its state, owner, offset and path at the time, and its flags', async () => {
    const sb = makeSb({ size: 4 * MiB, nodes: 1, shift: 12 })
    const dir = new ControlDir(sb, fakeEnv())
    createFile(sb, '/a file', 2 * 4096)
    const used = pfnOfIndex(sb, '/a file', 1)
    await dir.files.get('mce')!.write!(`0x${used.toString(16)} must_kill`)
    await dir.files.get('mce')!.write!('0x100300')
    const lines = dir.files.get('poisoned')!.render().trim().split('\n')
    expect(lines[0]).to.equal('# pfn dpage node state ino offset time flags path')
    const ino = lookup(sb, '/a file').ino
    expect(lines[1]).to.match(new RegExp(`^0x${used.toString(16)} 0x${used.toString(16)} 0 used ${ino} 4096 \\d{4}-\\d\\d-\\d\\dT[0-9:.]+Z 0x4 /a\\\\040file$`))
    expect(lines[2]).to.match(/^0x100300 0x100300 0 free - - \S+ 0x0 -$/)
    expect(lines).to.have.length(3)
    // Unpoisoned: gone from the list.
    expect(sync(dir.files.get('unpoison')!.write!('0x100300')).errno).to.equal(0)
    expect(dir.files.get('poisoned')!.render().trim().split('\n')).to.have.length(2)
  })

  it('parses back into what the pool book holds: the same JSON, names with any bytes', async () => {
    const sb = makeSb({ size: 4 * MiB, nodes: 1, shift: 12 })
    sb.pool.poison(9) // kept
    const dir = new ControlDir(sb, fakeEnv())
    const name = '/a\nb c\\\xff'
    createFile(sb, name, 4096)
    // Awaited: a write to mce may finish later (it may deliver signals) and the book is filled by then.
    await dir.files.get('mce')!.write!(`0x${pfnOfIndex(sb, name, 0).toString(16)} action_required must_kill`)
    await dir.files.get('mce')!.write!('0x100300')
    const book = dir.poisonBook.list()
    const parsed = parsePoisoned(dir.files.get('poisoned')!.render())
    expect(parsed).to.have.length(3)
    expect(poisonedJson(parsed!)).to.deep.equal(poisonedJson(book))
    expect(parsed!.map(p => p.path)).to.deep.equal(book.map(p => p.path))
    expect(parsePoisoned('0x1 0x1 0 gone - - - 0x0 -\n')).to.equal(null)
  })

  it('a dpage poisoned before this mount (poison_file) is listed as kept', () => {
    const sb = makeSb({ size: 4 * MiB, nodes: 1, shift: 12 })
    sb.pool.poison(7)
    const dir = new ControlDir(sb, fakeEnv())
    expect(dir.files.get('poisoned')!.render().trim().split('\n')[1]).to.equal('0x100007 0x100007 0 kept - - - 0x0 -')
  })
})

describe('corrected errors: .dmem/ce and .dmem/ce_counts', () => {
  it('counts per dpage; without a threshold nothing is offlined', () => {
    const sb = makeSb({ size: 4 * MiB, nodes: 1, shift: 12 })
    const dir = new ControlDir(sb, fakeEnv())
    const ce = (t: string) => sync(dir.files.get('ce')!.write!(t))
    for (let i = 0; i < 5; i++) expect(ce('0x100004').errno).to.equal(0)
    expect(ce('0x100009').reply).to.match(/count 1 \(no threshold/)
    expect(dir.files.get('ce_counts')!.render()).to.equal('# dpage node count\n0x100004 0 5\n0x100009 0 1\n')
    expect(sb.pool.offline).to.equal(0)
    expect(ce('0x10').errno).to.equal(EINVAL)
  })

  it('at ce_threshold the dpage is soft-offlined, its data kept, and the reply says so', () => {
    const sb = makeSb({ size: 4 * MiB, nodes: 1, shift: 12 })
    const dir = new ControlDir(sb, fakeEnv(), { earlyKill: 'all', onPoisonChange: () => {}, ceThreshold: 3 })
    const data = createRandom(sb, '/f', 2 * 4096)
    const pfn = '0x' + pfnOfIndex(sb, '/f', 1).toString(16)
    const ce = () => sync(dir.files.get('ce')!.write!(pfn))
    expect(ce().reply).to.match(/count 1 threshold 3\n$/)
    expect(ce().reply).to.not.match(/soft offline/)
    const third = ce()
    expect(third.reply).to.match(/count 3 threshold 3\nthreshold reached: soft offline\n/).and.match(/state used/)
    expect(sb.pool.offline).to.equal(1)
    expect('0x' + pfnOfIndex(sb, '/f', 1).toString(16)).to.not.equal(pfn)
    expect(readFile(sb, '/f', 2 * 4096).equals(data)).to.equal(true)
    // A fourth error on the retired dpage is counted, and offlines nothing more.
    expect(ce().reply).to.match(/count 4/).and.not.match(/soft offline/)
    expect(sb.pool.offline).to.equal(1)
  })
})
