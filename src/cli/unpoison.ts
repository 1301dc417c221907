// dmemfs unpoison: return a poisoned dpage to service, as a write to .dmem/unpoison does.

import { checkPfn, Command, Parsed, UsageError } from './common'
import { askControl, controlPath, firstLine, mountedDmemfs } from './dmem'

export const unpoison: Command = {
  name: 'unpoison',
  args: 'MOUNTPOINT PFN',
  summary: 'return a poisoned dpage to service',
  flags: [],
  details: 'Returns a poisoned dpage to service, as writing PFN to MOUNTPOINT/.dmem/unpoison does. A dpage still\n' +
    'owned by a file stays poisoned (exit 1).',
  run (parsed: Parsed): number {
    if (parsed.positionals.length !== 2) throw new UsageError('unpoison needs MOUNTPOINT and PFN')
    const [mountpoint, pfn] = parsed.positionals
    const { ok, reply } = askControl(controlPath(mountedDmemfs(mountpoint), 'unpoison'), checkPfn(pfn) + '\n')
    if (!ok) {
      // The reason may name a file: its bytes go out exactly.
      process.stderr.write(Buffer.from(`dmemfs: ${firstLine(reply)}\n`, 'latin1'))
      return 1
    }
    process.stdout.write(Buffer.from(reply, 'latin1'))
    return 0
  }
}
