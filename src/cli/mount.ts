// dmemfs mount: mount and serve in the foreground.

import { textBytes } from '../fs/name'
import { fdLog, releaseTerminals, STDERR_FD, STDOUT_FD } from '../fuse/daemon-log'
import { readMachineLimits } from '../fuse/machine'
import { DaemonLifecycle, describePool, mountDmemfs } from '../fuse/mount'
import { MOUNT_OPTIONS, MountOptionDef, parseMountOptions } from '../options'
import { layoutPool } from '../pool/layout'
import { checkPoolFits } from '../pool/limits'
import { Command, hanging, Parsed, UsageError } from './common'

/** A mount option's meaning as plain text: the README's `code` spans without their backticks. */
function plainMeaning (o: MountOptionDef): string {
  const meaning = o.meaning.replace(/`/g, '')
  return o.default === '' ? meaning : `${meaning} (default ${o.default.replace(/`/g, '')})`
}

/** Every mount option with its meaning and default, as `dmemfs mount --help` lists them. */
export function mountOptionsHelp (): string {
  const width = Math.max(...MOUNT_OPTIONS.map(o => o.syntax.length))
  const lines = ['mount options (comma-separated after -o, in the kernel\'s spelling):']
  for (const o of MOUNT_OPTIONS) lines.push(...hanging(`  ${o.syntax.padEnd(width)}  `, plainMeaning(o)))
  return lines.join('\n')
}

export const mount: Command = {
  name: 'mount',
  args: 'MOUNTPOINT',
  summary: 'mount dmemfs and serve it in the foreground (Ctrl-C unmounts)',
  flags: [{ name: 'options', short: 'o', value: 'OPTIONS', multiple: true, help: 'mount options, comma-separated; -o may be repeated' }],
  details: 'Mounts dmemfs on an existing empty directory and serves it in the foreground until SIGINT,\n' +
    'SIGTERM or SIGHUP (each unmounts first), or until it is unmounted.',
  epilogue: mountOptionsHelp(),
  async run (parsed: Parsed): Promise<number> {
    if (parsed.positionals.length !== 1) throw new UsageError('mount needs exactly one MOUNTPOINT')
    const opts = parseMountOptions(parsed.values.get('options') ?? [])
    if (!opts.ok) throw new UsageError(opts.error)
    // Refused at once, before minutes of allocation that could only fail.
    const layout = layoutPool(opts.value.dmem, opts.value.nodes, opts.value.dpageShift)
    const tooLarge = layout.ok ? checkPoolFits(layout.value, readMachineLimits()) : null
    if (tooLarge) throw new UsageError(`pool too large for this machine: ${tooLarge}`)
    // From here on the daemon writes only through these, byte strings (a file's name in a line goes out
    // exactly): losing its terminal or its reader must not end it.
    const log = fdLog(STDOUT_FD)
    const errLog = fdLog(STDERR_FD)
    // Armed before the kernel mount: a signal or a fatal error at any moment after it must unmount.
    const lifecycle = new DaemonLifecycle(log, errLog)
    const mounted = await mountDmemfs(parsed.positionals[0], opts.value, log, () => lifecycle.arm())
    const served = lifecycle.serve(mounted)
    log(textBytes(`dmemfs: mounted ${mounted.mountpoint} (${describePool(mounted.sb.pool.layout)}; native data path ${mounted.datapath})`))
    // Exits here, not through main(): flushing process.stdout could fail on a lost reader or terminal.
    const code = await served
    releaseTerminals()
    process.exit(code)
  }
}
