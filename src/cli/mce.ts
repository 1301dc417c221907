// dmemfs mce: run the memory-failure path for a frame, as a write to .dmem/mce does, and print the report.
// The frame is named by PFN, by a byte of a file, or by an address in a process (target.ts).

import { MountError } from '../fuse/mount'
import { Command, FlagDef, Parsed } from './common'
import { askControl, closeInheritedUnder, controlPath, firstLine } from './dmem'
import { headedByTarget, parseTarget, Target, TARGET_FLAGS } from './target'

// Each flag is the control file's word of the same name, `-` for `_`.
const WORDS = ['action-required', 'must-kill', 'deliver', 'json']

/** The words written to .dmem/mce for these flags, after the PFN. */
export function mceWords (flags: Set<string>): string[] {
  return WORDS.filter(w => flags.has(w)).map(w => w.replace('-', '_'))
}

/** Said with every write of the CLI to .dmem/mce: this command (and what launched it) inherits its shell's
 *  descriptors and is not what the error is about. */
export const EXCLUDE_WRITER = 'exclude_writer'

/** The report for a target as the command prints it: a `target` line and the report's text, or the JSON
 *  report with a `target` object first. Throws when the control file refuses. */
export function injectMce (t: Target, words: string[]): string {
  const json = words.includes('json')
  const { ok, reply } = askControl(controlPath(t.mnt, 'mce'), [t.pfn, EXCLUDE_WRITER, ...words].join(' ') + '\n')
  if (!ok) throw new MountError(firstLine(reply))
  return headedByTarget(t, reply, json)
}

/** The memory-failure flags, as `dmemfs mce` and `dmemfs inject` take them. */
export const MCE_FLAGS: FlagDef[] = [
  { name: 'action-required', help: 'MF_ACTION_REQUIRED: signal BUS_MCEERR_AR instead of BUS_MCEERR_AO' },
  { name: 'must-kill', help: 'MF_MUST_KILL: signal the processes mapping the page (without it, none is signalled)' },
  { name: 'deliver', help: 'really send the signals (the report says which way each went)' }
]

export const mce: Command = {
  name: 'mce',
  args: '[MOUNTPOINT PFN]',
  summary: 'run the memory-failure path for a PFN, a byte of a file or an address in a process, and print the report',
  flags: [
    ...TARGET_FLAGS,
    ...MCE_FLAGS,
    { name: 'json', help: 'print the report as JSON, with a "target" object saying how the frame was named' }
  ],
  details: 'Runs the memory-failure path for one 4 KiB frame, as writing its PFN to MOUNTPOINT/.dmem/mce does, and\n' +
    'prints the report after a line naming the target. The frame is PFN (decimal, 0x hex or 0 octal) of the\n' +
    'dmemfs at MOUNTPOINT; or the frame backing byte N of a dmemfs file (--file PATH --offset N); or the frame\n' +
    'behind address ADDR in process PID (--pid PID --vaddr ADDR), found through /proc/PID/maps. A hole or an\n' +
    'address not backed by a dmemfs file is an error (exit 1) and nothing is poisoned. This command (and what\n' +
    'launched it) is not listed as a holder.',
  run (parsed: Parsed): number {
    const t = parseTarget(parsed, 'mce')
    closeInheritedUnder(t.mnt)
    process.stdout.write(Buffer.from(injectMce(t, mceWords(parsed.flags)), 'latin1'))
    return 0
  }
}
