// dmemfs unpoison: return poisoned dpages to service, as writes to .dmem/unpoison do: one PFN, or with --all
// every poisoned dpage that no file owns.

import { MountError } from '../fuse/mount'
import { checkPfn, Command, Parsed, print, printBytes, printFailure, UsageError } from './common'
import { askControl, controlPath, firstLine, mountedDmemfs, readPoisoned } from './dmem'

function unpoisonOne (mnt: string, pfn: string): { ok: boolean, reply: string } {
  return askControl(controlPath(mnt, 'unpoison'), pfn + '\n')
}

/** Every poisoned dpage, in pool order, through .dmem/unpoison; those a file still owns are listed. */
function unpoisonAll (mnt: string): number {
  const poisoned = readPoisoned(mnt)
  if (poisoned === null) throw new MountError('only root may read .dmem/poisoned and write .dmem/unpoison')
  let back = 0
  const stayed: string[] = []
  for (const p of poisoned) {
    const pfn = '0x' + p.pfn.toString(16)
    const { ok, reply } = unpoisonOne(mnt, pfn)
    if (ok) {
      back++
      process.stdout.write(Buffer.from(reply, 'latin1'))
      continue
    }
    // The reply names the owner now (the record names the one at the time of the failure).
    const owner = /still owned by (.*) \(ino (\d+)\)/.exec(reply)
    stayed.push(owner ? `${pfn} stays poisoned: owned by ${owner[1]} (ino ${owner[2]})` : `${pfn} stays poisoned: ${firstLine(reply)}`)
  }
  for (const line of stayed) printBytes(line)
  print(`${back} of ${poisoned.length} poisoned dpages back in service, ${stayed.length} still owned by a file`)
  return stayed.length > 0 ? 1 : 0
}

export const unpoison: Command = {
  name: 'unpoison',
  args: 'MOUNTPOINT [PFN]',
  summary: 'return a poisoned dpage, or every one no file owns, to service',
  flags: [
    {
      name: 'all',
      help: 'every poisoned dpage (from .dmem/poisoned) that no file owns goes back to service; those a file ' +
        'still owns are listed with their owners, and the exit status is 1 if any stayed'
    }
  ],
  details: 'Returns a poisoned dpage to service, as writing PFN to MOUNTPOINT/.dmem/unpoison does. A dpage still\n' +
    'owned by a file stays poisoned (exit 1).',
  run (parsed: Parsed): number {
    const all = parsed.flags.has('all')
    if (all && parsed.positionals.length !== 1) throw new UsageError('unpoison --all needs MOUNTPOINT alone')
    if (!all && parsed.positionals.length !== 2) throw new UsageError('unpoison needs MOUNTPOINT and PFN, or MOUNTPOINT --all')
    const mnt = mountedDmemfs(parsed.positionals[0])
    if (all) return unpoisonAll(mnt)
    const { ok, reply } = unpoisonOne(mnt, checkPfn(parsed.positionals[1]))
    if (!ok) {
      // The reason may name a file: its bytes go out exactly.
      printFailure(firstLine(reply))
      return 1
    }
    process.stdout.write(Buffer.from(reply, 'latin1'))
    return 0
  }
}
