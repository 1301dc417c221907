// Unit tests of the memory-failure path without FUSE or /proc: locating a PFN, taking a free dpage out of
// service, tracing a used one to its file and page offset, deciding each holder's signal and delivering it
// through a fake environment, and the reverse map that makes the tracing possible.

import { expect } from 'chai'
import { isErrno } from '../../src/fs/errno'
import { Superblock } from '../../src/fs/super'
import { MF_ACTION_REQUIRED, MF_MUST_KILL } from '../../src/mce/input'
import {
  BUS_MCEERR_AO, BUS_MCEERR_AR, handleMemoryFailure, locatePfn, McePlace, MceProcess, MceReport, memoryFailure
} from '../../src/mce/memory-failure'
import { FileHolder, FileMapping } from '../../src/mce/procfs'
import { MiB, PAGE_SIZE } from '../../src/pool/layout'
import { NO_OWNER } from '../../src/pool/pool'
import { createFile, createOpen, FakeEnv, fakeEnv, lookup, makeSb, O_RDWR, pfnOfIndex, rng } from './mce-fixtures'

const BASE_PFN = 0x100000 // 4 GiB, where the first node's reservation starts
const NODE1_PFN = 0x140000 // 5 GiB, the second node's
const M2 = 2 * MiB
const FRAMES_2M = 512

function place (sb: Superblock, pfn: number): McePlace {
  const p = locatePfn(sb.pool, pfn)
  if (!p) throw new Error(`pfn 0x${pfn.toString(16)} is not in the pool`)
  return p
}

function fail (sb: Superblock, pfn: number, flags = 0, deliver = false, env: FakeEnv = fakeEnv()): MceReport {
  return memoryFailure(sb, place(sb, pfn), flags, deliver, env)
}

interface Counts {
  free: number
  poisoned: number
  nodes: Array<{ free: number, poisoned: number }>
}

function counts (sb: Superblock): Counts {
  const pool = sb.pool
  return {
    free: pool.free,
    poisoned: pool.poisoned,
    nodes: pool.nodes.map(n => ({ free: n.free, poisoned: n.poisoned }))
  }
}

function hex (n: number): string {
  return '0x' + n.toString(16)
}

function proc (report: MceReport, pid: number): MceProcess {
  const p = report.processes.find(x => x.pid === pid)
  if (!p) throw new Error(`pid ${pid} not in the report (${report.processes.map(x => x.pid).join(',')})`)
  return p
}

function mapping (start: number, pgoff: number, pages: number): FileMapping {
  return { start, end: start + pages * PAGE_SIZE, pgoff, perms: 'rw-s' }
}

describe('memory failure', () => {
  describe('locatePfn', () => {
    it('places PFNs of a 4K-dpage pool and returns null outside it', () => {
      const sb = makeSb({ size: MiB, nodes: 1, shift: 12 })
      expect(locatePfn(sb.pool, BASE_PFN)).to.deep.equal({
        pfn: BASE_PFN, phys: 0x100000000, node: 0, region: 0, dpage: 0, dpagePfn: BASE_PFN, dpageSize: 4096
      })
      expect(locatePfn(sb.pool, BASE_PFN + 255)).to.deep.equal({
        pfn: BASE_PFN + 255, phys: (BASE_PFN + 255) * 4096, node: 0, region: 0, dpage: 255, dpagePfn: BASE_PFN + 255, dpageSize: 4096
      })
      for (const pfn of [0, 1, BASE_PFN - 1, BASE_PFN + 256, NODE1_PFN, 2 ** 52, Infinity, -1, BASE_PFN + 0.5, NaN]) {
        expect(locatePfn(sb.pool, pfn), String(pfn)).to.equal(null)
      }
    })

    it('places a frame inside a 2M dpage at that dpage, on the right node and region', () => {
      const sb = makeSb({ size: 8 * MiB, nodes: 2, shift: 21 })
      expect(locatePfn(sb.pool, BASE_PFN + 2 * FRAMES_2M + 7)).to.deep.equal({
        pfn: BASE_PFN + 2 * FRAMES_2M + 7,
        phys: (BASE_PFN + 2 * FRAMES_2M + 7) * 4096,
        node: 0,
        region: 0,
        dpage: 2,
        dpagePfn: BASE_PFN + 2 * FRAMES_2M,
        dpageSize: M2
      })
      expect(locatePfn(sb.pool, NODE1_PFN)).to.include({ node: 1, region: 1, dpage: 4, dpagePfn: NODE1_PFN })
      expect(locatePfn(sb.pool, NODE1_PFN + 3 * FRAMES_2M + 511)).to.include(
        { node: 1, region: 1, dpage: 7, dpagePfn: NODE1_PFN + 3 * FRAMES_2M })
      expect(locatePfn(sb.pool, BASE_PFN + FRAMES_2M - 1)).to.include({ dpage: 0, dpagePfn: BASE_PFN })
      expect(locatePfn(sb.pool, BASE_PFN + FRAMES_2M)).to.include({ dpage: 1, dpagePfn: BASE_PFN + FRAMES_2M })
      // The gap after node 0's 8M and the end of node 1's.
      expect(locatePfn(sb.pool, BASE_PFN + 4 * FRAMES_2M)).to.equal(null)
      expect(locatePfn(sb.pool, NODE1_PFN - 1)).to.equal(null)
      expect(locatePfn(sb.pool, NODE1_PFN + 4 * FRAMES_2M)).to.equal(null)
    })
  })

  describe('a free dpage', () => {
    it('is taken out of service: free counts drop by one, poisoned rises by one, and it is logged', () => {
      const sb = makeSb({ size: MiB, nodes: 1, shift: 12 })
      const env = fakeEnv()
      const r = memoryFailure(sb, place(sb, BASE_PFN + 5), 0, false, env)
      expect(r.state).to.equal('free')
      expect(r.result).to.equal('MCE: free dpage, mark 0x100005 disabled in dmem')
      expect(env.lines).to.deep.equal(['MCE: free dpage, mark 0x100005 disabled in dmem'])
      expect(r.file).to.equal(null)
      expect(r.processes).to.deep.equal([])
      expect(env.holderCalls).to.deep.equal([])
      expect(r).to.include({ pfn: BASE_PFN + 5, dpage: 5, flags: 0, deliver: false })
      expect(counts(sb)).to.deep.equal({ free: 255, poisoned: 1, nodes: [{ free: 255, poisoned: 1 }] })
      expect(sb.pool.isPoisoned(5)).to.equal(true)
      expect(sb.pool.isUsed(5)).to.equal(true)
    })

    it('counts against its own node only', () => {
      const sb = makeSb({ size: 8 * MiB, nodes: 2, shift: 21 })
      const r = fail(sb, NODE1_PFN + FRAMES_2M + 3)
      expect(r.state).to.equal('free')
      expect(r.result).to.equal(`MCE: free dpage, mark ${hex(NODE1_PFN + FRAMES_2M + 3)} disabled in dmem`)
      expect(counts(sb)).to.deep.equal({
        free: 7, poisoned: 1, nodes: [{ free: 4, poisoned: 0 }, { free: 3, poisoned: 1 }]
      })
    })

    it('is never allocated again', () => {
      const sb = makeSb({ size: MiB, nodes: 1, shift: 12 })
      fail(sb, BASE_PFN)
      fail(sb, BASE_PFN + 100)
      const got = new Set<number>()
      for (;;) {
        const run = sb.pool.alloc(0, 7)
        if (!run) break
        for (let i = 0; i < run.count; i++) got.add(run.first + i)
      }
      expect(got.size).to.equal(254)
      expect(got.has(0)).to.equal(false)
      expect(got.has(100)).to.equal(false)
      expect(sb.pool.free).to.equal(0)
    })

    it('is never given to a file again, even when the file fills the pool', () => {
      const sb = makeSb({ size: 64 * 4096, nodes: 1, shift: 12, maxAllocTry: 16 })
      fail(sb, BASE_PFN + 3)
      const fh = createOpen(sb, '/big')
      const n = sb.write(fh, Buffer.alloc(64 * 4096, 1), 64 * 4096, 0)
      expect(n).to.equal(63 * 4096)
      expect([...lookup(sb, '/big').dpages!.values()]).to.not.include(3)
    })

    it('a second failure on it is already-poisoned and changes nothing', async () => {
      const sb = makeSb({ size: MiB, nodes: 1, shift: 12 })
      fail(sb, BASE_PFN + 5)
      const before = counts(sb)
      const env = fakeEnv()
      const r = await handleMemoryFailure(sb, place(sb, BASE_PFN + 5), MF_MUST_KILL, true, env)
      expect(r.state).to.equal('already-poisoned')
      expect(r.result).to.equal('Memory failure: 0x100005: already hardware poisoned')
      expect(env.lines).to.deep.equal([r.result])
      expect(r.file).to.equal(null)
      expect(r.processes).to.deep.equal([])
      expect(env.events).to.deep.equal([]) // nothing revoked, nobody signalled
      expect(r.revocation).to.equal(null)
      expect(counts(sb)).to.deep.equal(before)
    })

    it('a failure on another frame of the same 2M dpage is already-poisoned too', () => {
      const sb = makeSb({ size: 8 * MiB, nodes: 2, shift: 21 })
      fail(sb, BASE_PFN + 1)
      const before = counts(sb)
      const r = fail(sb, BASE_PFN + 511)
      expect(r.state).to.equal('already-poisoned')
      expect(r.result).to.equal(`Memory failure: ${hex(BASE_PFN + 511)}: already hardware poisoned`)
      expect(counts(sb)).to.deep.equal(before)
    })
  })

  describe('a used dpage', () => {
    it('is traced to its file, inode and page offset (4K dpages)', () => {
      const sb = makeSb({ size: MiB, nodes: 1, shift: 12 })
      createFile(sb, '/other', 3 * 4096) // takes the first dpages so the file's are not numbered like its pages
      expect(sb.mkdir('/dir', 0o755)).to.equal(0)
      const a = createFile(sb, '/dir/a', 2 * 4096, 10 * 4096) // indices 10 and 11
      const pfn = pfnOfIndex(sb, a, 11)
      expect(pfn).to.equal(BASE_PFN + 4)
      const before = counts(sb)
      const env = fakeEnv()
      const r = memoryFailure(sb, place(sb, pfn), 0, false, env)
      expect(r.state).to.equal('used')
      expect(r.result).to.equal(`MCE ${hex(pfn)}: handled by dmem`)
      expect(env.lines).to.deep.equal([`MCE ${hex(pfn)}: handled by dmem`])
      expect(r.file).to.deep.equal({ path: '/dir/a', ino: a.ino, pgoff: 11, offset: 11 * 4096 })
      expect(env.holderCalls).to.deep.equal([a.ino])
      expect(r.processes).to.deep.equal([])
      // Still the file's, still counted in use; now poisoned.
      expect(counts(sb)).to.deep.equal({ ...before, poisoned: 1, nodes: [{ free: before.nodes[0].free, poisoned: 1 }] })
      expect(sb.pool.isPoisoned(4)).to.equal(true)
      expect(sb.pool.ownerOf(4)).to.equal(a.ino)
    })

    it('gives the page offset of the frame inside a 2M dpage: index * 512 + frame', () => {
      const sb = makeSb({ size: 8 * MiB, nodes: 2, shift: 21 })
      expect(sb.mkdir('/d', 0o755)).to.equal(0) // ino 2, home node 0
      createFile(sb, '/d/pad', M2) // ino 3, node 1: takes node 1's first dpage
      const f = createFile(sb, '/d/f', 2 * M2, 3 * M2) // ino 4, node 0: indices 3 and 4
      expect(f.node).to.equal(0)
      const dpagePfn = pfnOfIndex(sb, f, 4)
      expect(dpagePfn).to.equal(BASE_PFN + FRAMES_2M)
      const env = fakeEnv()
      const r = memoryFailure(sb, place(sb, dpagePfn + 300), 0, false, env)
      expect(r.state).to.equal('used')
      expect(r.file).to.deep.equal({ path: '/d/f', ino: f.ino, pgoff: 4 * 512 + 300, offset: (4 * 512 + 300) * 4096 })
      expect(r).to.include({ node: 0, dpagePfn, dpageSize: M2 })
      expect(env.holderCalls).to.deep.equal([f.ino])

      const pad = lookup(sb, '/d/pad')
      const padPfn = pfnOfIndex(sb, pad, 0)
      expect(padPfn).to.equal(NODE1_PFN)
      const r2 = fail(sb, padPfn + 511)
      expect(r2.file).to.deep.equal({ path: '/d/pad', ino: pad.ino, pgoff: 511, offset: 511 * 4096 })
      expect(r2.node).to.equal(1)
      expect(sb.pool.nodes.map(n => n.poisoned)).to.deep.equal([1, 1])
    })

    it('of an unlinked but open file has no path', () => {
      const sb = makeSb({ size: MiB, nodes: 1, shift: 12 })
      const fh = createOpen(sb, '/gone', 4096)
      const ino = lookup(sb, '/gone').ino
      expect(sb.unlink('/gone')).to.equal(0)
      const r = fail(sb, BASE_PFN)
      expect(r.state).to.equal('used')
      expect(r.file).to.deep.equal({ path: null, ino, pgoff: 0, offset: 0 })
      expect(sb.release(fh)).to.equal(0)
    })

    it('stays out of the pool when its file lets it go, and a new failure on it is already-poisoned', () => {
      const sb = makeSb({ size: MiB, nodes: 1, shift: 12 })
      createFile(sb, '/f', 2 * 4096)
      fail(sb, BASE_PFN + 1)
      expect(sb.unlink('/f')).to.equal(0)
      expect(sb.pool.free).to.equal(255)
      expect(sb.pool.ownerOf(1)).to.equal(NO_OWNER)
      expect(fail(sb, BASE_PFN + 1).state).to.equal('already-poisoned')
      expect(sb.pool.free).to.equal(255)
    })
  })

  describe('who gets what', () => {
    // A file of three 2M dpages at indices 0..2; the failure hits frame 100 of index 1: pgoff 612, and the
    // dpage covers pgoffs 512..1023.
    const FRAME = 100
    const PGOFF = FRAMES_2M + FRAME
    const VA = 0x7f0000000000
    let sb: Superblock
    let pfn: number
    let ino: number

    beforeEach(() => {
      sb = makeSb({ size: 8 * MiB, nodes: 1, shift: 21 })
      const f = createFile(sb, '/f', 3 * M2)
      ino = f.ino
      pfn = pfnOfIndex(sb, f, 1) + FRAME
    })

    const holders: FileHolder[] = [
      { pid: 100, comm: 'mapper', fds: [], mappings: [mapping(VA, 0, 3 * FRAMES_2M)] },
      { pid: 200, comm: 'reader', fds: [3, 7], mappings: [] },
      { pid: 300, comm: 'elsewhere', fds: [], mappings: [mapping(VA, 0, FRAMES_2M), mapping(VA + 0x10000000, 1024, 512)] },
      { pid: 400, comm: 'fdtoo', fds: [5], mappings: [mapping(VA, 1024, 10)] },
      { pid: 500, comm: 'offset', fds: [], mappings: [mapping(VA, 600, 100)] }
    ]

    function run (flags: number, deliver = false, env = fakeEnv({ holders })): MceReport {
      const r = memoryFailure(sb, place(sb, pfn), flags, deliver, env)
      expect(r.state).to.equal('used')
      expect(r.file).to.include({ ino, pgoff: PGOFF })
      return r
    }

    it('asks for the holders of the file and keeps those that map the dpage or hold it open', () => {
      const env = fakeEnv({ holders })
      const r = run(0, false, env)
      expect(env.holderCalls).to.deep.equal([ino])
      expect(r.processes.map(p => p.pid)).to.deep.equal([100, 200, 400, 500])
      expect(proc(r, 100).comm).to.equal('mapper')
      expect(proc(r, 200).fds).to.deep.equal([3, 7])
      // A mapping beside the dpage is no mapping of it; the holder keeps its fd.
      expect(proc(r, 400).mappings).to.deep.equal([])
      expect(proc(r, 400).fds).to.deep.equal([5])
    })

    it('without must_kill signals nobody and says what each will see', () => {
      const r = run(0)
      for (const p of r.processes) {
        expect(p.signal, `pid ${p.pid}`).to.equal(null)
        expect(p.siCode).to.equal(null)
        expect(p.addrLsb).to.equal(null)
        expect(p.sent).to.equal(null)
      }
      for (const pid of [100, 500]) {
        expect(proc(r, pid).collected).to.equal(true)
        expect(proc(r, pid).reason).to.match(/must_kill/)
        expect(proc(r, pid).reason).to.match(/SIGBUS BUS_MCEERR_AR on touching.*SIGBUS BUS_ADRERR from this simulation/)
        expect(proc(r, pid).reason).to.not.match(/EIO/)
      }
      for (const pid of [200, 400]) {
        expect(proc(r, pid).collected).to.equal(false)
        expect(proc(r, pid).reason).to.match(/^not collected by the kernel .*EIO on its next read or write/)
        expect(proc(r, pid).reason).to.not.match(/SIGBUS/)
      }
      // The address is known even when no signal carries it.
      expect(proc(r, 100).vaddr).to.equal(VA + PGOFF * PAGE_SIZE)
      expect(proc(r, 200).vaddr).to.equal(null)
    })

    it('with action_required alone still signals nobody', () => {
      const r = run(MF_ACTION_REQUIRED)
      expect(r.processes.every(p => p.signal === null)).to.equal(true)
    })

    it('with must_kill: SIGBUS BUS_MCEERR_AO at the page address for mappers; descriptor holders nothing', () => {
      const r = run(MF_MUST_KILL)
      const mapper = proc(r, 100)
      expect(mapper).to.include({ collected: true, signal: 'SIGBUS', siCode: 'BUS_MCEERR_AO', addrLsb: 12, sent: null })
      // add_to_kill(): vm_start + ((pgoff - vm_pgoff) << PAGE_SHIFT)
      expect(mapper.vaddr).to.equal(VA + (PGOFF - 0) * 4096)
      expect(mapper.mappings).to.deep.equal([{ ...mapping(VA, 0, 3 * FRAMES_2M), vaddr: VA + PGOFF * 4096 }])
      const offset = proc(r, 500)
      expect(offset).to.include({ signal: 'SIGBUS', siCode: 'BUS_MCEERR_AO', addrLsb: 12 })
      expect(offset.vaddr).to.equal(VA + (PGOFF - 600) * 4096)
      // __collect_procs_file() walks VMAs only: a descriptor holder is not collected, so never killed.
      for (const pid of [200, 400]) {
        expect(proc(r, pid), `pid ${pid}`).to.include({ collected: false, signal: null, siCode: null, addrLsb: null, vaddr: null })
      }
    })

    it('with must_kill and action_required: BUS_MCEERR_AR', () => {
      const r = run(MF_MUST_KILL | MF_ACTION_REQUIRED)
      expect(proc(r, 100)).to.include({ signal: 'SIGBUS', siCode: 'BUS_MCEERR_AR', addrLsb: 12 })
      expect(proc(r, 500)).to.include({ signal: 'SIGBUS', siCode: 'BUS_MCEERR_AR' })
      expect(proc(r, 200)).to.include({ signal: null, siCode: null, collected: false })
    })

    it('never lists the daemon, pid 1, or a process the caller excludes (the CLI that asked)', () => {
      const env = fakeEnv({
        self: 777,
        holders: [
          { pid: 777, comm: 'dmemfs', fds: [9], mappings: [mapping(VA, 0, 2048)] },
          { pid: 1, comm: 'init', fds: [], mappings: [mapping(VA, 0, 2048)] },
          { pid: 900, comm: 'dmemfs-cli', fds: [5], mappings: [] },
          { pid: 901, comm: 'bash', fds: [5], mappings: [] },
          { pid: 100, comm: 'mapper', fds: [], mappings: [mapping(VA, 0, 2048)] }
        ]
      })
      const r = memoryFailure(sb, place(sb, pfn), MF_MUST_KILL, true, env, 'all', [900])
      expect(r.processes.map(p => p.pid)).to.deep.equal([901, 100])
      expect(proc(r, 901)).to.include({ collected: false, signal: null })
    })

    it('counts a mapping by whether it covers the dpage, to the page', () => {
      const cases: Array<{ m: FileMapping, vaddr: number | null }> = [
        { m: mapping(VA, 0, 512), vaddr: null }, // ends right before the dpage
        { m: mapping(VA, 1024, 4), vaddr: null }, // starts right after it
        { m: mapping(VA, 0, 513), vaddr: VA + 512 * 4096 }, // reaches its first page only
        { m: mapping(VA, 1023, 4), vaddr: VA }, // starts on its last page
        { m: mapping(VA, 500, 30), vaddr: VA + 12 * 4096 }, // covers 512..529: first covered page, 512
        { m: mapping(VA, 700, 10), vaddr: VA }, // within the dpage, after the frame: its own first page
        { m: mapping(VA, PGOFF, 1), vaddr: VA }, // exactly the frame
        { m: mapping(VA, PGOFF + 1, 1), vaddr: VA }, // the page after it
        { m: mapping(VA, PGOFF - 1, 1), vaddr: VA } // the page before it
      ]
      for (const { m, vaddr } of cases) {
        const env = fakeEnv({ holders: [{ pid: 100, comm: 'm', fds: [], mappings: [m] }] })
        sb = makeSb({ size: 8 * MiB, nodes: 1, shift: 21 })
        const f = createFile(sb, '/f', 3 * M2)
        const r = memoryFailure(sb, place(sb, pfnOfIndex(sb, f, 1) + FRAME), MF_MUST_KILL, false, env)
        const what = `mapping pgoff ${m.pgoff}, ${(m.end - m.start) / 4096} pages`
        if (vaddr === null) {
          expect(r.processes, what).to.deep.equal([])
        } else {
          expect(r.processes, what).to.have.length(1)
          expect(r.processes[0].vaddr, what).to.equal(vaddr)
          expect(r.processes[0].mappings[0].vaddr, what).to.equal(vaddr)
          expect(r.processes[0].signal, what).to.equal('SIGBUS')
        }
      }
    })

    it('lists every covering mapping of a process and signals the first one\'s address', () => {
      const h: FileHolder = {
        pid: 100,
        comm: 'two',
        fds: [4],
        mappings: [mapping(VA, 0, 100), mapping(VA + 0x100000, 600, 20), mapping(VA + 0x200000, 512, 512)]
      }
      const r = run(MF_MUST_KILL, false, fakeEnv({ holders: [h] }))
      expect(r.processes).to.have.length(1)
      const p = r.processes[0]
      expect(p.mappings.map(m => m.vaddr)).to.deep.equal([VA + 0x100000 + 12 * 4096, VA + 0x200000 + 100 * 4096])
      expect(p.vaddr).to.equal(VA + 0x100000 + 12 * 4096)
      expect(p).to.include({ signal: 'SIGBUS', siCode: 'BUS_MCEERR_AO' })
      expect(p.fds).to.deep.equal([4])
    })

    it('in a 4K-dpage pool, a mapping must cover the frame itself', () => {
      sb = makeSb({ size: MiB, nodes: 1, shift: 12 })
      const f = createFile(sb, '/f', 8 * 4096)
      const env = fakeEnv({
        holders: [
          { pid: 10, comm: 'hit', fds: [], mappings: [mapping(VA, 4, 2)] },
          { pid: 11, comm: 'miss', fds: [], mappings: [mapping(VA, 0, 5), mapping(VA + 0x10000, 6, 2)] }
        ]
      })
      const r = memoryFailure(sb, place(sb, pfnOfIndex(sb, f, 5)), MF_MUST_KILL, false, env)
      expect(r.file).to.include({ pgoff: 5 })
      expect(r.processes.map(p => p.pid)).to.deep.equal([10])
      expect(r.processes[0].vaddr).to.equal(VA + 4096)
    })

    describe('revoke and deliver', () => {
      function runAll (flags: number, deliver: boolean, env: FakeEnv): Promise<MceReport> {
        return handleMemoryFailure(sb, place(sb, pfn), flags, deliver, env)
      }

      it('revokes the file\'s cached copies first, then sends each SIGBUS with its code and address', async () => {
        const env = fakeEnv({ holders })
        const r = await runAll(MF_MUST_KILL, true, env)
        expect(env.events).to.deep.equal(['revoke', 'sigbus 100', 'sigbus 500'])
        expect(env.revoked).to.deep.equal([{
          path: '/f',
          holders: r.processes.map(p => ({ pid: p.pid, fds: p.fds, mappings: p.mappings }))
        }])
        expect(r.revocation).to.deep.equal({ via: '/f', ms: 1, failed: [] })
        expect(env.sigbus).to.deep.equal([
          { pid: 100, siCode: BUS_MCEERR_AO, addr: BigInt(VA + PGOFF * 4096) },
          { pid: 500, siCode: BUS_MCEERR_AO, addr: BigInt(VA + (PGOFF - 600) * 4096) }
        ])
        expect(r.processes.map(p => [p.pid, p.sent, p.way])).to.deep.equal([
          [100, true, 'kill'], [200, null, null], [400, null, null], [500, true, 'kill']
        ])
        expect(r.deliver).to.equal(true)
        const h = hex(pfn)
        expect(env.lines).to.deep.equal([
          `MCE ${h}: handled by dmem`,
          `Memory failure: ${h}: Sending SIGBUS to mapper:100 due to hardware memory corruption`,
          `Memory failure: ${h}: Sending SIGBUS to offset:500 due to hardware memory corruption`
        ])
      })

      it('sends BUS_MCEERR_AR with action_required, and records the way each signal went', async () => {
        const env = fakeEnv({
          holders,
          sendResult: pid => pid === 100 ? { way: 'ptrace' } : { way: 'kill', error: 'EPERM: already traced' }
        })
        const r = await runAll(MF_MUST_KILL | MF_ACTION_REQUIRED, true, env)
        expect(env.sigbus.map(c => c.siCode)).to.deep.equal([BUS_MCEERR_AR, BUS_MCEERR_AR])
        expect(proc(r, 100)).to.include({ sent: true, way: 'ptrace' })
        expect(proc(r, 100).sendError).to.equal(undefined)
        expect(proc(r, 500)).to.include({ sent: true, way: 'kill', sendError: 'EPERM: already traced' })
      })

      it('records a failing send as not sent, with its code, and goes on to the next process', async () => {
        const env = fakeEnv({
          holders,
          sendError: pid => pid === 100 ? Object.assign(new Error('kill ESRCH'), { code: 'ESRCH' }) : null
        })
        const r = await runAll(MF_MUST_KILL, true, env)
        expect(env.sigbus.map(k => k.pid)).to.deep.equal([100, 500])
        expect(proc(r, 100)).to.include({ sent: false, sendError: 'ESRCH', way: null })
        expect(proc(r, 500)).to.include({ sent: true, way: 'kill' })
        expect(env.lines.filter(l => l.includes('mapper:100'))).to.deep.equal([])
      })

      it('without must_kill sends nothing but still revokes', async () => {
        const env = fakeEnv({ holders })
        const r = await runAll(0, true, env)
        expect(env.events).to.deep.equal(['revoke'])
        expect(r.processes.map(p => p.sent)).to.deep.equal([null, null, null, null])
      })

      it('sends nothing unless asked for, but still revokes', async () => {
        const env = fakeEnv({ holders })
        const r = await runAll(MF_MUST_KILL | MF_ACTION_REQUIRED, false, env)
        expect(env.events).to.deep.equal(['revoke'])
        expect(r.deliver).to.equal(false)
        expect(r.processes.map(p => p.sent)).to.deep.equal([null, null, null, null])
        expect(env.lines).to.deep.equal([`MCE ${hex(pfn)}: handled by dmem`])
      })

      it('does neither for a free dpage', async () => {
        const env = fakeEnv({ holders })
        const r = await handleMemoryFailure(sb, place(sb, BASE_PFN + 3 * FRAMES_2M), MF_MUST_KILL, true, env)
        expect(r.state).to.equal('free')
        expect(env.events).to.deep.equal([])
        expect(env.holderCalls).to.deep.equal([])
        expect(r.revocation).to.equal(null)
      })

      it('revokes an unlinked file through its holders, and marks it hwpoisoned', async () => {
        const small = makeSb({ size: MiB, nodes: 1, shift: 12 })
        const fh = createOpen(small, '/gone', 4096)
        const inode = lookup(small, '/gone')
        expect(small.unlink('/gone')).to.equal(0)
        expect(inode.hwpoisoned).to.equal(false)
        const env = fakeEnv({ holders: [{ pid: 10, comm: 'h', fds: [3], mappings: [] }] })
        const r = await handleMemoryFailure(small, place(small, BASE_PFN), 0, false, env)
        expect(env.revoked).to.deep.equal([{ path: null, holders: [{ pid: 10, fds: [3], mappings: [] }] }])
        expect(r.revocation!.via).to.equal(null)
        expect(inode.hwpoisoned).to.equal(true)
        expect(small.release(fh)).to.equal(0)
      })
    })
  })

  describe('the reverse map under churn', () => {
    interface Config {
      name: string
      size: number
      nodes: number
      shift: number
      maxAllocTry: number
      unit: number // the dpage size
      span: number // writes start in the first `span` dpages of a file
      files: number // at most this many names
    }
    const configs: Config[] = [
      { name: '4K dpages, two nodes', size: MiB, nodes: 2, shift: 12, maxAllocTry: 4, unit: 4096, span: 12, files: 40 },
      { name: '2M dpages, two nodes', size: 32 * MiB, nodes: 2, shift: 21, maxAllocTry: 3, unit: M2, span: 6, files: 10 }
    ]

    for (const cfg of configs) {
      it(`names the right inode, index and path for every dpage (${cfg.name})`, () => {
        const sb = makeSb(cfg)
        const pool = sb.pool
        const random = rng(0xd3e7 + cfg.shift)
        const int = (n: number): number => Math.floor(random() * n)
        const byPath = new Map<string, number>() // the model: path -> ino
        const open = new Map<number, number>() // fh -> ino
        expect(sb.mkdir('/sub', 0o755)).to.equal(0)
        let serial = 0
        const data = Buffer.alloc(3 * cfg.unit, 0xa5)
        const paths = (): string[] => [...byPath.keys()]
        const fhOf = (path: string): number => {
          const fh = sb.open(lookup(sb, path), O_RDWR)
          if (isErrno(fh)) throw new Error(`open ${path}: ${fh}`)
          open.set(fh, byPath.get(path)!)
          return fh
        }
        for (let op = 0; op < 1500; op++) {
          const names = paths()
          // Keep the number of names between files/2 and files, so the pool neither fills for good nor empties.
          const choice = names.length < cfg.files / 2 ? 0 : names.length > cfg.files ? 7 : int(10)
          if (choice < 2 || names.length === 0) {
            const path = `${int(2) === 0 ? '' : '/sub'}/f${serial++}`
            const fh = sb.create(path, 0o644, O_RDWR)
            if (isErrno(fh)) throw new Error(`create ${path}: ${fh}`)
            byPath.set(path, lookup(sb, path).ino)
            open.set(fh, byPath.get(path)!)
          } else if (choice < 5) {
            const path = names[int(names.length)]
            const fh = fhOf(path)
            const pos = int(cfg.span) * cfg.unit + int(cfg.unit)
            const len = 1 + int(3 * cfg.unit)
            const n = sb.write(fh, data, len, pos)
            if (isErrno(n)) expect(n, 'write fails only when the pool is full').to.equal(-28)
            if (int(5) !== 0) {
              expect(sb.release(fh)).to.equal(0)
              open.delete(fh)
            }
          } else if (choice < 7) {
            const path = names[int(names.length)]
            expect(sb.truncate(lookup(sb, path), int(cfg.span) * cfg.unit + int(2) * int(cfg.unit))).to.equal(0)
          } else if (choice < 8) {
            const path = names[int(names.length)]
            expect(sb.unlink(path)).to.equal(0)
            byPath.delete(path)
          } else if (choice < 9) {
            const from = names[int(names.length)]
            const to = int(3) === 0 ? names[int(names.length)] : `${int(2) === 0 ? '' : '/sub'}/r${serial++}`
            expect(sb.rename(from, to)).to.equal(0)
            const movedIno = byPath.get(from)!
            byPath.delete(from)
            byPath.set(to, movedIno)
          }
          // Keep a few handles open, so that some unlinked files live on, but not so many that they fill
          // the pool.
          if (choice >= 9 ? open.size > 0 : open.size > 8) {
            const fhs = [...open.keys()]
            const fh = fhs[int(fhs.length)]
            expect(sb.release(fh)).to.equal(0)
            open.delete(fh)
          }
        }
        // Make sure that some files with data live on unlinked, held by an open handle.
        for (const path of paths().filter(p => lookup(sb, p).dpages!.size > 0).slice(0, 2)) {
          fhOf(path)
          expect(sb.unlink(path)).to.equal(0)
          byPath.delete(path)
        }

        // Every table entry is mirrored by the reverse map, and nothing else is in use.
        let entries = 0
        const tableOwner = new Map<number, { ino: number, index: number }>()
        for (const inode of sb.allInodes()) {
          if (!inode.dpages) continue
          for (const [index, dpage] of inode.dpages) {
            entries++
            expect(tableOwner.has(dpage), `dpage ${dpage} in two tables`).to.equal(false)
            tableOwner.set(dpage, { ino: inode.ino, index })
          }
        }
        expect(entries, 'the churn allocated something').to.be.greaterThan(10)
        expect(entries).to.equal(pool.total - pool.free)
        const used: number[] = []
        for (let d = 0; d < pool.total; d++) {
          if (!pool.isUsed(d)) {
            expect(pool.ownerOf(d), `free dpage ${d}`).to.equal(NO_OWNER)
            continue
          }
          used.push(d)
          const owner = tableOwner.get(d)
          expect(owner, `used dpage ${d} is in a table`).to.not.equal(undefined)
          expect(pool.ownerOf(d), `owner of dpage ${d}`).to.equal(owner!.ino)
          expect(pool.indexOf(d), `index of dpage ${d}`).to.equal(owner!.index)
          const inode = sb.inode(pool.ownerOf(d))!
          expect(inode.dpages!.get(pool.indexOf(d))).to.equal(d)
        }

        // The model's view of names: an inode has its path, or none once unlinked (while still open).
        const pathOfIno = new Map<number, string>()
        for (const [path, i] of byPath) pathOfIno.set(i, path)
        const unnamed = [...sb.allInodes()].filter(i => i.dpages && i.dpages.size > 0 && !pathOfIno.has(i.ino))
        expect(unnamed.length, 'some files with data are unlinked but open').to.be.greaterThan(0)
        for (const inode of unnamed) expect(sb.pathOf(inode)).to.equal(null)

        // Memory failures on random used frames name the right file, offset and path.
        const picked = new Set<number>()
        for (let k = 0; k < 40 && picked.size < used.length; k++) {
          const d = used[int(used.length)]
          if (picked.has(d)) continue
          picked.add(d)
          const frame = int(pool.framesPerDpage)
          const env = fakeEnv()
          const r = memoryFailure(sb, place(sb, pool.pfnOf(d) + frame), 0, false, env)
          const owner = tableOwner.get(d)!
          const pgoff = owner.index * pool.framesPerDpage + frame
          expect(r.state).to.equal('used')
          expect(r.file).to.deep.equal({
            path: pathOfIno.get(owner.ino) ?? null, ino: owner.ino, pgoff, offset: pgoff * PAGE_SIZE
          })
          expect(env.holderCalls).to.deep.equal([owner.ino])
        }
        expect(picked.size).to.be.greaterThan(5)
        expect(pool.poisoned).to.equal(picked.size)
      })
    }
  })
})

describe('memory failure: openers tracked via open handles', () => {
  it('names each open handle on the file with the process that opened it', () => {
    const sb = makeSb({ size: 4 * MiB, shift: 12, nodes: 1 })
    const f = createFile(sb, '/f', 8192)
    const fh = sb.open(f, O_RDWR, 555) as number
    sb.open(lookup(sb, '/f'), O_RDWR, 0) // opened with no known caller
    const holders: FileHolder[] = [
      { pid: 555, comm: 'holder', fds: [3], mappings: [] },
      { pid: 777, comm: 'inheritor', fds: [4], mappings: [] }
    ]
    const env = fakeEnv({ holders })
    const place = locatePfn(sb.pool, pfnOfIndex(sb, f, 1))!
    const r = memoryFailure(sb, place, MF_MUST_KILL, false, env)
    expect(r.handles).to.deep.equal([{ fh, opener: 555, comm: 'opener' }, { fh: fh + 1, opener: 0, comm: '?' }])
    expect(r.processes.map(p => [p.pid, p.opener])).to.deep.equal([[555, true], [777, false]])
  })
})
