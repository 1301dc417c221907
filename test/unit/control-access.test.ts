// Who may use the control files, checked by the adapter on every request whatever the mount's uid=, mode=
// and allow_other; what a stat of a control file costs; and how refused writes are logged.

import { expect } from 'chai'
import Fuse = require('fuse-native')
import { ControlDir } from '../../src/control/control'
import { RateLimit } from '../../src/control/ratelimit'
import { EACCES, EINVAL } from '../../src/fs/errno'
import { FuseAdapter } from '../../src/fuse/operations'
import { MiB } from '../../src/pool/layout'
import { createFile, fakeEnv, makeSb } from './mce-fixtures'

const O_RDONLY = 0
const O_WRONLY = 1
const ROOT: Fuse.FuseContext = { uid: 0, gid: 0, pid: 100, umask: 0o22 }
const USER: Fuse.FuseContext = { uid: 1000, gid: 1000, pid: 200, umask: 0o22 }

function setup (rootUid = 0) {
  const sb = makeSb({ size: MiB, nodes: 1, shift: 12 })
  if (rootUid) sb.root.uid = rootUid
  const env = fakeEnv()
  const control = new ControlDir(sb, env)
  let caller: Fuse.FuseContext = ROOT
  const ops = new FuseAdapter(sb, control, () => {}, () => caller).operations()
  const as = (ctx: Fuse.FuseContext) => { caller = ctx }
  const open = (path: string, flags: number): number => {
    let result = 0
    ops.open!(path, flags, (err, fh) => { result = err || fh! })
    return result
  }
  // A write to mce answers once revocation and delivery are done: wait for the callback.
  const write = (fh: number, text: string): Promise<number> => new Promise(resolve => {
    const buf = Buffer.from(text)
    ops.write!('', fh, buf, buf.length, 0, n => resolve(n))
  })
  const read = (fh: number): number => {
    let result = 0
    ops.read!('', fh, Buffer.alloc(4096), 4096, 0, n => { result = n })
    return result
  }
  const getattr = (path: string): Fuse.FuseStat => {
    let st: Fuse.FuseStat | undefined
    ops.getattr!(path, (err, s) => { expect(err).to.equal(0); st = s })
    return st!
  }
  return { sb, env, control, ops, as, open, write, read, getattr }
}

describe('control files: root only, per request', () => {
  it('the injection and PFN files are root\'s, even on a mount owned by another user', () => {
    const t = setup(1000)
    t.as(USER)
    for (const name of ['mce', 'unpoison', 'tracing_on', 'trace']) {
      expect(t.open(`/.dmem/${name}`, O_WRONLY), name).to.equal(EACCES)
      expect(t.open(`/.dmem/${name}`, O_RDONLY), name).to.equal(EACCES)
    }
    for (const name of ['pfns', 'trace_pipe']) expect(t.open(`/.dmem/${name}`, O_RDONLY), name).to.equal(EACCES)
    expect(t.sb.pool.poisoned).to.equal(0)
  })

  it('stat and map stay readable by every user; writing map is root\'s', () => {
    const t = setup(1000)
    t.as(USER)
    expect(t.open('/.dmem/stat', O_RDONLY)).to.be.above(0)
    expect(t.open('/.dmem/map', O_RDONLY)).to.be.above(0)
    expect(t.open('/.dmem/map', O_WRONLY)).to.equal(EACCES)
  })

  it('a descriptor root opened is refused to another caller on each write and read', async () => {
    const t = setup()
    createFile(t.sb, '/f', 4096)
    const mce = t.open('/.dmem/mce', O_WRONLY)
    const pfns = t.open('/.dmem/pfns', O_RDONLY)
    t.as(USER)
    expect(await t.write(mce, '0x100000\n')).to.equal(EACCES)
    expect(t.read(pfns)).to.equal(EACCES)
    expect(t.sb.pool.poisoned).to.equal(0)
    t.as(ROOT)
    expect(await t.write(mce, '0x100000\n')).to.equal('0x100000\n'.length)
    expect(t.sb.pool.poisoned).to.equal(1)
  })

  it('control files belong to root, whatever the root directory\'s owner', () => {
    const t = setup(1000)
    for (const path of ['/.dmem', '/.dmem/mce', '/.dmem/stat', '/.dmem/pfns']) {
      const st = t.getattr(path)
      expect([st.uid, st.gid], path).to.deep.equal([0, 0])
    }
    expect(t.getattr('/').uid).to.equal(1000)
  })

  it('read-only files cannot be opened for writing, even by root; a stray write is EINVAL', () => {
    const t = setup()
    for (const name of ['stat', 'pfns', 'trace_pipe']) expect(t.open(`/.dmem/${name}`, O_WRONLY), name).to.equal(EACCES)
  })
})

describe('control files: a stat costs O(1)', () => {
  it('getattr renders nothing and reports size 0 (reads are direct_io)', () => {
    const t = setup()
    for (let i = 0; i < 100; i++) createFile(t.sb, `/f${i}`, 4096)
    const pfns = t.control.files.get('pfns')!
    let renders = 0
    const render = pfns.render
    pfns.render = () => { renders++; return render() }
    expect(t.getattr('/.dmem/pfns').size).to.equal(0)
    expect(t.getattr('/.dmem/stat').size).to.equal(0)
    expect(renders).to.equal(0)
    expect(t.read(t.open('/.dmem/pfns', O_RDONLY))).to.be.above(100 * 10)
    expect(renders).to.equal(1)
  })
})

describe('refused control writes: rate-limited log', () => {
  it('logs a burst of 10 per 5 s, then says how many it suppressed', () => {
    const lines: string[] = []
    let now = 0
    const rl = new RateLimit(l => lines.push(l), () => now)
    for (let i = 0; i < 25; i++) rl.print(`line ${i}`)
    expect(lines).to.deep.equal(Array.from({ length: 10 }, (_, i) => `line ${i}`))
    now = 5000
    rl.print('later')
    expect(lines.slice(10)).to.deep.equal(['dmemfs: 15 callbacks suppressed', 'later'])
  })

  it('a storm of bad writes to .dmem/mce logs a handful of lines, and each is still refused', async () => {
    const t = setup()
    for (let i = 0; i < 1000; i++) expect((await t.control.files.get('mce')!.write!('bogus')).errno).to.equal(EINVAL)
    expect(t.env.lines.length).to.be.at.most(10)
  })
})
