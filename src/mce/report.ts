// The memory-failure report as people and scripts read it: one fact per line, PFNs and addresses in hex;
// or JSON with the same facts. Names (the file's path, a process's comm) are byte strings: the text escapes
// them as seq_file does, the JSON carries them in Python's surrogateescape convention (see fs/name.ts).

import { nameEscape, nameForJson } from '../fs/name'
import { fmtSize } from '../pool/layout'
import { flagNames } from './input'
import { MceProcess, MceReport } from './memory-failure'

const STATE_WORD = { used: 'used', free: 'free', 'already-poisoned': 'poisoned' } as const

export const KILL_NOTE = 'signals are sent with kill(2): si_code and si_addr cannot be set from user space, ' +
  'so the process sees a plain signal (SI_USER)'

function hex (n: number): string {
  return '0x' + n.toString(16)
}

export function renderReport (r: MceReport): string {
  const lines = [
    `pfn ${hex(r.pfn)} phys ${hex(r.phys)} node ${r.node} region ${r.region} ` +
      `dpage ${hex(r.dpagePfn)} (${fmtSize(r.dpageSize)}) state ${STATE_WORD[r.state]}`,
    `flags ${hex(r.flags)}${r.flags ? ` (${flagNames(r.flags).join(' ')})` : ''}`,
    `result ${r.result}`
  ]
  if (r.file) {
    lines.push(`file ${r.file.path === null ? '(deleted)' : nameEscape(r.file.path)} ino ${r.file.ino} pgoff ${hex(r.file.pgoff)} offset ${r.file.offset}`)
  }
  for (const h of r.handles) {
    lines.push(`handle ${h.fh} opener ${h.opener} (${nameEscape(h.comm)}) (tracked via open handles)`)
  }
  if (r.state === 'used') {
    if (r.processes.length === 0) lines.push('processes none')
    for (const p of r.processes) lines.push(renderProcess(p, r.earlyKillMode !== 'all'))
  }
  if (r.deliver && r.processes.some(p => p.signal)) lines.push(`note ${KILL_NOTE}`)
  return lines.join('\n') + '\n'
}

function renderProcess (p: MceProcess, showEarlyKill: boolean): string {
  const parts = [`process ${p.pid} (${nameEscape(p.comm)})`]
  if (p.opener) parts.push('opener')
  if (showEarlyKill) parts.push(`early_kill ${p.earlyKill ? 'yes' : 'no'} (${p.earlyKillReason})`)
  if (p.fds.length > 0) parts.push(`fd ${p.fds.join(',')}`)
  for (const m of p.mappings) parts.push(`map ${hex(m.start)}-${hex(m.end)} vaddr ${hex(m.vaddr)}`)
  if (p.signal === 'SIGBUS') parts.push(`signal SIGBUS ${p.siCode} si_addr_lsb ${p.addrLsb}`)
  else if (p.signal === 'SIGKILL') parts.push('signal SIGKILL')
  else parts.push('signal none')
  // The early-kill reason is shown once, after early_kill; the signal's reason need not repeat it.
  parts.push(`(${showEarlyKill ? p.reason.replace(` (${p.earlyKillReason})`, '') : p.reason})`)
  if (p.sent === true) parts.push('sent')
  if (p.sent === false) parts.push(`not sent: ${p.sendError}`)
  return parts.join(' ')
}

export function reportJson (r: MceReport): object {
  return {
    pfn: hex(r.pfn),
    phys: hex(r.phys),
    node: r.node,
    region: r.region,
    dpage: hex(r.dpagePfn),
    dpage_size: r.dpageSize,
    state: r.state,
    flags: r.flags,
    flag_names: flagNames(r.flags),
    result: r.result,
    file: r.file && { path: r.file.path === null ? null : nameForJson(r.file.path), ino: r.file.ino, pgoff: hex(r.file.pgoff), offset: r.file.offset },
    ino: r.file ? r.file.ino : null,
    pgoff: r.file ? hex(r.file.pgoff) : null,
    handles: r.handles.map(h => ({ fh: h.fh, opener: h.opener, comm: nameForJson(h.comm), source: 'tracked via open handles' })),
    processes: r.processes.map(p => ({
      pid: p.pid,
      comm: nameForJson(p.comm),
      opener: p.opener,
      early_kill: p.earlyKill,
      early_kill_reason: p.earlyKillReason,
      fds: p.fds,
      mappings: p.mappings.map(m => ({ start: hex(m.start), end: hex(m.end), pgoff: hex(m.pgoff), vaddr: hex(m.vaddr) })),
      vaddr: p.vaddr === null ? null : hex(p.vaddr),
      signal: p.signal,
      si_code: p.siCode,
      si_addr_lsb: p.addrLsb,
      reason: p.reason,
      sent: p.sent,
      ...(p.sendError ? { send_error: p.sendError } : {})
    })),
    early_kill_mode: r.earlyKillMode,
    ...(r.deliver ? { note: KILL_NOTE } : {})
  }
}
