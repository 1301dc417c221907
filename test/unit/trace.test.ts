// Unit tests of tracing without a mount: the Tracer ring itself, the exact events the allocator, the file
// data path and the memory-failure path emit (with their values), the control files tracing_on, trace and
// trace_pipe, and trace_pipe's blocking reads through the FUSE adapter (driven directly, no kernel).

import { expect } from 'chai'
import { spawnSync } from 'child_process'
import { ControlDir, ControlFile, WriteResult } from '../../src/control/control'
import { EACCES, EINTR, EINVAL, ENOSPC } from '../../src/fs/errno'
import { Superblock } from '../../src/fs/super'
import { FuseAdapter } from '../../src/fuse/operations'
import { MF_MUST_KILL } from '../../src/mce/input'
import { locatePfn, memoryFailure } from '../../src/mce/memory-failure'
import { MiB } from '../../src/pool/layout'
import { Tracer, TRACE_RING_SIZE } from '../../src/pool/trace'
import { createFile, createOpen, fakeEnv, lookup, makeSb, pfnOfIndex, writeAt } from './mce-fixtures'

const STAMP = /^(\d+)\.(\d{6}): /
const BASE_PFN = 0x100000 // 4 GiB: the first node's reservation
const NODE1_PHYS = 0x140000000 // 5 GiB: the second node's

/** The ring's lines without their timestamps, checking each has one. */
function events (t: Tracer): string[] {
  return t.read(0).lines.map(l => {
    expect(l, l).to.match(STAMP)
    return l.replace(STAMP, '')
  })
}

function hex (n: number): string {
  return '0x' + n.toString(16)
}

function tick (): Promise<void> {
  return new Promise(resolve => setImmediate(resolve))
}

function sleep (ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}

function fail (sb: Superblock, pfn: number, flags = 0): void {
  const place = locatePfn(sb.pool, pfn)
  if (!place) throw new Error(`pfn ${hex(pfn)} is not in the pool`)
  memoryFailure(sb, place, flags, false, fakeEnv())
}

describe('tracing', () => {
  describe('Tracer', () => {
    it('is off by default and records nothing while off', () => {
      const t = new Tracer()
      expect(t.on).to.equal(false)
      t.emit(3, 'dmem_free_pages', 'addr 0x1000 dpages_nr 1')
      expect(t.head()).to.equal(0)
      expect(t.oldest()).to.equal(0)
      expect(t.read(0)).to.deep.equal({ lines: [], next: 0 })
    })

    it('records `SECONDS.MICROS: [ino N ]event: text`, with the monotonic time', () => {
      const t = new Tracer()
      t.on = true
      const before = process.hrtime.bigint()
      t.emit(7, 'dmem_free_pages', 'addr 0x100000000 dpages_nr 1')
      t.emit(0, 'dmem_alloc_init', 'dpage_shift 12')
      const after = process.hrtime.bigint()
      const { lines, next } = t.read(0)
      expect(next).to.equal(2)
      expect(lines).to.have.length(2)
      expect(lines[0]).to.match(/^\d+\.\d{6}: ino 7 dmem_free_pages: addr 0x100000000 dpages_nr 1$/)
      // No inode, no `ino` part.
      expect(lines[1]).to.match(/^\d+\.\d{6}: dmem_alloc_init: dpage_shift 12$/)
      const micros = lines.map(l => {
        const m = STAMP.exec(l)!
        return BigInt(m[1]) * 1000000n + BigInt(m[2])
      })
      expect(micros[0] >= before / 1000n, 'not before the first emit').to.equal(true)
      expect(micros[1] >= micros[0], 'monotonic').to.equal(true)
      expect(micros[1] <= after / 1000n, 'not after the last emit').to.equal(true)
    })

    it(`keeps only the newest TRACE_RING_SIZE (${TRACE_RING_SIZE}) events, oldest first`, () => {
      const t = new Tracer()
      t.on = true
      const extra = 10
      for (let i = 0; i < TRACE_RING_SIZE + extra; i++) t.emit(0, 'e', String(i))
      expect(t.head()).to.equal(TRACE_RING_SIZE + extra)
      expect(t.oldest()).to.equal(extra)
      const { lines, next } = t.read(0)
      expect(next).to.equal(TRACE_RING_SIZE + extra)
      expect(lines).to.have.length(TRACE_RING_SIZE)
      expect(lines[0]).to.match(new RegExp(`: e: ${extra}$`))
      expect(lines[1]).to.match(new RegExp(`: e: ${extra + 1}$`))
      expect(lines[lines.length - 1]).to.match(new RegExp(`: e: ${TRACE_RING_SIZE + extra - 1}$`))
      // A sequence number that was overwritten reads from the oldest held.
      expect(t.read(3, 1).lines[0]).to.match(new RegExp(`: e: ${extra}$`))
    })

    it('read(seq, max) continues where the last read stopped', () => {
      const t = new Tracer()
      t.on = true
      for (let i = 0; i < 5; i++) t.emit(0, 'e', String(i))
      const a = t.read(0, 2)
      expect(a.lines.map(l => l.replace(STAMP, ''))).to.deep.equal(['e: 0', 'e: 1'])
      expect(a.next).to.equal(2)
      const b = t.read(a.next)
      expect(b.lines.map(l => l.replace(STAMP, ''))).to.deep.equal(['e: 2', 'e: 3', 'e: 4'])
      expect(b.next).to.equal(5)
      expect(t.read(b.next)).to.deep.equal({ lines: [], next: 5 })
      t.emit(0, 'e', '5')
      const c = t.read(b.next)
      expect(c.lines.map(l => l.replace(STAMP, ''))).to.deep.equal(['e: 5'])
      expect(c.next).to.equal(6)
    })

    it('clear() drops what is held; later events are recorded and sequence numbers go on', () => {
      const t = new Tracer()
      t.on = true
      t.emit(0, 'e', 'a')
      t.emit(0, 'e', 'b')
      t.clear()
      expect(t.oldest()).to.equal(2)
      expect(t.head()).to.equal(2)
      expect(t.read(0)).to.deep.equal({ lines: [], next: 2 })
      t.emit(0, 'e', 'c')
      expect(events(t)).to.deep.equal(['e: c'])
      expect(t.read(0).next).to.equal(3)
    })

    it('waitForEvent calls back once, after the next event and not inside emit', async () => {
      const t = new Tracer()
      t.on = true
      let calls = 0
      t.waitForEvent(() => { calls++ })
      await tick()
      expect(calls, 'no event yet').to.equal(0)
      t.emit(0, 'e', '1')
      expect(calls, 'not synchronously inside emit').to.equal(0)
      await tick()
      expect(calls).to.equal(1)
      t.emit(0, 'e', '2')
      await tick()
      expect(calls, 'only once').to.equal(1)
    })

    it('wakes every waiter once, even for several events in a row', async () => {
      const t = new Tracer()
      t.on = true
      const calls: string[] = []
      t.waitForEvent(() => calls.push('a'))
      t.waitForEvent(() => calls.push('b'))
      t.emit(0, 'e', '1')
      t.emit(0, 'e', '2')
      t.emit(0, 'e', '3')
      await tick()
      await tick()
      expect(calls).to.deep.equal(['a', 'b'])
    })

    it('does not wake a waiter for an emit while tracing is off', async () => {
      const t = new Tracer()
      let calls = 0
      t.waitForEvent(() => { calls++ })
      t.emit(0, 'e', 'x')
      await tick()
      expect(calls).to.equal(0)
      t.on = true
      t.emit(0, 'e', 'y')
      await tick()
      expect(calls).to.equal(1)
    })

    it('cancelWait removes only that waiter', async () => {
      const t = new Tracer()
      t.on = true
      const calls: string[] = []
      const a = (): void => { calls.push('a') }
      const b = (): void => { calls.push('b') }
      t.waitForEvent(a)
      t.waitForEvent(b)
      t.cancelWait(a)
      t.emit(0, 'e', '1')
      await tick()
      expect(calls).to.deep.equal(['b'])
    })
  })

  describe('events of the allocator and the file data path', () => {
    it('records nothing while tracing is off', () => {
      const sb = makeSb({ size: MiB, nodes: 1, shift: 12 })
      const f = createFile(sb, '/f', 3 * 4096)
      expect(sb.truncate(f, 0)).to.equal(0)
      fail(sb, BASE_PFN + 9)
      expect(sb.unlink('/f')).to.equal(0)
      expect(sb.pool.tracer.head()).to.equal(0)
    })

    it('a write allocating 4K dpages one at a time: alloc_pages_node, then radix_tree_insert, per dpage', () => {
      const sb = makeSb({ size: MiB, nodes: 1, shift: 12 })
      sb.pool.tracer.on = true
      const f = createFile(sb, '/f', 3 * 4096)
      expect(f.ino).to.equal(2)
      const lines = events(sb.pool.tracer)
      expect(lines).to.deep.equal([
        'ino 2 dmem_alloc_pages_node: addr 0x100000000 node 0 try_max 1 result_nr 1',
        'ino 2 dmemfs_radix_tree_insert: index 0 entry 0x100000000',
        'ino 2 dmem_alloc_pages_node: addr 0x100001000 node 0 try_max 1 result_nr 1',
        'ino 2 dmemfs_radix_tree_insert: index 1 entry 0x100001000',
        'ino 2 dmem_alloc_pages_node: addr 0x100002000 node 0 try_max 1 result_nr 1',
        'ino 2 dmemfs_radix_tree_insert: index 2 entry 0x100002000'
      ])
      // The entry is the physical address of the dpage the file's table holds at that index.
      for (let i = 0; i < 3; i++) expect(pfnOfIndex(sb, f, i) * 4096).to.equal(0x100000000 + i * 4096)
    })

    it('with max_alloc_try_dpages 4, one allocation takes up to 4 dpages, no more than the write covers', () => {
      const sb = makeSb({ size: MiB, nodes: 1, shift: 12, maxAllocTry: 4 })
      sb.pool.tracer.on = true
      createFile(sb, '/f', 6 * 4096)
      expect(events(sb.pool.tracer)).to.deep.equal([
        'ino 2 dmem_alloc_pages_node: addr 0x100000000 node 0 try_max 4 result_nr 4',
        'ino 2 dmemfs_radix_tree_insert: index 0 entry 0x100000000',
        'ino 2 dmemfs_radix_tree_insert: index 1 entry 0x100001000',
        'ino 2 dmemfs_radix_tree_insert: index 2 entry 0x100002000',
        'ino 2 dmemfs_radix_tree_insert: index 3 entry 0x100003000',
        'ino 2 dmem_alloc_pages_node: addr 0x100004000 node 0 try_max 2 result_nr 2',
        'ino 2 dmemfs_radix_tree_insert: index 4 entry 0x100004000',
        'ino 2 dmemfs_radix_tree_insert: index 5 entry 0x100005000'
      ])
    })

    it('result_nr is what was contiguous: a poisoned dpage cuts the run short', () => {
      const sb = makeSb({ size: MiB, nodes: 1, shift: 12, maxAllocTry: 4 })
      fail(sb, BASE_PFN + 2) // before tracing: dpage 2 is out of service
      sb.pool.tracer.on = true
      createFile(sb, '/f', 4 * 4096)
      expect(events(sb.pool.tracer)).to.deep.equal([
        'ino 2 dmem_alloc_pages_node: addr 0x100000000 node 0 try_max 4 result_nr 2',
        'ino 2 dmemfs_radix_tree_insert: index 0 entry 0x100000000',
        'ino 2 dmemfs_radix_tree_insert: index 1 entry 0x100001000',
        'ino 2 dmem_alloc_pages_node: addr 0x100003000 node 0 try_max 2 result_nr 2',
        'ino 2 dmemfs_radix_tree_insert: index 2 entry 0x100003000',
        'ino 2 dmemfs_radix_tree_insert: index 3 entry 0x100004000'
      ])
    })

    it('a write into a hole inserts at the file index written; entries of 2M dpages are their addresses', () => {
      const sb = makeSb({ size: 8 * MiB, nodes: 1, shift: 21 })
      sb.pool.tracer.on = true
      createFile(sb, '/f', 4096, 3 * 2 * MiB + 100) // index 3 only
      createFile(sb, '/g', 2 * 2 * MiB) // indices 0 and 1
      expect(events(sb.pool.tracer)).to.deep.equal([
        'ino 2 dmem_alloc_pages_node: addr 0x100000000 node 0 try_max 1 result_nr 1',
        'ino 2 dmemfs_radix_tree_insert: index 3 entry 0x100000000',
        'ino 3 dmem_alloc_pages_node: addr 0x100200000 node 0 try_max 1 result_nr 1',
        'ino 3 dmemfs_radix_tree_insert: index 0 entry 0x100200000',
        'ino 3 dmem_alloc_pages_node: addr 0x100400000 node 0 try_max 1 result_nr 1',
        'ino 3 dmemfs_radix_tree_insert: index 1 entry 0x100400000'
      ])
    })

    it('on a 2-node pool, one event per node tried: addr 0x0 and result_nr 0 for a full node', () => {
      const sb = makeSb({ size: 2 * 4096, nodes: 2, shift: 12 })
      const a = createFile(sb, '/a', 2 * 4096) // ino 2, home node 0: fills node 0
      expect(a.node).to.equal(0)
      expect(sb.pool.nodes[0].free).to.equal(0)
      const b = createOpen(sb, '/b') // ino 3, home node 1
      const c = createOpen(sb, '/c') // ino 4, home node 0
      expect(lookup(sb, '/c').node).to.equal(0)
      sb.pool.tracer.on = true
      writeAt(sb, c, 4096, 0)
      expect(events(sb.pool.tracer)).to.deep.equal([
        'ino 4 dmem_alloc_pages_node: addr 0x0 node 0 try_max 1 result_nr 0',
        `ino 4 dmem_alloc_pages_node: addr ${hex(NODE1_PHYS)} node 1 try_max 1 result_nr 1`,
        `ino 4 dmemfs_radix_tree_insert: index 0 entry ${hex(NODE1_PHYS)}`
      ])
      // A file homed on node 1 gets node 1's last dpage at the first try.
      sb.pool.tracer.clear()
      writeAt(sb, b, 4096, 0)
      expect(events(sb.pool.tracer)).to.deep.equal([
        `ino 3 dmem_alloc_pages_node: addr ${hex(NODE1_PHYS + 4096)} node 1 try_max 1 result_nr 1`,
        `ino 3 dmemfs_radix_tree_insert: index 0 entry ${hex(NODE1_PHYS + 4096)}`
      ])
      // The pool is full: every node is tried, from the home node on, and the write fails.
      sb.pool.tracer.clear()
      expect(sb.write(b, Buffer.alloc(4096), 4096, 4096)).to.equal(ENOSPC)
      expect(events(sb.pool.tracer)).to.deep.equal([
        'ino 3 dmem_alloc_pages_node: addr 0x0 node 1 try_max 1 result_nr 0',
        'ino 3 dmem_alloc_pages_node: addr 0x0 node 0 try_max 1 result_nr 0'
      ])
    })

    it('truncate deletes each cut index from the tree, then frees its dpage', () => {
      const sb = makeSb({ size: MiB, nodes: 1, shift: 12 })
      const f = createFile(sb, '/f', 3 * 4096)
      const free = sb.pool.free
      sb.pool.tracer.on = true
      expect(sb.truncate(f, 4096)).to.equal(0)
      expect(events(sb.pool.tracer)).to.deep.equal([
        'ino 2 dmemfs_radix_tree_delete: index 1 entry 0x100001000',
        'ino 2 dmem_free_pages: addr 0x100001000 dpages_nr 1',
        'ino 2 dmemfs_radix_tree_delete: index 2 entry 0x100002000',
        'ino 2 dmem_free_pages: addr 0x100002000 dpages_nr 1'
      ])
      expect(sb.pool.free).to.equal(free + 2)
      // Growing a file allocates nothing and records nothing.
      sb.pool.tracer.clear()
      expect(sb.truncate(f, 10 * 4096)).to.equal(0)
      expect(events(sb.pool.tracer)).to.deep.equal([])
      // Cutting within the last dpage keeps it.
      expect(sb.truncate(f, 100)).to.equal(0)
      expect(events(sb.pool.tracer)).to.deep.equal([])
      expect(sb.truncate(f, 0)).to.equal(0)
      expect(events(sb.pool.tracer)).to.deep.equal([
        'ino 2 dmemfs_radix_tree_delete: index 0 entry 0x100000000',
        'ino 2 dmem_free_pages: addr 0x100000000 dpages_nr 1'
      ])
    })

    it('unlink of a closed file frees its dpages at once; of an open one, at the last close', () => {
      const sb = makeSb({ size: MiB, nodes: 1, shift: 12 })
      createFile(sb, '/a', 2 * 4096) // ino 2: dpages 0, 1
      const fh = createOpen(sb, '/b', 4096) // ino 3: dpage 2
      sb.pool.tracer.on = true
      expect(sb.unlink('/a')).to.equal(0)
      expect(events(sb.pool.tracer)).to.deep.equal([
        'ino 2 dmemfs_radix_tree_delete: index 0 entry 0x100000000',
        'ino 2 dmem_free_pages: addr 0x100000000 dpages_nr 1',
        'ino 2 dmemfs_radix_tree_delete: index 1 entry 0x100001000',
        'ino 2 dmem_free_pages: addr 0x100001000 dpages_nr 1'
      ])
      sb.pool.tracer.clear()
      expect(sb.unlink('/b')).to.equal(0)
      expect(events(sb.pool.tracer), 'still open').to.deep.equal([])
      expect(sb.release(fh)).to.equal(0)
      expect(events(sb.pool.tracer)).to.deep.equal([
        'ino 3 dmemfs_radix_tree_delete: index 0 entry 0x100002000',
        'ino 3 dmem_free_pages: addr 0x100002000 dpages_nr 1'
      ])
    })
  })

  describe('events of the memory-failure path', () => {
    it('free, used and already poisoned: dmem_memory_failure with the PFN and used=0/1', () => {
      const sb = makeSb({ size: MiB, nodes: 1, shift: 12 })
      const f = createFile(sb, '/f', 2 * 4096)
      const used = pfnOfIndex(sb, f, 1)
      sb.pool.tracer.on = true
      fail(sb, BASE_PFN + 0x20) // free
      fail(sb, used, MF_MUST_KILL) // used by ino 2
      fail(sb, BASE_PFN + 0x20) // already, free
      fail(sb, used) // already, still owned
      expect(events(sb.pool.tracer)).to.deep.equal([
        'dmem_memory_failure: pfn=0x100020 used=0',
        `ino 2 dmem_memory_failure: pfn=${hex(used)} used=1`,
        'dmem_memory_failure: pfn=0x100020 used=0',
        `ino 2 dmem_memory_failure: pfn=${hex(used)} used=1`
      ])
      expect(used).to.equal(BASE_PFN + 1)
    })

    it('gives the failing frame, not its dpage, inside a 2M dpage', () => {
      const sb = makeSb({ size: 8 * MiB, nodes: 1, shift: 21 })
      createFile(sb, '/f', 2 * MiB)
      sb.pool.tracer.on = true
      fail(sb, BASE_PFN + 7)
      fail(sb, BASE_PFN + 512 + 3)
      expect(events(sb.pool.tracer)).to.deep.equal([
        'ino 2 dmem_memory_failure: pfn=0x100007 used=1',
        'dmem_memory_failure: pfn=0x100203 used=0'
      ])
    })
  })

  describe('control files', () => {
    let sb: Superblock
    let dir: ControlDir

    beforeEach(() => {
      sb = makeSb({ size: MiB, nodes: 1, shift: 12 })
      dir = new ControlDir(sb, fakeEnv())
    })

    function file (name: string): ControlFile {
      const f = dir.files.get(name)
      if (!f) throw new Error(`no control file ${name}`)
      return f
    }

    function write (name: string, text: string): WriteResult {
      return file(name).write!(text) as WriteResult // not mce: answers at once
    }

    it('tracing_on reads 0 by default, and 0/1 written turn tracing off/on', () => {
      expect(file('tracing_on').mode).to.equal(0o600)
      expect(file('tracing_on').render()).to.equal('0\n')
      for (const [text, on] of [['1', true], ['0\n', false], ['1\n', true], ['0', false]] as const) {
        expect(write('tracing_on', text), JSON.stringify(text)).to.deep.equal({ errno: 0, reply: `${on ? 1 : 0}\n` })
        expect(sb.pool.tracer.on).to.equal(on)
        expect(file('tracing_on').render()).to.equal(on ? '1\n' : '0\n')
      }
    })

    it('tracing_on refuses anything but 0 or 1 with EINVAL and leaves tracing as it was', () => {
      for (const on of [false, true]) {
        sb.pool.tracer.on = on
        for (const text of ['', '\n', '2', '01', '1 ', ' 1', 'on', 'yes', '1\n\n', 'true']) {
          const r = write('tracing_on', text)
          expect(r.errno, JSON.stringify(text)).to.equal(EINVAL)
          expect(r.reply).to.equal('error: write 0 or 1\n')
          expect(sb.pool.tracer.on).to.equal(on)
        }
      }
    })

    it('trace renders the header and the buffered events, oldest first', () => {
      expect(file('trace').render()).to.equal(
        '# tracer: dmem\n# entries-in-buffer: 0\n# TIMESTAMP: [ino N] EVENT: DETAILS\n')
      write('tracing_on', '1')
      createFile(sb, '/f', 4096)
      fail(sb, BASE_PFN + 9)
      const lines = file('trace').render().split('\n')
      expect(lines.slice(0, 3)).to.deep.equal(
        ['# tracer: dmem', '# entries-in-buffer: 3', '# TIMESTAMP: [ino N] EVENT: DETAILS'])
      expect(lines.slice(3)).to.have.length(4) // three events and the final newline's empty string
      expect(lines[6]).to.equal('')
      expect(lines[3]).to.match(/^\d+\.\d{6}: ino 2 dmem_alloc_pages_node: addr 0x100000000 node 0 try_max 1 result_nr 1$/)
      expect(lines[4]).to.match(/^\d+\.\d{6}: ino 2 dmemfs_radix_tree_insert: index 0 entry 0x100000000$/)
      expect(lines[5]).to.match(/^\d+\.\d{6}: dmem_memory_failure: pfn=0x100009 used=0$/)
      expect(lines.slice(3, 6)).to.deep.equal(sb.pool.tracer.read(0).lines)
    })

    it('trace is cleared by a write of an empty string or a newline, and by truncation', () => {
      write('tracing_on', '1')
      const fill = (): void => {
        createFile(sb, `/f${sb.pool.tracer.head()}`, 4096)
        expect(file('trace').render()).to.include('# entries-in-buffer: 2\n')
      }
      fill()
      expect(write('trace', '')).to.deep.equal({ errno: 0, reply: '' })
      expect(file('trace').render()).to.include('# entries-in-buffer: 0\n')
      fill()
      expect(write('trace', '\n').errno).to.equal(0)
      expect(file('trace').render()).to.include('# entries-in-buffer: 0\n')
      fill()
      file('trace').truncate!()
      expect(file('trace').render()).to.equal(
        '# tracer: dmem\n# entries-in-buffer: 0\n# TIMESTAMP: [ino N] EVENT: DETAILS\n')
      // Clearing leaves tracing on.
      expect(sb.pool.tracer.on).to.equal(true)
      fill()
    })

    it('trace_pipe is read-only and streams from the pool\'s tracer', () => {
      const pipe = file('trace_pipe')
      expect(pipe.mode).to.equal(0o400)
      expect(pipe.write).to.equal(undefined)
      expect(pipe.stream).to.equal(sb.pool.tracer)
      // Only files that say so act on truncation: tracing_on and trace_pipe do not.
      expect(pipe.truncate).to.equal(undefined)
      expect(file('tracing_on').truncate).to.equal(undefined)
    })
  })

  describe('trace truncation through the FUSE adapter', () => {
    it('truncate(2) by path and ftruncate(2) on a handle both clear trace; others take only O_TRUNC\'s size 0', () => {
      const sb = makeSb({ size: MiB, nodes: 1, shift: 12 })
      const ops = new FuseAdapter(sb, new ControlDir(sb, fakeEnv())).operations()
      sb.pool.tracer.on = true
      const results: number[] = []
      createFile(sb, '/a', 4096)
      ops.truncate!('/.dmem/trace', 0, err => results.push(err))
      expect(sb.pool.tracer.read(0).lines).to.deep.equal([])
      createFile(sb, '/b', 4096)
      let fh = -1
      ops.open!('/.dmem/trace', 1, (err, h) => { results.push(err); fh = h! })
      ops.ftruncate!('/.dmem/trace', fh, 0, err => results.push(err))
      expect(sb.pool.tracer.read(0).lines).to.deep.equal([])
      ops.release!('/.dmem/trace', fh, err => results.push(err))
      createFile(sb, '/c', 4096)
      ops.open!('/.dmem/mce', 1, (err, h) => { results.push(err); fh = h! })
      // ftruncate(2) on mce means nothing: refused; O_TRUNC (truncate by path to 0) is what `echo >` does.
      ops.ftruncate!('/.dmem/mce', fh, 0, err => results.push(err))
      ops.truncate!('/.dmem/tracing_on', 0, err => results.push(err))
      ops.truncate!('/.dmem/tracing_on', 5, err => results.push(err))
      ops.truncate!('/.dmem/stat', 0, err => results.push(err))
      ops.release!('/.dmem/mce', fh, err => results.push(err))
      expect(sb.pool.tracer.read(0).lines).to.have.length(2)
      expect(sb.pool.tracer.on).to.equal(true)
      expect(results).to.deep.equal([0, 0, 0, 0, 0, EINVAL, 0, EINVAL, EACCES, 0])
    })
  })

  describe('trace_pipe reads through the FUSE adapter', () => {
    const PIPE = '/.dmem/trace_pipe'
    let sb: Superblock
    let open: Array<{ ops: ReturnType<FuseAdapter['operations']>, fh: number }>

    beforeEach(() => {
      sb = makeSb({ size: MiB, nodes: 1, shift: 12 })
      open = []
    })

    afterEach(() => {
      // Release every handle a test left open, which also answers a parked read.
      for (const { ops, fh } of open) ops.release!(PIPE, fh, () => {})
    })

    function adapter (callerPid = 0): ReturnType<FuseAdapter['operations']> {
      const ctx = callerPid ? { uid: 0, gid: 0, pid: callerPid, umask: 0 } : null
      return new FuseAdapter(sb, new ControlDir(sb, fakeEnv()), () => {}, () => ctx).operations()
    }

    function openPipe (ops: ReturnType<FuseAdapter['operations']>): number {
      let got: { err: number, fh?: number, flags?: number } | null = null
      ops.open!(PIPE, 0, (err, fh, flags) => { got = { err, fh, flags } })
      expect(got).to.not.equal(null)
      const { err, fh, flags } = got!
      expect(err).to.equal(0)
      expect(flags, 'direct_io').to.equal(1)
      open.push({ ops, fh: fh! })
      return fh!
    }

    interface PendingRead { result: number | null, buf: Buffer, text (): string }

    function read (ops: ReturnType<FuseAdapter['operations']>, fh: number, len = 4096): PendingRead {
      const r: PendingRead = {
        result: null,
        buf: Buffer.alloc(len),
        text: () => r.buf.toString('utf8', 0, Math.max(0, r.result ?? 0))
      }
      ops.read!(PIPE, fh, r.buf, len, 0, n => {
        expect(r.result, 'answered once').to.equal(null)
        r.result = n
      })
      return r
    }

    it('a read parks until the next event and returns it; events from before the open are not read', async () => {
      sb.pool.tracer.on = true
      createFile(sb, '/before', 4096) // ino 2
      const ops = adapter()
      const fh = openPipe(ops)
      const r = read(ops, fh)
      await sleep(50)
      expect(r.result, 'parked').to.equal(null)
      createFile(sb, '/after', 4096) // ino 3: two events
      expect(r.result, 'answered after the request, not inside the allocator').to.equal(null)
      await tick()
      await tick()
      expect(r.result).to.be.greaterThan(0)
      const lines = r.text().split('\n')
      expect(lines[lines.length - 1]).to.equal('')
      expect(lines.slice(0, -1).map(l => l.replace(STAMP, ''))).to.deep.equal([
        'ino 3 dmem_alloc_pages_node: addr 0x100001000 node 0 try_max 1 result_nr 1',
        'ino 3 dmemfs_radix_tree_insert: index 0 entry 0x100001000'
      ])
      // The next read waits again: nothing new.
      const r2 = read(ops, fh)
      await sleep(20)
      expect(r2.result).to.equal(null)
      fail(sb, BASE_PFN + 0x30)
      await tick()
      await tick()
      expect(r2.text()).to.match(/^\d+\.\d{6}: dmem_memory_failure: pfn=0x100030 used=0\n$/)
    })

    it('events already there are returned at once; text longer than the read is split across reads', async () => {
      const ops = adapter()
      const fh = openPipe(ops)
      sb.pool.tracer.on = true
      createFile(sb, '/f', 3 * 4096) // six events
      const whole = sb.pool.tracer.read(0).lines.map(l => l + '\n').join('')
      let got = ''
      while (got.length < whole.length) {
        const r = read(ops, fh, 50)
        expect(r.result, 'answered at once').to.not.equal(null)
        expect(r.result).to.be.within(1, 50)
        got += r.text()
      }
      expect(got).to.equal(whole)
    })

    it('each descriptor reads every event once', async () => {
      sb.pool.tracer.on = true
      const ops = adapter()
      const fh1 = openPipe(ops)
      const fh2 = openPipe(ops)
      createFile(sb, '/f', 4096)
      const a = read(ops, fh1)
      const b = read(ops, fh2)
      expect(a.text()).to.equal(b.text())
      expect(a.text().split('\n')).to.have.length(3)
      const again = read(ops, fh1)
      await tick()
      expect(again.result, 'nothing new for fh1').to.equal(null)
    })

    it('release answers a parked read with 0 (end of file)', async () => {
      const ops = adapter()
      const fh = openPipe(ops)
      const r = read(ops, fh)
      await tick()
      expect(r.result).to.equal(null)
      let released: number | null = null
      ops.release!(PIPE, fh, err => { released = err })
      open = []
      expect(released).to.equal(0)
      expect(r.result).to.equal(0)
      // A later event must not answer it again (read() asserts a single answer).
      sb.pool.tracer.on = true
      createFile(sb, '/f', 4096)
      await tick()
    })

    it('a parked read of a caller with a signal pending (here: gone) is answered EINTR', async function () {
      const gone = spawnSync('true').pid
      const ops = adapter(gone)
      const fh = openPipe(ops)
      const r = read(ops, fh)
      const start = Date.now()
      while (r.result === null && Date.now() - start < 3000) await sleep(20)
      expect(r.result).to.equal(EINTR)
      expect(Date.now() - start).to.be.below(1500)
      // The wait was cancelled: an event now does not answer the read a second time.
      sb.pool.tracer.on = true
      createFile(sb, '/f', 4096)
      await tick()
      await tick()
      // And the descriptor still reads: the event is there.
      const r2 = read(ops, fh)
      expect(r2.text()).to.match(/dmem_alloc_pages_node/)
    })

    it('a parked read of a caller without a signal pending keeps waiting, and then gets the event', async function () {
      const ops = adapter(process.pid)
      const fh = openPipe(ops)
      const r = read(ops, fh)
      await sleep(700) // several of the daemon's signal checks
      expect(r.result).to.equal(null)
      sb.pool.tracer.on = true
      createFile(sb, '/f', 4096)
      await tick()
      await tick()
      expect(r.text()).to.match(/dmemfs_radix_tree_insert: index 0 entry 0x100000000\n$/)
    })
  })
})
