// dmemfs soft-offline: retire a dpage before it fails, as a write to .dmem/soft_offline does. A used dpage's
// data moves to a fresh dpage first; nobody is signalled.

import { Command, Parsed, printFailure } from './common'
import { askControl, controlPath, firstLine } from './dmem'
import { headedByTarget, parseTarget, Target, TARGET_FLAGS } from './target'

export interface SoftOfflineResult {
  ok: boolean
  out: string // what goes to standard output
  reason: string // on failure, the one line saying why
}

/** Soft-offlines a target through .dmem/soft_offline. */
export function injectSoftOffline (t: Target, json: boolean): SoftOfflineResult {
  const { ok, reply } = askControl(controlPath(t.mnt, 'soft_offline'), t.pfn + (json ? ' json' : '') + '\n')
  let reason = ''
  if (!ok) {
    // A refusal of the request itself is `error: ...`; a refused soft offline is a report whose result says why.
    reason = reply.startsWith('error: ') ? firstLine(reply) : resultOf(reply, json)
    if (reply.startsWith('error: ')) return { ok, out: '', reason }
  }
  return { ok, out: headedByTarget(t, reply, json), reason }
}

function resultOf (reply: string, json: boolean): string {
  if (json) return String((JSON.parse(reply) as { result?: string }).result)
  return /^result (.*)$/m.exec(reply)?.[1] ?? firstLine(reply)
}

export const softOfflineCommand: Command = {
  name: 'soft-offline',
  args: '[MOUNTPOINT PFN]',
  summary: 'retire a dpage before it fails: its data moves to a fresh dpage, nobody is signalled',
  flags: [
    TARGET_FLAGS[0],
    TARGET_FLAGS[1],
    { name: 'json', help: 'print the result as JSON, with a "target" object saying how the frame was named' }
  ],
  details: 'Soft-offlines the dpage holding PFN (or byte N of a dmemfs file, with --file PATH --offset N), as\n' +
    "writing it to MOUNTPOINT/.dmem/soft_offline does, after the kernel's soft_offline_page(): a free dpage\n" +
    'leaves service; a used one has its data migrated to a fresh dpage first, and the file reads the same.\n' +
    'The retired dpage counts in offline_dpages, not as poisoned. A poisoned or offline dpage, or a used one\n' +
    'with no free dpage to move to: one line saying why, exit 1, nothing changes.',
  run (parsed: Parsed): number {
    const t = parseTarget(parsed, 'soft-offline')
    const r = injectSoftOffline(t, parsed.flags.has('json'))
    process.stdout.write(Buffer.from(r.out, 'latin1'))
    if (r.ok) return 0
    printFailure(r.reason)
    return 1
  }
}
