// Tracing on a real mount: .dmem/tracing_on, .dmem/trace with the values of allocation, free and memory
// failure events checked against `dmemfs pfn`, clearing, a real `cat .dmem/trace_pipe` reader that gets
// events written after it started and dies promptly of SIGTERM, and `-o trace`.

import { expect } from 'chai'
import { ChildProcess, spawn } from 'child_process'
import * as fs from 'fs'
import { DmemfsMount, isMounted, sh, sleep, stopAll } from './harness'
import { pfnRuns } from './children'

const STAMP = /^\d+\.\d{6}: /
const HEADER = ['# tracer: dmem', /^# entries-in-buffer: \d+$/, '# TIMESTAMP: [ino N] EVENT: DETAILS']

interface Trace {
  entries: number // what the header says
  events: string[] // the event lines without their timestamps
}

function readTrace (m: DmemfsMount): Trace {
  const lines = m.ok('cat .dmem/trace').split('\n')
  expect(lines.pop()).to.equal('') // ends with a newline
  expect(lines[0]).to.equal(HEADER[0])
  expect(lines[1]).to.match(HEADER[1] as RegExp)
  expect(lines[2]).to.equal(HEADER[2])
  const events = lines.slice(3).map(l => {
    expect(l, l).to.match(STAMP)
    return l.replace(STAMP, '')
  })
  const entries = Number(lines[1].split(': ')[1])
  expect(entries).to.equal(events.length)
  return { entries, events }
}

/** The PFN of every 4K frame of a file on a 4K-dpage mount, by file page index, from `dmemfs pfn --json`. */
function framePfns (file: string): number[] {
  const pfns: number[] = []
  for (const run of pfnRuns(file)) {
    for (let i = 0; i < run.frames; i++) pfns[run.offset / 4096 + i] = parseInt(run.pfn, 16) + i
  }
  return pfns
}

function addr (pfn: number): string {
  return '0x' + (pfn * 4096).toString(16) // not << 12: addresses pass 2^32
}

const children = new Set<ChildProcess>()

function killChildren (): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  children.clear()
}

async function waitFor (what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

/** Whether process `pid` has `file` open. */
function hasOpen (pid: number, file: string): boolean {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).some(fd => {
      try {
        return fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === file
      } catch {
        return false
      }
    })
  } catch {
    return false
  }
}

describe('tracing on a mount', function () {
  afterEach(async function () {
    killChildren()
    await stopAll()
  })

  it('is off by default: writes, frees and memory failures leave trace empty', async function () {
    const m = await DmemfsMount.start('size=16M')
    expect(m.ok('cat .dmem/tracing_on')).to.equal('0\n')
    m.ok('head -c 12288 /dev/urandom > a && truncate -s 0 a && head -c 8192 /dev/urandom > b && rm a')
    m.ok('echo 0x100fff > .dmem/mce')
    expect(readTrace(m)).to.deep.equal({ entries: 0, events: [] })
  })

  it('records allocation, insert, delete, free and memory failure with the values dmemfs pfn gives', async function () {
    const m = await DmemfsMount.start('size=16M')
    m.ok('echo 1 > .dmem/tracing_on')
    expect(m.ok('cat .dmem/tracing_on')).to.equal('1\n')

    m.ok('head -c 12288 /dev/urandom > f')
    const ino = fs.statSync(m.path('f')).ino
    const pfns = framePfns(m.path('f'))
    expect(pfns).to.have.length(3)
    const write = readTrace(m).events
    expect(write).to.deep.equal([0, 1, 2].flatMap(i => [
      `ino ${ino} dmem_alloc_pages_node: addr ${addr(pfns[i])} node 0 try_max 1 result_nr 1`,
      `ino ${ino} dmemfs_radix_tree_insert: index ${i} entry ${addr(pfns[i])}`
    ]))

    m.ok('truncate -s 4096 f')
    expect(readTrace(m).events.slice(write.length)).to.deep.equal([1, 2].flatMap(i => [
      `ino ${ino} dmemfs_radix_tree_delete: index ${i} entry ${addr(pfns[i])}`,
      `ino ${ino} dmem_free_pages: addr ${addr(pfns[i])} dpages_nr 1`
    ]))

    m.ok('echo > .dmem/trace')
    expect(readTrace(m)).to.deep.equal({ entries: 0, events: [] })

    // The pool's last frame (16M from 4 GiB) is free; the file's first is used.
    m.ok('echo 0x100fff > .dmem/mce')
    m.ok(`echo 0x${pfns[0].toString(16)} > .dmem/mce`)
    m.ok('echo 0x100fff > .dmem/mce') // already poisoned
    expect(readTrace(m).events).to.deep.equal([
      'dmem_memory_failure: pfn=0x100fff used=0',
      `ino ${ino} dmem_memory_failure: pfn=0x${pfns[0].toString(16)} used=1`,
      'dmem_memory_failure: pfn=0x100fff used=0'
    ])

    // rm of the file deletes its last index; its dpage (poisoned) is freed to nobody.
    m.ok('echo > .dmem/trace && rm f')
    expect(readTrace(m).events).to.deep.equal([
      `ino ${ino} dmemfs_radix_tree_delete: index 0 entry ${addr(pfns[0])}`,
      `ino ${ino} dmem_free_pages: addr ${addr(pfns[0])} dpages_nr 1`
    ])
  })

  it('clears on `echo > trace` and on truncation; tracing_on 0 stops it; bad tracing_on input is EINVAL', async function () {
    const m = await DmemfsMount.start('size=16M')
    m.ok('echo 1 > .dmem/tracing_on && echo hi > a')
    expect(readTrace(m).entries).to.equal(2)
    m.ok('echo > .dmem/trace')
    expect(readTrace(m).entries).to.equal(0)
    m.ok('echo hi > b')
    expect(readTrace(m).entries).to.equal(2)
    m.ok(': > .dmem/trace') // open with O_TRUNC, nothing written
    expect(readTrace(m).entries).to.equal(0)
    m.ok('echo hi > c')
    m.ok('truncate -s 0 .dmem/trace')
    expect(readTrace(m).entries).to.equal(0)

    for (const bad of ['2', 'on', '']) {
      const r = m.sh(`echo '${bad}' > .dmem/tracing_on`)
      expect(r.status, bad).to.not.equal(0)
      expect(r.stderr, bad).to.match(/Invalid argument/)
      expect(m.ok('cat .dmem/tracing_on')).to.equal('1\n')
    }
    m.ok('echo 0 > .dmem/tracing_on')
    expect(m.ok('cat .dmem/tracing_on')).to.equal('0\n')
    m.ok('echo hi > d && rm a b c d')
    expect(readTrace(m).entries).to.equal(0)
    expect(m.stat().free_dpages).to.equal(m.stat().total_dpages)
  })

  it('trace_pipe: a reader gets events written after it started, and dies promptly of SIGTERM', async function () {
    const m = await DmemfsMount.start('size=16M')
    m.ok('echo 1 > .dmem/tracing_on && head -c 4096 /dev/urandom > before')
    const beforeIno = fs.statSync(m.path('before')).ino

    const pipe = m.path('.dmem/trace_pipe')
    const cat = spawn('cat', [pipe], { stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(cat)
    let out = ''
    let err = ''
    cat.stdout!.on('data', (d: Buffer) => { out += d.toString() })
    cat.stderr!.on('data', (d: Buffer) => { err += d.toString() })
    const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null, at: number }>(resolve =>
      cat.on('exit', (code, signal) => resolve({ code, signal, at: Date.now() })))
    await waitFor('cat to open trace_pipe', () => hasOpen(cat.pid!, pipe))
    await sleep(300) // and to sit in its read, parked in the daemon
    expect(out, 'nothing before an event').to.equal('')
    expect(cat.exitCode).to.equal(null)

    m.ok('head -c 4096 /dev/urandom > after')
    const ino = fs.statSync(m.path('after')).ino
    const pfn = framePfns(m.path('after'))[0]
    const insert = `ino ${ino} dmemfs_radix_tree_insert: index 0 entry ${addr(pfn)}`
    await waitFor('the event on cat\'s stdout', () => out.includes(insert + '\n'))
    const lines = out.trim().split('\n')
    for (const l of lines) expect(l, l).to.match(STAMP)
    expect(lines.map(l => l.replace(STAMP, ''))).to.deep.equal([
      `ino ${ino} dmem_alloc_pages_node: addr ${addr(pfn)} node 0 try_max 1 result_nr 1`,
      insert
    ])
    expect(out, 'events from before the reader opened').to.not.include(`ino ${beforeIno} `)

    // More events stream to the same reader.
    m.ok('echo 0x100fff > .dmem/mce')
    await waitFor('the memory-failure event', () => out.includes('dmem_memory_failure: pfn=0x100fff used=0\n'))

    // Parked in a read the daemon holds, cat can die only when the daemon answers: it must, promptly.
    await sleep(100)
    const killed = Date.now()
    cat.kill('SIGTERM')
    const timeout = sleep(5000).then(() => null)
    const end = await Promise.race([exited, timeout])
    expect(end, 'cat exited after SIGTERM').to.not.equal(null)
    expect(end!.signal).to.equal('SIGTERM')
    expect(end!.at - killed).to.be.below(2000)
    expect(err).to.equal('')

    // The mount still works, and unmounts cleanly.
    m.ok('echo still > works && cat works')
    expect(readTrace(m).events.some(e => e.startsWith(`ino ${ino} `))).to.equal(true)
    expect(await m.stop()).to.equal(0)
    expect(isMounted(m.mnt)).to.equal(false)
  })

  it('trace_pipe: two readers each get every event', async function () {
    const m = await DmemfsMount.start('size=16M')
    m.ok('echo 1 > .dmem/tracing_on')
    const pipe = m.path('.dmem/trace_pipe')
    const outs = ['', '']
    const readers = [0, 1].map(i => {
      const c = spawn('cat', [pipe], { stdio: ['ignore', 'pipe', 'ignore'] })
      children.add(c)
      c.stdout!.on('data', (d: Buffer) => { outs[i] += d.toString() })
      return c
    })
    for (const c of readers) await waitFor('a reader to open trace_pipe', () => hasOpen(c.pid!, pipe))
    m.ok('head -c 8192 /dev/urandom > x')
    await waitFor('both readers', () => outs.every(o => o.split('\n').length === 5))
    expect(outs[0]).to.equal(outs[1])
    expect(outs[0].match(/dmemfs_radix_tree_insert/g)).to.have.length(2)
    for (const c of readers) c.kill('SIGINT')
    await waitFor('both readers to exit', () => readers.every(c => c.exitCode !== null || c.signalCode !== null), 3000)
  })

  for (const [pagesize, shift] of [['4K', 12], ['2M', 21]] as const) {
    it(`-o trace (pagesize=${pagesize}) turns tracing on from mount, dmem_alloc_init first`, async function () {
      const m = await DmemfsMount.start(`trace,pagesize=${pagesize},size=16M`)
      expect(m.ok('cat .dmem/tracing_on')).to.equal('1\n')
      m.ok('echo hi > f')
      const { events } = readTrace(m)
      expect(events[0]).to.equal(`dmem_alloc_init: dpage_shift ${shift}`)
      expect(events.slice(1).map(e => e.replace(/^ino \d+ /, '').split(':')[0])).to.deep.equal(
        ['dmem_alloc_pages_node', 'dmemfs_radix_tree_insert'])
    })
  }
})
