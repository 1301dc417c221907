// dmemfs umount: unmount a dmemfs; its daemon notices and exits.

import { execFileSync } from 'child_process'
import * as path from 'path'
import { findMount, FSTYPE, MountError } from '../fuse/mount'
import { Command, Parsed, UsageError } from './common'

export const umount: Command = {
  name: 'umount',
  args: 'MOUNTPOINT',
  summary: 'unmount a dmemfs (its daemon exits 0)',
  flags: [],
  details: 'Unmounts a dmemfs; its daemon notices and exits.',
  run (parsed: Parsed): number {
    if (parsed.positionals.length !== 1) throw new UsageError('umount needs exactly one MOUNTPOINT')
    const mnt = path.resolve(parsed.positionals[0])
    const entry = findMount(mnt)
    if (!entry) throw new MountError(`${mnt} is not mounted`)
    if (entry.fstype !== FSTYPE) throw new MountError(`${mnt} is not a dmemfs (${entry.fstype})`)
    try {
      execFileSync('umount', [mnt], { stdio: ['ignore', 'ignore', 'pipe'] })
    } catch (err) {
      const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim().split('\n')[0]
      throw new MountError(stderr || `cannot unmount ${mnt}`)
    }
    return 0
  }
}
