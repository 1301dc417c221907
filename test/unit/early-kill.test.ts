// Unit tests of the kernel's early-kill rules in the memory-failure report, through the fake environment:
// which holders are collected early under each early_kill mode (task_early_kill()/find_early_kill_thread()
// with per-thread PR_MCE_KILL flags and the system default), how MF_ACTION_REQUIRED forces it, what a
// holder that is not collected early is told, how the report shows it; the task-flag readers on this
// machine; and the mount options early_kill, trace and poison_file.

import { expect } from 'chai'
import * as fs from 'fs'
import { spawnSync } from 'child_process'
import { Superblock } from '../../src/fs/super'
import { MF_ACTION_REQUIRED, MF_MUST_KILL } from '../../src/mce/input'
import { EarlyKillMode, handleMemoryFailure, locatePfn, MceProcess, MceReport, memoryFailure } from '../../src/mce/memory-failure'
import { FileHolder, PF_MCE_EARLY, PF_MCE_PROCESS, sysctlEarlyKill, threadFlags } from '../../src/mce/procfs'
import { renderReport, reportJson } from '../../src/mce/report'
import { MiB, PAGE_SIZE } from '../../src/pool/layout'
import { DEFAULT_POISON_FILE, MountOptions, parseMountOptions } from '../../src/options'
import { createFile, FakeEnv, fakeEnv, makeSb, pfnOfIndex } from './mce-fixtures'

const VA = 0x7f0000000000
const VA2 = 0x7f1000000000
const MAPPER = 100 // maps the whole file
const SECOND = 200 // maps pages 1 and 2 (the poisoned page is 1)
const FDONLY = 300 // only has it open: never collected, whatever the rules
const EARLY = PF_MCE_PROCESS | PF_MCE_EARLY // prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY)
const LATE = PF_MCE_PROCESS // prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_LATE)

const HOLDERS: FileHolder[] = [
  { pid: MAPPER, comm: 'mapper', fds: [3], mappings: [{ start: VA, end: VA + 4 * PAGE_SIZE, pgoff: 0, perms: 'rw-s' }] },
  { pid: SECOND, comm: 'second', fds: [], mappings: [{ start: VA2, end: VA2 + 2 * PAGE_SIZE, pgoff: 1, perms: 'r--s' }] },
  { pid: FDONLY, comm: 'reader', fds: [4], mappings: [] }
]

interface Run {
  report: MceReport
  env: FakeEnv
  flagCalls: number[] // pids threadFlags was asked about
  sysctlCalls: number
  mapper: MceProcess
  second: MceProcess
}

interface RunOptions {
  threads?: Record<number, number[] | null> // task flags per pid; [0] (one thread, no policy) otherwise
  sysctl?: number | null
  flags?: number // MF_* flags; MF_MUST_KILL by default
  deliver?: boolean // true by default
}

async function run (mode: EarlyKillMode, opts: RunOptions = {}): Promise<Run> {
  const sb: Superblock = makeSb({ size: MiB, nodes: 1, shift: 12 })
  const f = createFile(sb, '/f', 4 * PAGE_SIZE)
  const pfn = pfnOfIndex(sb, f, 1)
  const env = fakeEnv({ holders: HOLDERS })
  const flagCalls: number[] = []
  let sysctlCalls = 0
  env.threadFlags = pid => {
    flagCalls.push(pid)
    const threads = opts.threads ?? {}
    return pid in threads ? threads[pid] : [0]
  }
  env.sysctlEarlyKill = () => {
    sysctlCalls++
    return opts.sysctl === undefined ? null : opts.sysctl
  }
  const report = await handleMemoryFailure(sb, locatePfn(sb.pool, pfn)!, opts.flags ?? MF_MUST_KILL, opts.deliver ?? true, env, mode)
  expect(report.state).to.equal('used')
  expectFdOnly(report, env, flagCalls)
  expect(report.earlyKillMode).to.equal(mode)
  const find = (pid: number): MceProcess => {
    const p = report.processes.find(x => x.pid === pid)
    if (!p) throw new Error(`pid ${pid} is not in the report`)
    return p
  }
  return { report, env, flagCalls, sysctlCalls, mapper: find(MAPPER), second: find(SECOND) }
}

/** Under every rule, a process holding the file through a descriptor only is listed, not collected, not
 *  signalled, and its task flags are not even looked at: the kernel walks mappings only. */
function expectFdOnly (report: MceReport, env: FakeEnv, flagCalls: number[]): void {
  const p = report.processes.find(x => x.pid === FDONLY)!
  expect(p).to.include({ collected: false, earlyKill: false, signal: null, siCode: null, sent: null, way: null })
  expect(p.fds).to.deep.equal([4])
  expect(p.reason).to.match(/^not collected by the kernel \(no mapping of the page\); will get EIO/)
  expect(env.sigbus.map(k => k.pid)).to.not.include(FDONLY)
  expect(flagCalls).to.not.include(FDONLY)
}

/** A holder collected early, with must_kill and delivery: signalled as the earlier issue's report does. */
function expectCollected (r: Run, pid: number, reason: string): void {
  const p = pid === MAPPER ? r.mapper : r.second
  expect(p.earlyKill, `${pid} early`).to.equal(true)
  expect(p.earlyKillReason).to.equal(reason)
  expect(p).to.include({ collected: true, signal: 'SIGBUS', addrLsb: 12, sent: true, way: 'kill' })
  expect(p.vaddr).to.equal(pid === MAPPER ? VA + PAGE_SIZE : VA2)
  expect(r.env.sigbus.map(k => k.pid)).to.include(pid)
}

/** A holder not collected early: listed, not signalled, told what it will meet later. */
function expectLate (r: Run, pid: number, reason: string | RegExp): void {
  const p = pid === MAPPER ? r.mapper : r.second
  expect(p.earlyKill, `${pid} early`).to.equal(false)
  if (typeof reason === 'string') expect(p.earlyKillReason).to.equal(reason)
  else expect(p.earlyKillReason).to.match(reason)
  expect(p).to.include({ collected: false, signal: null, siCode: null, addrLsb: null, sent: null })
  expect(p.reason).to.include(`not collected early (${p.earlyKillReason})`)
  // What it meets on touching the page: the seed's kernel's code, and this simulation's.
  expect(p.reason).to.match(/will get SIGBUS BUS_MCEERR_AR on touching the mapping .*SIGBUS BUS_ADRERR from this simulation/)
  expect(p.mappings).to.have.length(1) // still listed with its mapping and address
  expect(p.vaddr).to.equal(pid === MAPPER ? VA + PAGE_SIZE : VA2)
  expect(r.env.sigbus.map(k => k.pid)).to.not.include(pid)
}

describe('early kill', () => {
  it('uses the kernel\'s task flag bits', async () => {
    // include/linux/sched.h: PF_MCE_PROCESS 0x00000080, PF_MCE_EARLY 0x08000000
    expect(PF_MCE_PROCESS).to.equal(0x00000080)
    expect(PF_MCE_EARLY).to.equal(0x08000000)
  })

  describe("early_kill=all (the default)", () => {
    it('collects every holder, whatever its PR_MCE_KILL setting and the system default', async () => {
      const r = await run('all', { threads: { [MAPPER]: [LATE], [SECOND]: [LATE] }, sysctl: 0 })
      expectCollected(r, MAPPER, 'early_kill=all: every holder is collected')
      expectCollected(r, SECOND, 'early_kill=all: every holder is collected')
      expect(r.mapper.siCode).to.equal('BUS_MCEERR_AO')
      expect(r.flagCalls).to.deep.equal([])
      expect(r.sysctlCalls).to.equal(0)
    })

    it('is the default of memoryFailure', async () => {
      const sb = makeSb({ size: MiB, nodes: 1, shift: 12 })
      const f = createFile(sb, '/f', 4 * PAGE_SIZE)
      const env = fakeEnv({ holders: HOLDERS })
      env.threadFlags = () => [LATE]
      const report = memoryFailure(sb, locatePfn(sb.pool, pfnOfIndex(sb, f, 1))!, MF_MUST_KILL, false, env)
      expect(report.earlyKillMode).to.equal('all')
      expect(report.processes.map(p => p.earlyKill)).to.deep.equal([true, true, false])
    })
  })

  describe('a system default of 0 or 1', () => {
    it('0 without prctl: every holder is late, listed, not signalled, told what it will meet', async () => {
      const r = await run(0)
      expectLate(r, MAPPER, 'system default early_kill=0')
      expectLate(r, SECOND, 'system default early_kill=0')
      expect(r.env.sigbus).to.deep.equal([])
      expect(r.flagCalls.sort()).to.deep.equal([MAPPER, SECOND])
      expect(r.sysctlCalls, 'the machine\'s sysctl is not asked').to.equal(0)
    })

    it('1 without prctl: every holder is early', async () => {
      const r = await run(1, { sysctl: 0 })
      expectCollected(r, MAPPER, 'system default early_kill=1')
      expectCollected(r, SECOND, 'system default early_kill=1')
      expect(r.sysctlCalls).to.equal(0)
    })

    it('a thread with PF_MCE_PROCESS|PF_MCE_EARLY is early even with default 0', async () => {
      const r = await run(0, { threads: { [MAPPER]: [EARLY] } })
      expectCollected(r, MAPPER, 'prctl PR_MCE_KILL_EARLY')
      expectLate(r, SECOND, 'system default early_kill=0')
      expect(r.env.sigbus.map(k => k.pid)).to.deep.equal([MAPPER])
    })

    it('a thread with PF_MCE_PROCESS but not PF_MCE_EARLY is late even with default 1', async () => {
      const r = await run(1, { threads: { [SECOND]: [LATE] } })
      expectCollected(r, MAPPER, 'system default early_kill=1')
      expectLate(r, SECOND, 'prctl PR_MCE_KILL_LATE')
    })

    it('PF_MCE_EARLY without PF_MCE_PROCESS means nothing; other flag bits neither', async () => {
      expectLate(await run(0, { threads: { [MAPPER]: [PF_MCE_EARLY] } }), MAPPER, 'system default early_kill=0')
      expectLate(await run(0, { threads: { [MAPPER]: [0x00400140] } }), MAPPER, 'system default early_kill=0')
      expectCollected(await run(1, { threads: { [MAPPER]: [PF_MCE_EARLY | 0x40] } }), MAPPER, 'system default early_kill=1')
      expectCollected(await run(0, { threads: { [MAPPER]: [EARLY | 0x00400040] } }), MAPPER, 'prctl PR_MCE_KILL_EARLY')
    })
  })

  describe('several threads (find_early_kill_thread: the first early thread makes the process early)', () => {
    const cases: Array<{ mode: 0 | 1, threads: number[], early: boolean, reason: string }> = [
      { mode: 0, threads: [LATE, EARLY], early: true, reason: 'prctl PR_MCE_KILL_EARLY' },
      { mode: 0, threads: [0, 0, EARLY], early: true, reason: 'prctl PR_MCE_KILL_EARLY' },
      { mode: 1, threads: [LATE, 0], early: true, reason: 'system default early_kill=1' },
      { mode: 1, threads: [0, EARLY], early: true, reason: 'system default early_kill=1' },
      { mode: 1, threads: [EARLY, 0], early: true, reason: 'prctl PR_MCE_KILL_EARLY' },
      { mode: 0, threads: [LATE, 0], early: false, reason: '' },
      { mode: 0, threads: [0, 0, 0], early: false, reason: 'system default early_kill=0' },
      { mode: 1, threads: [LATE, LATE], early: false, reason: 'prctl PR_MCE_KILL_LATE' }
    ]
    for (const c of cases) {
      const flags = c.threads.map(t => t === EARLY ? 'early' : t === LATE ? 'late' : 'default').join(',')
      it(`default ${c.mode}, threads [${flags}]: ${c.early ? 'early' : 'late'}`, async () => {
        const r = await run(c.mode, { threads: { [MAPPER]: c.threads } })
        if (c.early) expectCollected(r, MAPPER, c.reason)
        else expectLate(r, MAPPER, c.reason === '' ? /./ : c.reason)
      })
    }

    it('a process that is gone (no threads) is not collected', async () => {
      const r = await run(1, { threads: { [MAPPER]: null } })
      expect(r.mapper.earlyKill).to.equal(false)
      expect(r.mapper.signal).to.equal(null)
      expect(r.env.sigbus.map(k => k.pid)).to.deep.equal([SECOND])
    })
  })

  describe('early_kill=system', () => {
    it('without the sysctl (no memory-failure support): taken as 0, and the reason says so', async () => {
      const r = await run('system', { sysctl: null })
      for (const pid of [MAPPER, SECOND]) {
        expectLate(r, pid, /vm\.memory_failure_early_kill/)
        const p = pid === MAPPER ? r.mapper : r.second
        expect(p.earlyKillReason).to.match(/^no vm\.memory_failure_early_kill .*taken as 0$/)
        expect(p.earlyKillReason).to.match(/without memory-failure support/)
      }
      expect(r.sysctlCalls).to.be.greaterThan(0)
      expect(r.env.sigbus).to.deep.equal([])
    })

    it('with the sysctl at 1: early; at 0: late; the reason gives its value', async () => {
      const on = await run('system', { sysctl: 1 })
      expectCollected(on, MAPPER, 'vm.memory_failure_early_kill=1')
      expectCollected(on, SECOND, 'vm.memory_failure_early_kill=1')
      const off = await run('system', { sysctl: 0 })
      expectLate(off, MAPPER, 'vm.memory_failure_early_kill=0')
      expectLate(off, SECOND, 'vm.memory_failure_early_kill=0')
    })

    it('per-process PR_MCE_KILL settings count under system too', async () => {
      const r = await run('system', { sysctl: null, threads: { [MAPPER]: [EARLY] } })
      expectCollected(r, MAPPER, 'prctl PR_MCE_KILL_EARLY')
      expectLate(r, SECOND, /taken as 0/)
      const s = await run('system', { sysctl: 1, threads: { [SECOND]: [LATE] } })
      expectCollected(s, MAPPER, 'vm.memory_failure_early_kill=1')
      expectLate(s, SECOND, 'prctl PR_MCE_KILL_LATE')
    })
  })

  describe('MF_ACTION_REQUIRED', () => {
    for (const mode of [0, 'system'] as const) {
      it(`forces early kill (force_early) under ${mode}, even for a PR_MCE_KILL_LATE process`, async () => {
        const r = await run(mode, { flags: MF_MUST_KILL | MF_ACTION_REQUIRED, threads: { [MAPPER]: [LATE] }, sysctl: 0 })
        expectCollected(r, MAPPER, 'action_required forces early kill')
        expectCollected(r, SECOND, 'action_required forces early kill')
        expect(r.mapper.siCode).to.equal('BUS_MCEERR_AR')
      })
    }
  })

  it('without must_kill, early holders still get no signal, and the reason is kill_procs\', not early kill', async () => {
    const r = await run(0, { flags: 0, threads: { [MAPPER]: [EARLY] } })
    expect(r.mapper.earlyKill).to.equal(true)
    expect(r.mapper.signal).to.equal(null)
    expect(r.mapper.reason).to.match(/^no signal without must_kill/)
    expectLate(r, SECOND, 'system default early_kill=0')
    expect(r.env.sigbus).to.deep.equal([])
  })

  describe('the report', () => {
    it('JSON gives early_kill and early_kill_reason for each process, and the mode', async () => {
      const r = await run(0, { threads: { [MAPPER]: [EARLY] } })
      const j = reportJson(r.report) as {
        early_kill_mode: unknown
        processes: Array<{ pid: number, early_kill: boolean, early_kill_reason: string, signal: string | null, reason: string }>
      }
      expect(j.early_kill_mode).to.equal(0)
      const m = j.processes.find(p => p.pid === MAPPER)!
      const o = j.processes.find(p => p.pid === SECOND)!
      expect(m).to.include({ early_kill: true, early_kill_reason: 'prctl PR_MCE_KILL_EARLY', signal: 'SIGBUS' })
      expect(o).to.include({ early_kill: false, early_kill_reason: 'system default early_kill=0', signal: null })
      expect(o.reason).to.match(/SIGBUS BUS_MCEERR_AR/)
      expect((reportJson((await run('system')).report) as { early_kill_mode: unknown }).early_kill_mode).to.equal('system')
    })

    it("the text shows 'early_kill yes/no (reason)' when the mode is not all", async () => {
      const r = await run(1, { threads: { [SECOND]: [LATE] } })
      const lines = renderReport(r.report).split('\n')
      const m = lines.find(l => l.startsWith(`process ${MAPPER} `))!
      const o = lines.find(l => l.startsWith(`process ${SECOND} `))!
      expect(m).to.include(' early_kill yes (system default early_kill=1) ')
      expect(m).to.include('signal SIGBUS BUS_MCEERR_AO')
      expect(o).to.include(' early_kill no (prctl PR_MCE_KILL_LATE) ')
      expect(o).to.include('signal none (not collected early; will get SIGBUS BUS_MCEERR_AR on touching')
      const fdOnly = lines.find(l => l.startsWith(`process ${FDONLY} `))!
      expect(fdOnly).to.equal(`process ${FDONLY} (reader) not-collected fd 4 signal none ` +
        '(not collected by the kernel (no mapping of the page); will get EIO on its next read or write of the poisoned range)')
      const s = renderReport((await run('system')).report)
      expect(s).to.match(/early_kill no \(no vm\.memory_failure_early_kill .*, taken as 0\) /)
      // Each line gives its early-kill reason once.
      for (const line of [m, o, ...s.split('\n')]) {
        const why = /early_kill (?:yes|no) \((.*?)\) /.exec(line)?.[1]
        if (why !== undefined) expect(line.split(why), line).to.have.length(2)
      }
    })

    it("the text shows no early_kill under all", async () => {
      const text = renderReport((await run('all')).report)
      expect(text).to.match(new RegExp(`^process ${MAPPER} `, 'm'))
      expect(text).to.not.include('early_kill')
    })
  })

  describe('task flags and the sysctl on this machine', () => {
    it('threadFlags gives one number per thread of a live process, without PR_MCE_KILL bits by default', async () => {
      const flags = threadFlags(process.pid)
      expect(flags).to.be.an('array')
      expect(flags!.length).to.equal(fs.readdirSync(`/proc/${process.pid}/task`).length)
      for (const f of flags!) {
        expect(Number.isInteger(f) && f > 0, String(f)).to.equal(true)
        expect(f & PF_MCE_PROCESS).to.equal(0)
      }
    })

    it('threadFlags is null for a process that is gone', async () => {
      const gone = spawnSync('true').pid
      expect(threadFlags(gone)).to.equal(null)
    })

    it('sysctlEarlyKill reads vm.memory_failure_early_kill, null where the kernel has none', async () => {
      const file = '/proc/sys/vm/memory_failure_early_kill'
      if (fs.existsSync(file)) expect(sysctlEarlyKill()).to.equal(Number(fs.readFileSync(file, 'utf8').trim()))
      else expect(sysctlEarlyKill()).to.equal(null)
    })
  })
})

describe('options: early_kill, trace, poison_file', () => {
  function parse (...texts: string[]): MountOptions {
    const r = parseMountOptions(texts)
    if (!r.ok) throw new Error(`parseMountOptions(${JSON.stringify(texts)}) failed: ${r.error}`)
    return r.value
  }

  function error (text: string): string {
    const r = parseMountOptions([text])
    if (r.ok) throw new Error(`parseMountOptions(${JSON.stringify(text)}) unexpectedly succeeded`)
    return r.error
  }

  it('default to early_kill=all, tracing off, no poison file', async () => {
    const o = parse()
    expect(o.earlyKill).to.equal('all')
    expect(o.trace).to.equal(false)
    expect(o.poisonFile).to.equal(null)
  })

  it('early_kill takes all, system, 0 or 1 (0 and 1 as numbers)', async () => {
    expect(parse('early_kill=all').earlyKill).to.equal('all')
    expect(parse('early_kill=system').earlyKill).to.equal('system')
    expect(parse('early_kill=0').earlyKill).to.equal(0)
    expect(parse('early_kill=1').earlyKill).to.equal(1)
    expect(parse('size=4M,early_kill=1', 'early_kill=system').earlyKill).to.equal('system')
  })

  it('early_kill rejects anything else, naming the option', async () => {
    for (const bad of ['early_kill', 'early_kill=', 'early_kill=2', 'early_kill=yes', 'early_kill=ALL', 'early_kill=00',
      'early_kill=-1', 'early_kill=1 ', 'early_kill=System']) {
      const e = error(bad)
      expect(e, bad).to.equal(`bad mount option '${bad}': expects all, system, 0 or 1`)
    }
  })

  it('trace turns tracing on from mount and takes no value', async () => {
    expect(parse('trace').trace).to.equal(true)
    expect(error('trace=1')).to.equal("bad mount option 'trace=1': takes no value")
    expect(error('trace=')).to.equal("bad mount option 'trace=': takes no value")
  })

  it('poison_file takes a path, or no value for the default', async () => {
    expect(DEFAULT_POISON_FILE).to.equal('/var/lib/dmemfs/poison')
    expect(parse('poison_file').poisonFile).to.equal(DEFAULT_POISON_FILE)
    expect(parse('poison_file=/tmp/p/pf').poisonFile).to.equal('/tmp/p/pf')
    expect(parse('size=4M,poison_file=/srv/x/pf,trace').poisonFile).to.equal('/srv/x/pf')
    expect(error('poison_file=')).to.match(/^bad mount option 'poison_file=': expects a path/)
  })
})
