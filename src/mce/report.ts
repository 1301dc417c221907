// The memory-failure report as people and scripts read it: one fact per line, PFNs and addresses in hex;
// or JSON with the same facts. Names (the file's path, a process's comm) are byte strings: the text escapes
// them as seq_file does, the JSON carries them in Python's surrogateescape convention (see fs/name.ts).

import { nameEscape, nameForJson } from '../fs/name'
import { fmtSize, hex } from '../pool/layout'
import { flagNames } from './input'
import { MceProcess, MceReport, ON_TOUCH, Revocation } from './memory-failure'

const STATE_WORD = { used: 'used', free: 'free', 'already-poisoned': 'poisoned' } as const

export const KILL_NOTE = 'a signal sent by way kill (kill(2)) carries no si_code or si_addr: the process sees a ' +
  'plain SIGBUS (SI_USER)'

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
  if (r.revocation) lines.push(renderRevocation(r.revocation))
  if (killedPlainly(r)) lines.push(`note ${KILL_NOTE}`)
  return lines.join('\n') + '\n'
}

function killedPlainly (r: MceReport): boolean {
  return r.processes.some(p => p.way === 'kill')
}

function renderRevocation (v: Revocation): string {
  const ms = v.ms.toFixed(1)
  const failed = v.failed.map(f => `${nameEscape(f.via)}: ${f.error}`).join(', ')
  if (v.via === null) return `revoked nothing: no way to open the file${failed ? ` (${failed})` : ''} (${ms} ms)`
  return `revoked page cache and mappings by an open of ${nameEscape(v.via)} (${ms} ms${failed ? `; before that ${failed}` : ''})`
}

function renderProcess (p: MceProcess, showEarlyKill: boolean): string {
  const parts = [`process ${p.pid} (${nameEscape(p.comm)})`]
  if (p.opener) parts.push('opener')
  parts.push(p.collected ? 'collected' : 'not-collected')
  if (showEarlyKill && p.mappings.length > 0) parts.push(`early_kill ${p.earlyKill ? 'yes' : 'no'} (${p.earlyKillReason})`)
  if (p.fds.length > 0) parts.push(`fd ${p.fds.join(',')}`)
  for (const m of p.mappings) parts.push(`map ${hex(m.start)}-${hex(m.end)} vaddr ${hex(m.vaddr)}`)
  if (p.signal === 'SIGBUS') parts.push(`signal SIGBUS ${p.siCode} si_addr_lsb ${p.addrLsb}`)
  else parts.push('signal none')
  // The early-kill reason is shown once, after early_kill; the signal's reason need not repeat it.
  parts.push(`(${showEarlyKill ? p.reason.replace(` (${p.earlyKillReason})`, '') : p.reason})`)
  if (p.sent === true) parts.push(`sent way ${p.way}${p.sendError ? ` (${p.sendError})` : ''}`)
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
      collected: p.collected,
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
      way: p.way,
      ...(p.sendError ? { send_error: p.sendError } : {}),
      // What it meets later: mapped, SIGBUS on touching the page (the seed's code and this machine's);
      // through a descriptor, EIO on reading or writing it.
      on_touch: p.mappings.length > 0 ? { seed: ON_TOUCH.seed, simulated: ON_TOUCH.simulated } : null,
      on_access: 'EIO'
    })),
    early_kill_mode: r.earlyKillMode,
    revocation: r.revocation && {
      via: r.revocation.via === null ? null : nameForJson(r.revocation.via),
      ms: Number(r.revocation.ms.toFixed(3)),
      failed: r.revocation.failed.map(f => ({ via: nameForJson(f.via), error: f.error }))
    },
    ...(killedPlainly(r) ? { note: KILL_NOTE } : {})
  }
}
