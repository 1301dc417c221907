// The kernel's siginfo for a memory-failure SIGBUS, injected into real processes: a C target (compiled
// here from test/integration/sigbus/target.c) whose SA_SIGINFO handler prints si_code, si_addr and
// si_addr_lsb. No mount: the delivery does not depend on one.

import { expect } from 'chai'
import { ChildProcess, spawn, spawnSync } from 'child_process'
import * as fs from 'fs'
import * as path from 'path'
import { ROOT, tempDir } from './harness'
import { BUS_MCEERR_AO, BUS_MCEERR_AR, deliverSigbus, loadInjector, sendMceSigbus, SigbusNotSent, SigbusResult } from '../../src/mce/siginfo'

const SOURCES = path.join(ROOT, 'test', 'integration', 'sigbus')
const SI_USER = 0
const SI_TKILL = -6
const ADDR = 0x7f3a1c200000n

interface Target {
  pid: number
  proc: ChildProcess // the shell it runs under, or itself; its stdin is the target's
  ready: Record<string, string>
  output: () => string
}

interface Sigbus { code: number, addr: bigint, lsb: number, tid: number, pid: number }

const children = new Set<ChildProcess>()
const pids = new Set<number>()
let bin = ''
let tracer = ''

function endAll (): void {
  for (const pid of pids) {
    try { process.kill(pid, 'SIGKILL') } catch { /* already gone */ }
  }
  for (const c of children) c.kill('SIGKILL')
  pids.clear()
}
process.on('exit', endAll)

function compile (dir: string, name: string): string {
  const out = path.join(dir, name)
  const r = spawnSync('cc', ['-O1', '-pthread', '-Wall', '-o', out, path.join(SOURCES, `${name}.c`)], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`cc ${name}.c failed: ${r.stderr}`)
  return out
}

/** Output of `proc` so far, and a wait for a line matching `re`. */
function collect (proc: ChildProcess): () => string {
  let out = ''
  proc.stdout!.on('data', (d: Buffer) => { out += d.toString() })
  proc.stderr!.on('data', (d: Buffer) => { out += d.toString() })
  return () => out
}

async function waitFor (output: () => string, re: RegExp, ms = 5000): Promise<RegExpExecArray> {
  const deadline = Date.now() + ms
  for (;;) {
    const m = re.exec(output())
    if (m) return m
    if (Date.now() > deadline) throw new Error(`no ${re} within ${ms} ms; output:\n${output()}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

function fields (text: string): Record<string, string> {
  const r: Record<string, string> = {}
  for (const pair of text.trim().split(' ')) {
    const [k, v] = pair.split('=')
    if (v !== undefined) r[k] = v
  }
  return r
}

/** Starts the target in `mode`, through a shell unless `direct`: Node reaps its own children's ptrace stops
 *  as exits, so the injector refuses to trace a child of the caller (the daemon's victims never are). */
async function startTarget (mode: string, args: string[] = [], direct = false): Promise<Target> {
  // An asynchronous list's stdin is /dev/null unless redirected: the target keeps the shell's.
  const proc = direct
    ? spawn(bin, [mode, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    : spawn('sh', ['-c', 'exec 3<&0; "$@" <&3 3<&- & wait', 'sh', bin, mode, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  children.add(proc)
  proc.on('exit', () => children.delete(proc))
  const output = collect(proc)
  const m = await waitFor(output, /^ready (.*)$/m)
  const ready = fields(m[1])
  const pid = Number(ready.pid)
  pids.add(pid)
  return { pid, proc, ready, output }
}

/** The `nth` SIGBUS the target's handler reported. */
async function sigbusOf (t: Target, nth = 1): Promise<Sigbus> {
  const lines = () => t.output().split('\n').filter(l => l.startsWith('sigbus ') && l.length > 0)
  await waitFor(() => lines().length >= nth ? 'yes' : '', /yes/)
  const f = fields(lines()[nth - 1].slice('sigbus '.length))
  const addr = f.addr === '(nil)' ? 0n : BigInt(f.addr)
  return { code: Number(f.code), addr, lsb: Number(f.lsb), tid: Number(f.tid), pid: Number(f.pid) }
}

function expectPtrace (r: SigbusResult | SigbusNotSent): void {
  expect(r, JSON.stringify(r)).to.deep.equal({ way: 'ptrace' })
}

/** What the kernel's kill_proc() puts in the siginfo. */
function expectKernelSiginfo (s: Sigbus, code: number, addr: bigint, tid: number): void {
  expect({ code: s.code, addr: s.addr, lsb: s.lsb, tid: s.tid }).to.deep.equal({ code, addr, lsb: 12, tid })
}

function leaderTakesSigbus (pid: number): boolean {
  const blocked = /^SigBlk:\s*([0-9a-f]+)$/m.exec(fs.readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8'))![1]
  return ((BigInt('0x' + blocked) >> 6n) & 1n) === 0n // SIGBUS is 7
}

function processState (pid: number): string {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  return /^State:\s*(\S)/m.exec(status)![1]
}

describe('siginfo: SIGBUS with the kernel\'s si_code, si_addr and si_addr_lsb', function () {
  this.timeout(30000)

  before(function () {
    const dir = tempDir('dmemfs-siginfo-')
    bin = compile(dir, 'target')
    tracer = compile(dir, 'tracer')
  })

  afterEach(endAll)

  it('is built at install', function () {
    expect(typeof loadInjector()).to.equal('object', String(loadInjector()))
  })

  for (const [name, code] of [['AO', BUS_MCEERR_AO], ['AR', BUS_MCEERR_AR]] as const) {
    it(`delivers BUS_MCEERR_${name} by ptrace to a process blocked in a long sleep`, async function () {
      const t = await startTarget('sleep')
      expectPtrace(await sendMceSigbus(t.pid, code, ADDR))
      expectKernelSiginfo(await sigbusOf(t), code, ADDR, t.pid)
    })

    it(`delivers BUS_MCEERR_${name} by ptrace to a spinning process`, async function () {
      const t = await startTarget('spin')
      expectPtrace(await sendMceSigbus(t.pid, code, ADDR + 0x5000n))
      expectKernelSiginfo(await sigbusOf(t), code, ADDR + 0x5000n, t.pid)
    })
  }

  it('delivers AO then AR to the thread group leader of a multi-threaded process', async function () {
    const t = await startTarget('threads')
    expect(fs.readdirSync(`/proc/${t.pid}/task`)).to.have.length(4)
    expectPtrace(await sendMceSigbus(t.pid, BUS_MCEERR_AO, ADDR))
    expectKernelSiginfo(await sigbusOf(t, 1), BUS_MCEERR_AO, ADDR, t.pid)
    // The handler prints before it returns: until then the leader blocks SIGBUS, and the injector would
    // rightly choose another thread.
    await waitFor(() => leaderTakesSigbus(t.pid) ? 'yes' : '', /yes/)
    expectPtrace(await sendMceSigbus(t.pid, BUS_MCEERR_AR, ADDR + 0x1000n))
    expectKernelSiginfo(await sigbusOf(t, 2), BUS_MCEERR_AR, ADDR + 0x1000n, t.pid)
  })

  it('delivers AO to the thread that chose PR_MCE_KILL_EARLY, AR to the leader', async function () {
    const t = await startTarget('early')
    const early = Number(t.ready.early)
    expect(early).to.not.equal(t.pid)
    expectPtrace(await sendMceSigbus(t.pid, BUS_MCEERR_AO, ADDR))
    expectKernelSiginfo(await sigbusOf(t, 1), BUS_MCEERR_AO, ADDR, early)
    expectPtrace(await sendMceSigbus(t.pid, BUS_MCEERR_AR, ADDR))
    expectKernelSiginfo(await sigbusOf(t, 2), BUS_MCEERR_AR, ADDR, t.pid)
  })

  it('delivers to a thread that takes SIGBUS when the leader blocks it', async function () {
    const t = await startTarget('block')
    expectPtrace(await sendMceSigbus(t.pid, BUS_MCEERR_AO, ADDR))
    const s = await sigbusOf(t)
    expect(s.tid).to.not.equal(t.pid)
    expectKernelSiginfo(s, BUS_MCEERR_AO, ADDR, s.tid)
  })

  it('delivers to a live thread when the leader has exited (pthread_exit)', async function () {
    const t = await startTarget('noleader')
    await waitFor(() => processState(t.pid), /^Z$/)
    const other = fs.readdirSync(`/proc/${t.pid}/task`).map(Number).find(tid => tid !== t.pid)
    expectPtrace(await sendMceSigbus(t.pid, BUS_MCEERR_AO, ADDR))
    expectKernelSiginfo(await sigbusOf(t), BUS_MCEERR_AO, ADDR, other!)
  })

  it('when every thread blocks SIGBUS, delivers to the first that unblocks it', async function () {
    // The leader blocks it for good, the other thread for 300 ms, as a thread still in its handler would.
    const t = await startTarget('blockall')
    const tids = fs.readdirSync(`/proc/${t.pid}/task`).map(Number)
    expect(tids).to.have.length(2)
    expectPtrace(await sendMceSigbus(t.pid, BUS_MCEERR_AO, ADDR))
    const s = await sigbusOf(t)
    expect(s.tid).to.equal(tids.find(tid => tid !== t.pid))
    expectKernelSiginfo(s, BUS_MCEERR_AO, ADDR, s.tid)
  })

  it('passes other signals taken meanwhile through with their own siginfo, none lost', async function () {
    // The target keeps a SIGILL pending with every signal blocked most of the time: SIGBUS lands beside
    // it, and SIGILL (a lower synchronous signal) is taken first, at a stop the injector must pass on.
    const t = await startTarget('others')
    expectPtrace(await sendMceSigbus(t.pid, BUS_MCEERR_AR, ADDR))
    expectKernelSiginfo(await sigbusOf(t), BUS_MCEERR_AR, ADDR, t.pid)
    const m = await waitFor(t.output, /^sigill (.*)$/m)
    const f = fields(m[1])
    expect(Number(f.sent)).to.be.at.least(100)
    expect({ lost: f.lost, altered: f.altered }).to.deep.equal({ lost: '0', altered: '0' })
  })

  it('falls back to kill(2) for a process another tracer holds: SI_USER, and the reason', async function () {
    const t = await startTarget('sleep')
    const tr = spawn(tracer, [String(t.pid)], { stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(tr)
    tr.on('exit', () => children.delete(tr))
    await waitFor(collect(tr), /^traced$/m)
    const r = await sendMceSigbus(t.pid, BUS_MCEERR_AO, ADDR)
    expect(r.way).to.equal('kill')
    expect(r.error).to.match(/PTRACE_SEIZE refused \(already traced, or not permitted\): Operation not permitted/)
    const s = await sigbusOf(t)
    expect({ code: s.code, pid: s.pid, tid: s.tid }).to.deep.equal({ code: SI_USER, pid: process.pid, tid: t.pid })
  })

  it('returns an error, without throwing, for a process that is gone', async function () {
    const gone = spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim()
    const r = await sendMceSigbus(Number(gone), BUS_MCEERR_AO, ADDR)
    expect(r).to.deep.equal({ way: 'none', error: 'no such process; kill(2): ESRCH' })
  })

  it('lets a stopped process go with SIGBUS pending as sent, and does not wait for SIGCONT', async function () {
    const t = await startTarget('sleep')
    process.kill(t.pid, 'SIGSTOP')
    await waitFor(() => processState(t.pid), /^T$/)
    const r = await sendMceSigbus(t.pid, BUS_MCEERR_AO, ADDR)
    expect(r).to.deep.equal({ way: 'kill', error: 'the process is stopped (job control): SIGBUS stays pending as sent by tgkill(2)' })
    // Detaching wakes it to re-enter the group stop: it stays stopped and has not taken SIGBUS.
    await waitFor(() => processState(t.pid), /^T$/)
    await new Promise(resolve => setTimeout(resolve, 100))
    expect(processState(t.pid)).to.equal('T')
    expect(t.output()).to.not.include('sigbus')
    process.kill(t.pid, 'SIGCONT')
    const s = await sigbusOf(t)
    expect({ code: s.code, pid: s.pid }).to.deep.equal({ code: SI_TKILL, pid: process.pid })
  })

  it('gives up after its timeout without blocking the event loop, and leaves the process untraced', async function () {
    // A vfork parent waits for its child where no signal is taken: no signal-delivery-stop comes in time.
    const t = await startTarget('vfork', ['2'])
    const child = await waitFor(t.output, /^vforked pid=(\d+)$/m)
    pids.add(Number(child[1]))
    const injector = loadInjector()
    if (typeof injector === 'string') throw new Error(injector)
    let ticks = 0
    const ticker = setInterval(() => { ticks++ }, 10)
    const started = Date.now()
    const r = await deliverSigbus(injector, t.pid, BUS_MCEERR_AO, ADDR, 300).finally(() => clearInterval(ticker))
    const took = Date.now() - started
    expect(r).to.deep.equal({ way: 'kill', error: 'no signal-delivery-stop within 300 ms: SIGBUS stays pending as sent by tgkill(2)' })
    expect(took).to.be.within(290, 1500)
    expect(ticks).to.be.above(10)
    // Once the vfork child exits the parent takes the pending plain SIGBUS: it is no longer traced.
    expect(fs.readFileSync(`/proc/${t.pid}/status`, 'utf8')).to.match(/^TracerPid:\s*0$/m)
    const s = await sigbusOf(t)
    expect({ code: s.code, pid: s.pid }).to.deep.equal({ code: SI_TKILL, pid: process.pid })
  })

  it('delivers to a process whose wait only the caller\'s JavaScript thread can end, as a FUSE request', async function () {
    // The vfork parent waits, taking no signal, for its child, which waits for a byte that only a timer
    // of this process's event loop writes: as a process faulting on a mapping waits for the daemon.
    const t = await startTarget('vfork', ['stdin'])
    const child = await waitFor(t.output, /^vforked pid=(\d+)$/m)
    pids.add(Number(child[1]))
    const started = Date.now()
    setTimeout(() => t.proc.stdin!.write('x'), 300)
    expectPtrace(await sendMceSigbus(t.pid, BUS_MCEERR_AR, ADDR))
    expect(Date.now() - started).to.be.at.least(290)
    expectKernelSiginfo(await sigbusOf(t), BUS_MCEERR_AR, ADDR, t.pid)
  })

  it('falls back to kill(2) when the injector is not built, saying so', async function () {
    // The compiled module, alone in a package root with no native/ build: what an install without a
    // compiler leaves.
    const root = tempDir('dmemfs-siginfo-nobuild-')
    const mce = path.join(root, 'dist', 'src', 'mce')
    fs.mkdirSync(mce, { recursive: true })
    for (const f of ['siginfo.js', 'sigbus.js', 'procfs.js']) fs.copyFileSync(path.join(ROOT, 'dist', 'src', 'mce', f), path.join(mce, f))
    const t = await startTarget('sleep')
    const script = `require('${mce}/siginfo.js').sendMceSigbus(${t.pid}, 5, ${ADDR}n).then(r => console.log(JSON.stringify(r)))`
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10000 })
    expect(JSON.parse(r.stdout)).to.deep.equal({
      way: 'kill', error: 'siginfo injector not built (native/siginfo: `npm ci` builds it with a C compiler)'
    })
    const s = await sigbusOf(t)
    expect({ code: s.code, pid: s.pid }).to.deep.equal({ code: SI_USER, pid: r.pid })
  })

  it('falls back to kill(2) for a child of the caller, whose stops Node would reap as its exit', async function () {
    const t = await startTarget('sleep', [], true)
    const r = await sendMceSigbus(t.pid, BUS_MCEERR_AO, ADDR)
    expect(r).to.deep.equal({ way: 'kill', error: 'the target is a child of this process, which cannot trace it safely' })
    const s = await sigbusOf(t)
    expect({ code: s.code, pid: s.pid }).to.deep.equal({ code: SI_USER, pid: process.pid })
  })

  it('never signals the caller itself, nor any of its threads', async function () {
    const self = { way: 'none', error: 'not sent: the target is this process' }
    expect(await sendMceSigbus(process.pid, BUS_MCEERR_AO, ADDR)).to.deep.equal(self)
    const threads = fs.readdirSync('/proc/self/task').map(Number).filter(tid => tid !== process.pid)
    expect(threads).to.not.be.empty
    expect(await sendMceSigbus(threads[0], BUS_MCEERR_AR, ADDR)).to.deep.equal(self)
  })

  it('refuses arguments the kernel would never build, before sending anything', async function () {
    for (const [pid, code, addr] of [[0, BUS_MCEERR_AO, ADDR], [-1, BUS_MCEERR_AO, ADDR], [1.5, BUS_MCEERR_AO, ADDR],
      [process.pid, 1, ADDR], [process.pid, BUS_MCEERR_AO, -1n], [process.pid, BUS_MCEERR_AO, 1n << 64n]] as const) {
      let thrown: unknown = null
      await sendMceSigbus(pid, code, addr).catch(err => { thrown = err })
      expect(thrown, `${pid} ${code} ${addr}`).to.be.instanceOf(RangeError)
    }
  })
})
