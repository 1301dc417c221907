// libfuse's hide-on-unlink against a user's rename to the same kind of name, through the FUSE adapter
// (driven directly, no kernel): only a rename whose destination's getattr answered ENOENT within the same
// request (same unique) is the hide.

import { expect } from 'chai'
import Fuse = require('fuse-native')
import { ControlDir } from '../../src/control/control'
import { ENOENT } from '../../src/fs/errno'
import { Superblock } from '../../src/fs/super'
import { FuseAdapter } from '../../src/fuse/operations'
import { MiB } from '../../src/pool/layout'
import { createFile, createOpen, fakeEnv, makeSb } from './mce-fixtures'

const HIDDEN = '/.fuse_hidden0000000200000001'

describe("libfuse's hide against a user's rename (the adapter)", () => {
  let sb: Superblock
  let ctx: Fuse.FuseContext | null
  let ops: Fuse.FuseOperations

  beforeEach(() => {
    sb = makeSb({ size: MiB, nodes: 1, shift: 12 })
    ctx = null
    ops = new FuseAdapter(sb, new ControlDir(sb, fakeEnv()), () => {}, () => ctx).operations()
  })

  function request (unique: number): void {
    ctx = { uid: 0, gid: 0, pid: 1234, umask: 0o22, unique }
  }

  function getattr (path: string): number {
    let got = -1
    ops.getattr!(path, err => { got = err })
    return got
  }

  function rename (src: string, dest: string): number {
    let got = -1
    ops.rename!(src, dest, err => { got = err })
    return got
  }

  function names (): string[] {
    let got: string[] = []
    ops.readdir!('/', (_err, list) => { got = list! })
    return got
  }

  it('getattr ENOENT then rename to that name in one request hides the file: no name, data kept', () => {
    const fh = createOpen(sb, '/doc', 4096) // libfuse hides only open files
    const free = sb.pool.free
    request(41)
    expect(getattr(HIDDEN)).to.equal(ENOENT)
    expect(rename('/doc', HIDDEN)).to.equal(0)
    expect(names()).to.not.include(HIDDEN.slice(1))
    expect(names()).to.not.include('doc')
    expect(sb.pool.free).to.equal(free) // the data lives until the last release
    expect(getattr(HIDDEN)).to.equal(0) // libfuse still reaches it by that name
    // At the last release libfuse unlinks the hidden name: then the dpage goes back.
    expect(sb.release(fh)).to.equal(0)
    let unlinked = -1
    ops.unlink!(HIDDEN, err => { unlinked = err })
    expect(unlinked).to.equal(0)
    expect(sb.pool.free).to.equal(free + 1)
    expect(getattr(HIDDEN)).to.equal(ENOENT)
  })

  it("a user's rename (a request of its own) to such a name is a plain rename", () => {
    createFile(sb, '/doc', 4096)
    request(41)
    expect(getattr(HIDDEN)).to.equal(ENOENT) // the kernel's LOOKUP of the destination
    request(42)
    expect(rename('/doc', HIDDEN)).to.equal(0)
    expect(names()).to.include(HIDDEN.slice(1))
  })

  it('the getattr must be of exactly the destination', () => {
    createFile(sb, '/doc', 4096)
    request(41)
    expect(getattr('/.fuse_hidden0000000200000002')).to.equal(ENOENT)
    expect(rename('/doc', HIDDEN)).to.equal(0)
    expect(names()).to.include(HIDDEN.slice(1))
  })

  it('without the request number (an older binding) every rename is a plain rename', () => {
    createFile(sb, '/doc', 4096)
    ctx = { uid: 0, gid: 0, pid: 1234, umask: 0o22 }
    expect(getattr(HIDDEN)).to.equal(ENOENT)
    expect(rename('/doc', HIDDEN)).to.equal(0)
    expect(names()).to.include(HIDDEN.slice(1))
    ctx = null
    expect(rename(HIDDEN, '/.fuse_hidden0000000200000003')).to.equal(0)
    expect(names()).to.include('.fuse_hidden0000000200000003')
  })
})
