// The kernel's siginfo for a memory-failure SIGBUS, delivered to another process: si_signo SIGBUS, si_code
// BUS_MCEERR_AO or BUS_MCEERR_AR, si_addr the page's address in the victim, si_addr_lsb PAGE_SHIFT. kill(2)
// cannot carry these to another process; the native injector (native/siginfo, built at install) can, by
// ptrace. Where it cannot (not built, already traced, not permitted), a plain kill(2) SIGBUS is the fallback
// and the result says why.

import * as fs from 'fs'
import * as path from 'path'
import { BUS_MCEERR_AO, BUS_MCEERR_AR, SigbusNotSent, SigbusResult } from './sigbus'
import { PF_MCE_EARLY, PF_MCE_PROCESS } from './procfs'

// The result's shape and the codes are the memory-failure path's own: sendMceSigbus() is its sendSigbus.
export { BUS_MCEERR_AO, BUS_MCEERR_AR, DeliveryWay, SigbusNotSent, SigbusResult } from './sigbus'
const SIGBUS = 7

/** How long the injector waits for the target to take the signal before it lets go (a process blocked in
 *  an uninterruptible wait, e.g. a vfork parent). The signal then stays pending as a plain SIGBUS, and no
 *  kill(2) follows: the process would take two. */
export const STOP_TIMEOUT_MS = 2000

/** What the addon's inject() settles with (native/siginfo/siginfo.c). */
interface Outcome {
  outcome: 'delivered' | 'refused' | 'sent'
  error: string
}

export interface Injector {
  /** `tid` 0: any thread of `tgid` (all seized, a process-directed SIGBUS). */
  inject (tgid: number, tid: number, siCode: number, addr: bigint, timeoutMs: number): Promise<Outcome>
}

/** Sends SIGBUS to process `pid` as the kernel's kill_proc() would: `siCode` BUS_MCEERR_AO or
 *  BUS_MCEERR_AR, `addr` the poisoned page's virtual address in it. `pid` may name one thread instead.
 *  For a process that is gone or cannot be traced the result says what happened; it rejects (RangeError)
 *  only for a pid, code or address the kernel would never build. */
export function sendMceSigbus (pid: number, siCode: number, addr: bigint): Promise<SigbusResult | SigbusNotSent> {
  return deliverSigbus(loadInjector(), pid, siCode, addr, STOP_TIMEOUT_MS)
}

/** sendMceSigbus with the injector given (or the reason there is none) and the timeout. */
export async function deliverSigbus (injector: Injector | string, pid: number, siCode: number, addr: bigint,
  timeoutMs: number): Promise<SigbusResult | SigbusNotSent> {
  if (!Number.isInteger(pid) || pid <= 0) throw new RangeError(`not a process id: ${pid}`)
  if (siCode !== BUS_MCEERR_AO && siCode !== BUS_MCEERR_AR) throw new RangeError(`not a BUS_MCEERR_* code: ${siCode}`)
  if (addr < 0n || addr >= 1n << 64n) throw new RangeError(`not an address: ${addr}`)
  if (pid === process.pid) return { way: 'none', error: NOT_SELF }
  if (typeof injector === 'string') return plainKill(pid, injector)
  const target = chooseThread(pid, siCode)
  if ('self' in target) return { way: 'none', error: NOT_SELF }
  if ('refused' in target) return plainKill(pid, target.refused)
  const r = await injector.inject(target.tgid, target.tid, siCode, addr, timeoutMs)
  if (r.outcome === 'delivered') return { way: 'ptrace' }
  if (r.outcome === 'sent') return { way: 'kill', error: r.error }
  return plainKill(target.tgid, r.error)
}

function plainKill (pid: number, why: string): SigbusResult | SigbusNotSent {
  try {
    process.kill(pid, 'SIGBUS')
    return { way: 'kill', error: why }
  } catch (err) {
    return { way: 'none', error: `${why}; kill(2): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }
  }
}

type Target = { tgid: number, tid: number } | { refused: string } | { self: true }

const NOT_SELF = 'not sent: the target is this process'

/** The thread to signal. The kernel's kill_proc() sends a thread-directed signal: for an action-optional
 *  (early) kill, to the first thread with its own PR_MCE_KILL_EARLY policy (find_early_kill_thread()), else
 *  to the process as for_each_process() finds it, its thread group leader; for action required, to the
 *  thread that touched the page, which a simulation cannot know: the leader again, unless `pid` names a
 *  thread itself. That one thread is seized and sent SIGBUS by tgkill(2): a process-directed kill(2)
 *  could be taken by any thread, and only a seized one stops for the injector. Two departures, so that the
 *  signal is taken now rather than left pending: a leader that has exited (pthread_exit) is passed over
 *  for the first live thread, and a thread that blocks SIGBUS for the first live thread that does not (the
 *  one kill(2) would wake). When every thread blocks it (often only for a moment: glibc's raise() does, a
 *  thread does in its own SIGBUS handler), tid 0: the injector seizes them all and sends a
 *  process-directed SIGBUS, taken by whichever thread unblocks it first, as kill(2)'s would be. */
function chooseThread (pid: number, siCode: number): Target {
  const status = readStatus(pid, pid)
  if (status === null) return { refused: 'no such process' }
  const tgid = Number(status.Tgid)
  if (tgid === process.pid) return { self: true } // `pid` named one of our own threads
  if (parentOf(tgid) === process.pid) {
    // Node's child-process reaper (waitpid on its children) would take the child's ptrace stops for its exit.
    return { refused: 'the target is a child of this process, which cannot trace it safely' }
  }
  const threads = threadsOf(tgid).map(tid => ({ tid, status: readStatus(tgid, tid) }))
    .filter(t => isLive(t.status))
  const early = siCode === BUS_MCEERR_AO && tgid === pid ? threads.find(t => isEarlyKillThread(tgid, t.tid)) : undefined
  const first = early ?? threads.find(t => t.tid === pid) ?? threads[0]
  if (first === undefined) return { refused: 'the process has no live thread' }
  const taker = takesSigbus(first.status!) ? first : threads.find(t => takesSigbus(t.status!))
  return { tgid, tid: taker?.tid ?? 0 }
}

function takesSigbus (status: Record<string, string>): boolean {
  return ((BigInt('0x' + (status.SigBlk ?? '0')) >> BigInt(SIGBUS - 1)) & 1n) === 0n
}

function readStatus (tgid: number, tid: number): Record<string, string> | null {
  let text: string
  try {
    text = fs.readFileSync(`/proc/${tgid}/task/${tid}/status`, 'utf8')
  } catch {
    return null
  }
  const fields: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':')
    if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 1).trim()
  }
  return fields
}

function isLive (status: Record<string, string> | null): boolean {
  return status !== null && !/^[ZX]/.test(status.State ?? 'X')
}

function threadsOf (tgid: number): number[] {
  try {
    return fs.readdirSync(`/proc/${tgid}/task`).map(Number).sort((a, b) => a - b)
  } catch {
    return []
  }
}

/** Fields after the command name of /proc/TGID/task/TID/stat (it may hold spaces and parentheses). */
function statFields (tgid: number, tid: number): string[] | null {
  let stat: string
  try {
    stat = fs.readFileSync(`/proc/${tgid}/task/${tid}/stat`, 'utf8')
  } catch {
    return null
  }
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}

function isEarlyKillThread (tgid: number, tid: number): boolean {
  const fields = statFields(tgid, tid)
  const flags = fields ? Number(fields[6]) : 0
  return (flags & PF_MCE_PROCESS) !== 0 && (flags & PF_MCE_EARLY) !== 0
}

function parentOf (tgid: number): number {
  const fields = statFields(tgid, tgid)
  return fields ? Number(fields[1]) : 0
}

let injector: Injector | string | undefined

/** The addon, or why there is none. Built by scripts/postinstall.js into native/siginfo/build/Release. */
export function loadInjector (): Injector | string {
  if (injector !== undefined) return injector
  // From dist/src/mce (compiled) or src/mce (ts-node): the package root holds native/.
  const candidates = [path.resolve(__dirname, '..', '..', '..'), path.resolve(__dirname, '..', '..')]
    .map(root => path.join(root, 'native', 'siginfo', 'build', 'Release', 'siginfo.node'))
  const file = candidates.find(f => fs.existsSync(f))
  if (file === undefined) {
    injector = 'siginfo injector not built (native/siginfo: `npm ci` builds it with a C compiler)'
    return injector
  }
  try {
    injector = require(file) as Injector
  } catch (err) {
    injector = `siginfo injector not loaded: ${(err as Error).message.split('\n')[0]}`
  }
  return injector
}
