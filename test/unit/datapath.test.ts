// The rules src/fs/datapath.ts states for the native mirror, checked against a model of the native side:
// the mirror only ever serves a dpage the file owns and that is not poisoned; it lets go of a dpage before
// TypeScript frees, moves or poisons it; it knows each file's size; and it serves only open regular-file
// handles. A random run of writes, truncates, memory failures, soft offline and unlinks checks each step.

import { expect } from 'chai'
import { DataPath, DataPathBinding } from '../../src/fs/datapath'
import { ENOSPC, isErrno } from '../../src/fs/errno'
import { Inode } from '../../src/fs/inode'
import { nowNs, UTIME_OMIT } from '../../src/fs/clock'
import { Superblock } from '../../src/fs/super'
import { layoutPool } from '../../src/pool/layout'
import { DmemPool } from '../../src/pool/pool'
import { locatePfn, memoryFailure } from '../../src/mce/memory-failure'
import { softOffline } from '../../src/mce/soft-offline'
import { fakeEnv, rng } from './mce-fixtures'

const DS = 4096
const O_RDWR = 2
const O_APPEND = 0o2000

interface MirrorFile { size: number, map: Map<number, number> }

/** The native side as TypeScript drives it, checking at each call that the dpages it lets go of are still
 *  the file's (so nothing was freed or moved under a copy). */
class ModelBinding implements DataPathBinding {
  files = new Map<number, MirrorFile>()
  handles = new Map<number, { ino: number, append: boolean }>()
  enabled = false
  constructor (readonly pool: () => DmemPool) {}
  attach (): boolean { return true }
  setup (): void {}
  addRegion (): void {}
  setEnabled (on: boolean): void { this.enabled = on }
  fileNew (ino: number): void { this.files.set(ino, { size: 0, map: new Map() }) }
  fileFree (ino: number): void {
    for (const [index, dpage] of this.files.get(ino)!.map) this.stillOwned(ino, index, dpage)
    expect([...this.handles.values()].some(h => h.ino === ino), 'handles left on a freed file').to.equal(false)
    this.files.delete(ino)
  }
  map (ino: number, index: number, first: number, count: number): void {
    for (let i = 0; i < count; i++) {
      this.stillOwned(ino, index + i, first + i)
      expect(this.pool().isPoisoned(first + i), 'maps a poisoned dpage').to.equal(false)
      const before = this.files.get(ino)!.map.get(index + i)
      expect(before === undefined || before === first + i, 'moves an index without letting go of its dpage first').to.equal(true)
      this.files.get(ino)!.map.set(index + i, first + i)
    }
  }
  unmap (ino: number, index: number): void {
    const f = this.files.get(ino)!
    const dpage = f.map.get(index)
    if (dpage !== undefined) this.stillOwned(ino, index, dpage)
    f.map.delete(index)
  }
  resize (ino: number, size: number, keep: number): void {
    const f = this.files.get(ino)!
    f.size = size
    if (keep < 0) return
    for (const [index, dpage] of f.map) {
      if (index < keep) continue
      this.stillOwned(ino, index, dpage)
      f.map.delete(index)
    }
  }
  open (fh: number, ino: number, append: boolean): void { this.handles.set(fh, { ino, append }) }
  close (fh: number): void { this.handles.delete(fh) }
  stats (): number[] { return [0, 0, 0, 0, 0, 0] }
  xattrPrefix (): void {}

  private stillOwned (ino: number, index: number, dpage: number): void {
    expect(this.pool().ownerOf(dpage), `dpage ${dpage} of ino ${ino} index ${index} changed owner under the mirror`).to.equal(ino)
    expect(this.pool().indexOf(dpage)).to.equal(index)
  }
}

function setup (): { sb: Superblock, model: ModelBinding, dp: DataPath } {
  const layout = layoutPool({ size: 1 << 20, addr: null, align: 4096 }, 1, 12)
  if (!layout.ok) throw new Error(layout.error)
  const pool = new DmemPool(layout.value)
  const model = new ModelBinding(() => pool)
  const dp = new DataPath(model, DS)
  dp.setWanted(true)
  const sb = new Superblock(pool, { rootMode: 0o755, rootUid: 0, rootGid: 0, nrInodes: 0, maxAllocTry: 4, datapath: dp })
  return { sb, model, dp }
}

/** Every mirrored index is the file's current, unpoisoned dpage, and the mirror knows the size. */
function checkMirror (sb: Superblock, model: ModelBinding): void {
  for (const inode of sb.allInodes()) {
    if (!inode.isReg()) continue
    const f = model.files.get(inode.ino)!
    expect(f.size, `size of ino ${inode.ino}`).to.equal(inode.size)
    for (const [index, dpage] of f.map) {
      expect(inode.dpages!.get(index)).to.equal(dpage)
      expect(sb.pool.isPoisoned(dpage)).to.equal(false)
    }
  }
}

describe('native data path mirror (src/fs/datapath.ts)', () => {
  it('mirrors a written file once its bytes are in place, and its size', () => {
    const { sb, model } = setup()
    const fh = sb.create('/f', 0o644, O_RDWR) as number
    const ino = sb.handle(fh)!.inode.ino
    expect(sb.write(fh, Buffer.alloc(3 * DS + 100, 7), 3 * DS + 100, 0)).to.equal(3 * DS + 100)
    const f = model.files.get(ino)!
    expect([...f.map.keys()]).to.have.members([0, 1, 2, 3])
    expect(f.size).to.equal(3 * DS + 100)
    expect(model.handles.get(fh)).to.deep.equal({ ino, append: false })
    checkMirror(sb, model)
  })

  it('serves O_APPEND handles for reads only, and forgets handles at release and files at eviction', () => {
    const { sb, model } = setup()
    const fh = sb.create('/f', 0o644, O_RDWR | O_APPEND) as number
    const ino = sb.handle(fh)!.inode.ino
    expect(model.handles.get(fh)).to.deep.equal({ ino, append: true })
    sb.write(fh, Buffer.alloc(DS, 1), DS, 0)
    expect(sb.unlink('/f')).to.equal(0)
    expect(model.files.has(ino)).to.equal(true) // open: still there
    sb.release(fh)
    expect(model.handles.has(fh)).to.equal(false)
    expect(model.files.has(ino)).to.equal(false)
  })

  it('lets go of a poisoned dpage before the memory failure returns; a read then fails in TypeScript', () => {
    const { sb, model } = setup()
    const fh = sb.create('/f', 0o644, O_RDWR) as number
    const inode = sb.handle(fh)!.inode
    sb.write(fh, Buffer.alloc(4 * DS, 9), 4 * DS, 0)
    const dpage = inode.dpages!.get(2)!
    memoryFailure(sb, locatePfn(sb.pool, sb.pool.pfnOf(dpage))!, 0, false, fakeEnv())
    expect(model.files.get(inode.ino)!.map.has(2)).to.equal(false)
    expect(model.files.get(inode.ino)!.map.has(1)).to.equal(true)
    checkMirror(sb, model)
  })

  it('is off while tracing and with native=0', () => {
    const { dp, model } = setup()
    expect(model.enabled).to.equal(true)
    dp.setTracing(true)
    expect(model.enabled).to.equal(false)
    dp.setTracing(false)
    dp.setWanted(false)
    expect(model.enabled).to.equal(false)
  })

  it('takes in native write and read times: mtime and ctime move forward, atime by relatime', () => {
    const { sb, dp } = setup()
    const fh = sb.create('/f', 0o644, O_RDWR) as number
    const inode: Inode = sb.handle(fh)!.inode
    const file = inode.native!
    const t = inode.mtime + 1000n
    file.stamps[file.at] = t // as a native write would
    expect(sb.getattr(inode).mtime).to.equal(t)
    expect(sb.getattr(inode).ctime).to.equal(t)
    file.stamps[file.at + 1] = t + 5n // a native read after it
    expect(sb.getattr(inode).atime).to.equal(t + 5n)
    // utimens wins over stamps already taken in, and a later native write wins over utimens.
    sb.utimens(inode, 5n, 6n)
    expect(sb.getattr(inode).mtime).to.equal(6n)
    const later = nowNs()
    file.stamps[file.at] = later
    expect(sb.getattr(inode).mtime).to.equal(later)
    expect(dp.enabled).to.equal(true)
  })

  it('a native write brings an mtime set into the future back to its own time; an earlier stamp does not', () => {
    const { sb } = setup()
    const fh = sb.create('/f', 0o644, O_RDWR) as number
    const inode: Inode = sb.handle(fh)!.inode
    const file = inode.native!
    const beforeUtimens = nowNs()
    const tomorrow = beforeUtimens + 86400n * 1000000000n
    sb.utimens(inode, UTIME_OMIT, tomorrow) // touch -d tomorrow
    // A write stamped before utimens set mtime lost the race to it: tomorrow stays.
    file.stamps[file.at] = beforeUtimens
    expect(sb.getattr(inode).mtime).to.equal(tomorrow)
    const written = nowNs()
    file.stamps[file.at] = written
    expect(sb.getattr(inode).mtime).to.equal(written)
    // A change through TypeScript after it takes in the stamp first and then sets its own time.
    file.stamps[file.at] = nowNs()
    expect(sb.truncate(inode, DS)).to.equal(0)
    expect(sb.getattr(inode).mtime > file.stamps[file.at]).to.equal(true)
  })

  it('a fallocate that runs out of dpages never offered the ones it gave back to the native path', () => {
    const { sb, model } = setup()
    const fh = sb.create('/f', 0o644, O_RDWR) as number
    const inode: Inode = sb.handle(fh)!.inode
    const mapped: number[] = []
    const map = model.map.bind(model)
    model.map = (ino, index, first, count) => { mapped.push(index); map(ino, index, first, count) }
    const total = sb.pool.total
    // Twice the pool's dpages, taken 4 at a time (maxAllocTry): the pool runs out halfway, after many runs.
    expect(sb.fallocate(fh, 0, 0, 2 * total * DS)).to.equal(ENOSPC)
    expect(mapped).to.deep.equal([])
    expect(inode.dpages!.size).to.equal(0)
    expect(sb.fallocate(fh, 0, 0, 8 * DS)).to.equal(0)
    expect(mapped.length).to.be.greaterThan(0)
    checkMirror(sb, model)
  })

  it('random writes, truncates, memory failures, soft offline and unlinks keep the mirror true', () => {
    const { sb, model } = setup()
    const random = rng(42)
    const env = fakeEnv()
    const open = new Map<string, number>()
    for (let step = 0; step < 3000; step++) {
      const name = '/f' + Math.floor(random() * 3)
      let fh = open.get(name)
      if (fh === undefined) {
        const created = sb.create(name, 0o644, O_RDWR)
        if (isErrno(created)) continue
        fh = created
        open.set(name, fh)
      }
      const inode = sb.handle(fh)!.inode
      const op = random()
      if (op < 0.4) {
        const len = 1 + Math.floor(random() * 3 * DS)
        sb.write(fh, Buffer.alloc(len, step & 255), len, Math.floor(random() * 24 * DS))
      } else if (op < 0.6) {
        sb.truncate(inode, Math.floor(random() * 20 * DS))
      } else if (op < 0.75 && inode.dpages!.size > 0) {
        const dpages = [...inode.dpages!.values()]
        const pfn = sb.pool.pfnOf(dpages[Math.floor(random() * dpages.length)])
        memoryFailure(sb, locatePfn(sb.pool, pfn)!, 0, false, env)
      } else if (op < 0.9 && inode.dpages!.size > 0) {
        const dpages = [...inode.dpages!.values()]
        softOffline(sb, locatePfn(sb.pool, sb.pool.pfnOf(dpages[Math.floor(random() * dpages.length)]))!)
      } else {
        sb.unlink(name)
        sb.release(fh)
        open.delete(name)
      }
      checkMirror(sb, model)
    }
  })
})
