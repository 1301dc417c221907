// The kernel's early-kill rules on a real mount: python3 children map the same file, some after setting
// prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY or _LATE) through ctypes; the report read through
// `dmemfs mce --json` says who is collected early, from the task flags in /proc, under early_kill=0, 1,
// system and all.

import { expect } from 'chai'
import * as fs from 'fs'
import { BIN, DmemfsMount, sh, sleep, stopAll } from './harness'
import { endChildren, Holder, MAP_SCRIPT, pfnAt, startHolder } from './children'

const SYSCTL = '/proc/sys/vm/memory_failure_early_kill'

function alive (h: Holder): boolean {
  return h.proc.exitCode === null && h.proc.signalCode === null
}

// prctl(PR_MCE_KILL = 33, PR_MCE_KILL_SET = 1, PR_MCE_KILL_EARLY = 1 / PR_MCE_KILL_LATE = 0, 0, 0)
const PRCTL = (early: boolean) => `
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(33, 1, ${early ? 1 : 0}, 0, 0) != 0:
    raise OSError(ctypes.get_errno(), 'prctl PR_MCE_KILL')`

// A second thread sets PR_MCE_KILL_EARLY for itself only; the main thread keeps the default.
const PRCTL_IN_THREAD = `
import ctypes, threading
libc = ctypes.CDLL(None, use_errno=True)
ready = threading.Event()
def policy():
    if libc.prctl(33, 1, 1, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), 'prctl PR_MCE_KILL')
    ready.set()
    threading.Event().wait()
threading.Thread(target=policy, daemon=True).start()
ready.wait()`

interface JsonProcess {
  pid: number
  early_kill: boolean
  early_kill_reason: string
  signal: string | null
  si_code: string | null
  reason: string
  sent: boolean | null
}

interface JsonReport {
  state: string
  early_kill_mode: string | number
  processes: JsonProcess[]
}

function mce (m: DmemfsMount, pfn: number, ...flags: string[]): JsonReport {
  const r = sh(`${BIN} mce ${m.mnt} 0x${pfn.toString(16)} --json ${flags.join(' ')}`)
  if (r.status !== 0) throw new Error(`dmemfs mce failed: ${r.stderr}`)
  return JSON.parse(r.stdout) as JsonReport
}

function proc (report: JsonReport, h: Holder): JsonProcess {
  const p = report.processes.find(x => x.pid === h.proc.pid)
  if (!p) throw new Error(`pid ${h.proc.pid} not in the report`)
  return p
}

const SIZE = 65536

describe('early kill on a mount', function () {
  let m: DmemfsMount

  afterEach(async function () {
    endChildren()
    await stopAll()
  })

  async function mountWith (earlyKill: string | null): Promise<void> {
    m = await DmemfsMount.start(`size=16M${earlyKill === null ? '' : `,early_kill=${earlyKill}`}`)
    m.ok(`head -c ${SIZE} /dev/urandom > data`)
  }

  describe('early_kill=0', function () {
    beforeEach(async function () { await mountWith('0') })

    it('the child that set PR_MCE_KILL_EARLY is collected early and signalled; the other is late', async function () {
      const early = await startHolder(m.mnt, PRCTL(true) + MAP_SCRIPT('data', 0, SIZE))
      const other = await startHolder(m.mnt, MAP_SCRIPT('data', 0, SIZE))
      const report = mce(m, pfnAt(m.path('data'), 8192), '--must-kill')
      expect(report.state).to.equal('used')
      expect(report.early_kill_mode).to.equal(0)
      expect(report.processes.map(p => p.pid).sort()).to.deep.equal([early.proc.pid, other.proc.pid].sort())

      const e = proc(report, early)
      expect(e).to.include({ early_kill: true, early_kill_reason: 'prctl PR_MCE_KILL_EARLY', signal: 'SIGBUS', si_code: 'BUS_MCEERR_AO' })
      const o = proc(report, other)
      expect(o).to.include({ early_kill: false, early_kill_reason: 'system default early_kill=0', signal: null, si_code: null })
      expect(o.reason).to.match(/not collected early .*will get SIGBUS BUS_MCEERR_AR on touching the mapping .*BUS_ADRERR from this simulation/)

      const text = m.ok('cat .dmem/mce')
      expect(text).to.match(new RegExp(`^process ${early.proc.pid} .* early_kill yes \\(prctl PR_MCE_KILL_EARLY\\) .*signal SIGBUS`, 'm'))
      expect(text).to.match(new RegExp(`^process ${other.proc.pid} .* early_kill no \\(system default early_kill=0\\) .*signal none`, 'm'))
    })

    it('with --action-required both are collected early', async function () {
      const early = await startHolder(m.mnt, PRCTL(true) + MAP_SCRIPT('data', 0, SIZE))
      const other = await startHolder(m.mnt, MAP_SCRIPT('data', 0, SIZE))
      const report = mce(m, pfnAt(m.path('data'), 16384), '--must-kill', '--action-required')
      for (const h of [early, other]) {
        expect(proc(report, h)).to.include({
          early_kill: true, early_kill_reason: 'action_required forces early kill', signal: 'SIGBUS', si_code: 'BUS_MCEERR_AR'
        })
      }
    })

    it('with --deliver only the early child is signalled (and dies of SIGBUS); the late one lives on', async function () {
      const early = await startHolder(m.mnt, PRCTL(true) + MAP_SCRIPT('data', 0, SIZE))
      const other = await startHolder(m.mnt, MAP_SCRIPT('data', 0, SIZE))
      const died = new Promise<NodeJS.Signals | null>(resolve => early.proc.on('exit', (_c, s) => resolve(s)))
      const report = mce(m, pfnAt(m.path('data'), 0), '--must-kill', '--deliver')
      expect(proc(report, early).sent).to.equal(true)
      expect(proc(report, other)).to.include({ signal: null, sent: null })
      expect(await died).to.equal('SIGBUS')
      await sleep(200)
      expect(alive(other)).to.equal(true)
    })

    it('a thread other than the main one that set PR_MCE_KILL_EARLY makes its process early', async function () {
      const threaded = await startHolder(m.mnt, PRCTL_IN_THREAD + MAP_SCRIPT('data', 0, SIZE))
      expect(fs.readdirSync(`/proc/${threaded.proc.pid}/task`).length).to.be.at.least(2)
      const report = mce(m, pfnAt(m.path('data'), 4096), '--must-kill')
      expect(proc(report, threaded)).to.include({ early_kill: true, early_kill_reason: 'prctl PR_MCE_KILL_EARLY', signal: 'SIGBUS' })
    })
  })

  describe('early_kill=1', function () {
    beforeEach(async function () { await mountWith('1') })

    it('every child is early but one that set PR_MCE_KILL_LATE', async function () {
      const late = await startHolder(m.mnt, PRCTL(false) + MAP_SCRIPT('data', 0, SIZE))
      const other = await startHolder(m.mnt, MAP_SCRIPT('data', 0, SIZE))
      const report = mce(m, pfnAt(m.path('data'), 8192), '--must-kill')
      expect(report.early_kill_mode).to.equal(1)
      expect(proc(report, late)).to.include({ early_kill: false, early_kill_reason: 'prctl PR_MCE_KILL_LATE', signal: null })
      expect(proc(report, late).reason).to.match(/BUS_MCEERR_AR/)
      expect(proc(report, other)).to.include({ early_kill: true, early_kill_reason: 'system default early_kill=1', signal: 'SIGBUS' })
    })
  })

  describe('early_kill=system', function () {
    beforeEach(async function () { await mountWith('system') })

    it('uses this machine\'s vm.memory_failure_early_kill, and PR_MCE_KILL settings', async function () {
      const early = await startHolder(m.mnt, PRCTL(true) + MAP_SCRIPT('data', 0, SIZE))
      const other = await startHolder(m.mnt, MAP_SCRIPT('data', 0, SIZE))
      const report = mce(m, pfnAt(m.path('data'), 8192), '--must-kill')
      expect(report.early_kill_mode).to.equal('system')
      expect(proc(report, early)).to.include({ early_kill: true, early_kill_reason: 'prctl PR_MCE_KILL_EARLY', signal: 'SIGBUS' })
      const o = proc(report, other)
      if (!fs.existsSync(SYSCTL)) {
        // A kernel without memory-failure support (this machine's): no sysctl, taken as 0, and said so.
        expect(o).to.include({ early_kill: false, signal: null })
        expect(o.early_kill_reason).to.match(/^no vm\.memory_failure_early_kill .*taken as 0$/)
        expect(o.reason).to.match(/BUS_MCEERR_AR/)
        expect(o.reason).to.include('taken as 0')
        expect(m.ok('cat .dmem/mce')).to.match(/early_kill no \(no vm\.memory_failure_early_kill .*taken as 0\)/)
      } else {
        const value = Number(fs.readFileSync(SYSCTL, 'utf8').trim())
        expect(o).to.include({ early_kill: value === 1, early_kill_reason: `vm.memory_failure_early_kill=${value}` })
      }
    })
  })

  describe('early_kill=all (the default)', function () {
    beforeEach(async function () { await mountWith(null) })

    it('collects every holder, a PR_MCE_KILL_LATE one too, and the text says nothing of early kill', async function () {
      const late = await startHolder(m.mnt, PRCTL(false) + MAP_SCRIPT('data', 0, SIZE))
      const report = mce(m, pfnAt(m.path('data'), 8192), '--must-kill')
      expect(report.early_kill_mode).to.equal('all')
      expect(proc(report, late)).to.include({ early_kill: true, signal: 'SIGBUS' })
      expect(m.ok('cat .dmem/mce')).to.not.include('early_kill')
    })
  })
})
