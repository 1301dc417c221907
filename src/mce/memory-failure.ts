// The memory-failure path for a dmem PFN, after the seed's dmem_memory_failure() and the dmemfs MCE
// notifier: find the region, take a free dpage out of service, or trace a used dpage through the reverse
// map to its inode and page offset, then find the processes that hold that file and decide, as the seed's
// __collect_procs_file/add_to_kill/kill_procs would, what each one gets. Then (handleMemoryFailure) the
// kernel's cached copies of the file are revoked and the signals delivered.

import { filePoisoned } from '../fs/file'
import { Superblock } from '../fs/super'
import { PAGE_SIZE } from '../pool/layout'
import { DmemPool, NO_OWNER } from '../pool/pool'
import { MF_ACTION_REQUIRED, MF_MUST_KILL } from './input'
import { FileHolder, FileMapping, PF_MCE_EARLY, PF_MCE_PROCESS } from './procfs'
import { BUS_MCEERR_AO, BUS_MCEERR_AR, DeliveryWay, SigbusResult } from './sigbus'

/** Which holders the report treats as collected early: `all` (every holder), or the kernel's
 *  task_early_kill() rule with the system default read from this machine (`system`) or given (0, 1). */
export type EarlyKillMode = 'all' | 'system' | 0 | 1

export type DpageState = 'used' | 'free' | 'already-poisoned'
// Only SIGBUS: the seed's add_to_kill() computes every collected mapping's address arithmetically (it is
// handed no page), so the address is never -EFAULT and kill_procs() never falls back to SIGKILL here.
export type SignalName = 'SIGBUS'
export type SiCode = 'BUS_MCEERR_AR' | 'BUS_MCEERR_AO'

export { BUS_MCEERR_AO, BUS_MCEERR_AR, DeliveryWay, SigbusResult } from './sigbus'
const SI_CODES: Record<SiCode, number> = { BUS_MCEERR_AR, BUS_MCEERR_AO }

/** What a process that touches the poisoned page later meets: the seed's kernel sends SIGBUS
 *  BUS_MCEERR_AR from its fault handler; this machine's kernel, whose FUSE read of the page fails, SIGBUS
 *  BUS_ADRERR. */
export const ON_TOUCH = { seed: 'BUS_MCEERR_AR', simulated: 'BUS_ADRERR' } as const

export interface McePlace {
  pfn: number
  phys: number
  node: number
  region: number
  dpage: number // pool dpage number
  dpagePfn: number // the dpage's first PFN
  dpageSize: number
}

export interface MceMapping extends FileMapping {
  vaddr: number // where the poisoned page sits in this mapping
}

/** An open handle on the poisoned file, as the daemon tracks it, with the process that opened it. */
export interface MceHandle {
  fh: number
  opener: number // thread-group id of the opener (its thread id if that is gone), 0 if unknown
  comm: string
}

export interface MceProcess {
  pid: number
  comm: string
  opener: boolean // this process opened one of the daemon's handles on the file
  // The seed's __collect_procs_file() would collect it: a mapping covers the poisoned dpage and it is
  // collected early. A holder through descriptors only never is: it meets EIO on its next read or write.
  collected: boolean
  earlyKill: boolean // the kernel would collect it when the error is found, not when it touches the page
  earlyKillReason: string
  fds: number[]
  mappings: MceMapping[]
  signal: SignalName | null
  siCode: SiCode | null
  vaddr: number | null // si_addr
  addrLsb: number | null // si_addr_lsb
  reason: string
  sent: boolean | null // null: delivery not asked for
  way: DeliveryWay | null // how the signal went, when it went
  sendError?: string
}

export interface MceFile {
  path: string | null // null once unlinked
  ino: number
  pgoff: number // page offset of the poisoned 4 KiB frame in the file
  offset: number // its byte offset
}

export interface MceReport extends McePlace {
  time: number
  flags: number
  state: DpageState
  result: string // the kernel-style log line
  file: MceFile | null
  handles: MceHandle[]
  processes: MceProcess[]
  deliver: boolean
  earlyKillMode: EarlyKillMode
  revocation: Revocation | null // null: nothing to revoke (not a used dpage, or no inode)
}

/** How the kernel's page cache and mappings of the file were dropped: by opening it through the mount
 *  (FUSE opens without keep_cache run invalidate_inode_pages2 on the inode). */
export interface Revocation {
  via: string | null // the path opened: the file's, or /proc/PID/fd/N of a holder; null when none was found
  ms: number
  failed: Array<{ via: string, error: string }> // ways in tried before, and why each did not do
}

/** Where the kernel can still hold copies of a file: its path on the mount (null once unlinked) and the
 *  processes holding it, whose descriptors or mappings can reach it when it has no name. */
export interface RevokeTarget {
  path: string | null
  holders: Array<{ pid: number, fds: number[], mappings: FileMapping[] }>
}

export interface MceEnvironment {
  // The processes holding inode `ino` open or mapped; `openers` are the threads that opened its open
  // handles (0 where unknown), a hint of where to look.
  findHolders (ino: number, openers: number[]): FileHolder[]
  // The process (thread group) a thread belongs to, and its command name; null if the thread is gone.
  processOf (tid: number): { pid: number, comm: string } | null
  // The process of a thread and the launchers that run it (npx, sh -c), to leave out of a report.
  invocationOf (tid: number): number[]
  // The task flags of each thread of a process (PF_MCE_PROCESS, PF_MCE_EARLY), null if it is gone.
  threadFlags (pid: number): number[] | null
  // vm.memory_failure_early_kill, null when the kernel has no such sysctl.
  sysctlEarlyKill (): number | null
  // Sends SIGBUS with si_code `siCode` and si_addr `addr`; rejects when the signal could not be sent.
  sendSigbus (pid: number, siCode: number, addr: bigint): Promise<SigbusResult>
  // Drops the kernel's cached pages and zaps every mapping of the file (without losing dirty data of
  // its healthy pages); resolves once done.
  revoke (target: RevokeTarget): Promise<Revocation>
  log (line: string): void
  self: number // the daemon's pid: never listed, never signalled
}

export const NOT_DMEM_PFN = 'not a dmem pfn'

/** Where a PFN lives in the pool, or null when no region holds it. */
export function locatePfn (pool: DmemPool, pfn: number): McePlace | null {
  const dpage = pool.dpageOfPfn(pfn)
  if (dpage < 0) return null
  const region = pool.regionOf(dpage)
  return {
    pfn,
    phys: pfn * PAGE_SIZE,
    node: region.node,
    region: region.id,
    dpage,
    dpagePfn: pool.pfnOf(dpage),
    dpageSize: pool.dpageSize
  }
}

/** Runs the memory-failure path for a PFN the caller has located, up to the decisions: poisons the dpage
 *  and says who holds the file and what each gets. `exclude` are processes never to list (the writer
 *  that asked, when it asked for that). handleMemoryFailure() goes on to revoke and deliver. */
export function memoryFailure (
  sb: Superblock, place: McePlace, flags: number, deliver: boolean, env: MceEnvironment,
  earlyKill: EarlyKillMode = 'all', exclude: number[] = []
): MceReport {
  const pool = sb.pool
  const base = {
    ...place, time: Date.now(), flags, deliver, earlyKillMode: earlyKill, file: null, handles: [], processes: [], revocation: null
  }
  const hex = '0x' + place.pfn.toString(16)
  if (pool.isPoisoned(place.dpage)) {
    traceFailure(pool, place, pool.ownerOf(place.dpage) !== NO_OWNER)
    return logged(env, { ...base, state: 'already-poisoned', result: `Memory failure: ${hex}: already hardware poisoned` })
  }
  const used = pool.isUsed(place.dpage)
  pool.poison(place.dpage)
  const ino = pool.ownerOf(place.dpage)
  const inode = ino === NO_OWNER ? undefined : sb.inode(ino)
  if (inode) filePoisoned(inode, pool.indexOf(place.dpage))
  traceFailure(pool, place, used)
  if (!used) {
    return logged(env, { ...base, state: 'free', result: `MCE: free dpage, mark ${hex} disabled in dmem` })
  }
  const report: MceReport = { ...base, state: 'used', result: `MCE ${hex}: handled by dmem` }
  env.log(report.result)
  if (!inode) return report
  inode.hwpoisoned = true
  const pgoff = pool.indexOf(place.dpage) * pool.framesPerDpage + (place.pfn - place.dpagePfn)
  report.file = { path: sb.pathOf(inode), ino, pgoff, offset: pgoff * PAGE_SIZE }
  const dpagePgoff = pgoff - (place.pfn - place.dpagePfn)
  report.handles = sb.handlesOf(inode).map(h => handleOpener(h.fh, h.pid, env))
  const openers = new Set(report.handles.map(h => h.opener))
  const never = new Set([1, env.self, ...exclude])
  report.processes = env.findHolders(ino, sb.handlesOf(inode).map(h => h.pid))
    .filter(h => !never.has(h.pid))
    .map(h => decide(h, pgoff, dpagePgoff, pool.framesPerDpage, flags, openers.has(h.pid),
      () => collectedEarly(h.pid, flags, earlyKill, env)))
    .filter((p): p is MceProcess => p !== null)
  return report
}

/** The whole path: the decisions, then, for a used dpage, the revocation of what the kernel still holds
 *  of the file (before any signal, so a handler that looks at the page meets the failure), then the
 *  signals when `deliver` asks for them. */
export async function handleMemoryFailure (
  sb: Superblock, place: McePlace, flags: number, deliver: boolean, env: MceEnvironment,
  earlyKill: EarlyKillMode = 'all', exclude: number[] = []
): Promise<MceReport> {
  const report = memoryFailure(sb, place, flags, deliver, env, earlyKill, exclude)
  if (!report.file) return report
  const holders = report.processes.map(p => ({ pid: p.pid, fds: p.fds, mappings: p.mappings }))
  report.revocation = await env.revoke({ path: report.file.path, holders })
  if (deliver) await deliverSignals(report, env)
  return report
}

function handleOpener (fh: number, tid: number, env: MceEnvironment): MceHandle {
  if (tid === 0) return { fh, opener: 0, comm: '?' }
  const proc = env.processOf(tid)
  return proc ? { fh, opener: proc.pid, comm: proc.comm } : { fh, opener: tid, comm: '(exited)' }
}

function traceFailure (pool: DmemPool, place: McePlace, used: boolean): void {
  if (!pool.tracer.on) return
  pool.tracer.emit(pool.ownerOf(place.dpage), 'dmem_memory_failure', `pfn=0x${place.pfn.toString(16)} used=${used ? 1 : 0}`)
}

function logged (env: MceEnvironment, report: MceReport): MceReport {
  env.log(report.result)
  return report
}

interface EarlyKill {
  early: boolean
  reason: string
}

/** The kernel's task_early_kill()/find_early_kill_thread(): a thread with its own PR_MCE_KILL policy
 *  (PF_MCE_PROCESS) is early if it chose early (PF_MCE_EARLY); a thread without one follows the system
 *  default; the first early thread makes the process early. MF_ACTION_REQUIRED forces it (force_early). */
function collectedEarly (pid: number, flags: number, mode: EarlyKillMode, env: MceEnvironment): EarlyKill {
  if (mode === 'all') return { early: true, reason: 'early_kill=all: every holder is collected' }
  if (flags & MF_ACTION_REQUIRED) return { early: true, reason: 'action_required forces early kill' }
  let systemDefault: number
  let why: string
  if (mode === 'system') {
    const value = env.sysctlEarlyKill()
    systemDefault = value ?? 0
    why = value === null
      ? 'no vm.memory_failure_early_kill (kernel without memory-failure support), taken as 0'
      : `vm.memory_failure_early_kill=${value}`
  } else {
    systemDefault = mode
    why = `system default early_kill=${mode}`
  }
  const threads = env.threadFlags(pid) ?? []
  for (const f of threads) {
    if (f & PF_MCE_PROCESS) {
      if (f & PF_MCE_EARLY) return { early: true, reason: 'prctl PR_MCE_KILL_EARLY' }
    } else if (systemDefault) {
      return { early: true, reason: why }
    }
  }
  return { early: false, reason: threads.some(f => f & PF_MCE_PROCESS) ? 'prctl PR_MCE_KILL_LATE' : why }
}

const ON_ACCESS = 'will get EIO on its next read or write of the poisoned range'
const ON_TOUCH_TEXT = `will get SIGBUS ${ON_TOUCH.seed} on touching the mapping from the seed's kernel ` +
  `(SIGBUS ${ON_TOUCH.simulated} from this simulation: a failed FUSE read)`

/** What the seed's kill path gives one holder. A mapping counts when it covers any page of the poisoned
 *  dpage (the whole dpage is lost); its address is the poisoned frame's, or the dpage's first mapped page
 *  when the frame itself lies outside the mapping. */
function decide (
  holder: FileHolder, pgoff: number, dpagePgoff: number, frames: number, flags: number, opener: boolean,
  early: () => EarlyKill
): MceProcess | null {
  const mappings: MceMapping[] = []
  for (const m of holder.mappings) {
    const pages = (m.end - m.start) / PAGE_SIZE
    const first = Math.max(m.pgoff, dpagePgoff)
    const last = Math.min(m.pgoff + pages, dpagePgoff + frames) - 1
    if (first > last) continue
    const page = pgoff >= first && pgoff <= last ? pgoff : first
    // add_to_kill(): tk->addr = vma->vm_start + ((pgoff - vma->vm_pgoff) << PAGE_SHIFT)
    mappings.push({ ...m, vaddr: m.start + (page - m.pgoff) * PAGE_SIZE })
  }
  if (mappings.length === 0 && holder.fds.length === 0) return null
  const proc: MceProcess = {
    pid: holder.pid,
    comm: holder.comm,
    opener,
    collected: false,
    earlyKill: false,
    earlyKillReason: '',
    fds: holder.fds,
    mappings,
    signal: null,
    siCode: null,
    vaddr: mappings.length > 0 ? mappings[0].vaddr : null,
    addrLsb: null,
    reason: '',
    sent: null,
    way: null
  }
  if (mappings.length === 0) {
    // __collect_procs_file() walks the file's VMAs only: a descriptor is nothing the kernel can signal.
    proc.earlyKillReason = 'holds the file through a descriptor only'
    proc.reason = `not collected by the kernel (no mapping of the page); ${ON_ACCESS}`
    return proc
  }
  const e = early()
  proc.earlyKill = e.early
  proc.earlyKillReason = e.reason
  if (!e.early) {
    proc.reason = `not collected early (${e.reason}); ${ON_TOUCH_TEXT}`
    return proc
  }
  proc.collected = true
  if (!(flags & MF_MUST_KILL)) {
    proc.reason = `no signal without must_kill (kill_procs signals only with MF_MUST_KILL); ${ON_TOUCH_TEXT}`
    return proc
  }
  proc.signal = 'SIGBUS'
  proc.siCode = flags & MF_ACTION_REQUIRED ? 'BUS_MCEERR_AR' : 'BUS_MCEERR_AO'
  proc.addrLsb = 12
  proc.reason = flags & MF_ACTION_REQUIRED ? 'must_kill, action required' : 'must_kill, action optional'
  return proc
}

/** Sends each decided SIGBUS, one process after the other, recording how it went. */
async function deliverSignals (report: MceReport, env: MceEnvironment): Promise<void> {
  const hex = '0x' + report.pfn.toString(16)
  for (const proc of report.processes) {
    if (!proc.signal || proc.siCode === null || proc.vaddr === null) continue
    try {
      const result = await env.sendSigbus(proc.pid, SI_CODES[proc.siCode], BigInt(proc.vaddr))
      proc.sent = true
      proc.way = result.way
      if (result.error) proc.sendError = result.error
      env.log(`Memory failure: ${hex}: Sending SIGBUS to ${proc.comm}:${proc.pid} due to hardware memory corruption`)
    } catch (err) {
      proc.sent = false
      proc.sendError = (err as NodeJS.ErrnoException).code ?? String(err)
    }
  }
}
