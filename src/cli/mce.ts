// dmemfs mce: run the memory-failure path for a PFN, as a write to .dmem/mce does, and print the report.

import { MountError } from '../fuse/mount'
import { checkPfn, Command, Parsed, UsageError } from './common'
import { askControl, closeInheritedUnder, controlPath, firstLine, mountedDmemfs } from './dmem'

// Each flag is the control file's word of the same name, `-` for `_`.
const WORDS = ['action-required', 'must-kill', 'deliver', 'json']

export const mce: Command = {
  name: 'mce',
  args: 'MOUNTPOINT PFN',
  summary: 'run the memory-failure path for a PFN and print the report',
  flags: [
    { name: 'action-required', help: 'MF_ACTION_REQUIRED: signal BUS_MCEERR_AR instead of BUS_MCEERR_AO' },
    { name: 'must-kill', help: 'MF_MUST_KILL: signal the processes mapping the page (without it, none is signalled)' },
    { name: 'deliver', help: 'really send the signals (the report says which way each went)' },
    { name: 'json', help: 'print the report as JSON' }
  ],
  details: 'Runs the memory-failure path for the 4 KiB frame PFN (decimal, 0x hex or 0 octal), as writing it to\n' +
    'MOUNTPOINT/.dmem/mce does, and prints the report. This command (and what launched it) is not listed.',
  run (parsed: Parsed): number {
    if (parsed.positionals.length !== 2) throw new UsageError('mce needs MOUNTPOINT and PFN')
    const [mountpoint, pfn] = parsed.positionals
    // exclude_writer: this command (and what launched it) inherits its shell's descriptors and is not what
    // the error is about.
    const words = [checkPfn(pfn), 'exclude_writer', ...WORDS.filter(w => parsed.flags.has(w)).map(w => w.replace('-', '_'))]
    const mnt = mountedDmemfs(mountpoint)
    closeInheritedUnder(mnt)
    const { ok, reply } = askControl(controlPath(mnt, 'mce'), words.join(' ') + '\n')
    if (!ok) throw new MountError(firstLine(reply))
    process.stdout.write(Buffer.from(reply, 'latin1'))
    return 0
  }
}
