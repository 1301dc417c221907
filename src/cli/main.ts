// The `dmemfs` command: picks the command, parses its flags and turns every failure into one line on stderr
// and an exit code: 2 for bad usage, 1 for anything else.

import { MountError } from '../fuse/mount'
import { commandHelp, EXIT_FAILURE, EXIT_USAGE, parseCommand, print, UsageError } from './common'
import { COMMANDS, findCommand, mainHelp } from './help'

export async function main (argv: string[]): Promise<number> {
  const [name, ...args] = argv
  if (name === undefined) {
    throw new UsageError(`no command given (commands: ${COMMANDS.map(c => c.name).join(', ')}; try 'dmemfs --help')`)
  }
  if (name === '--help' || name === '-h') {
    print(mainHelp())
    return 0
  }
  const cmd = findCommand(name)
  if (args.includes('--help') || args.includes('-h')) {
    print(commandHelp(cmd))
    return 0
  }
  return await cmd.run(parseCommand(cmd, args))
}

/** The line a failure prints. A system call's failure (EACCES, ENOENT ...) is the user's to fix, said in
 *  words; anything else is a bug, shown with its stack. */
export function failureMessage (err: unknown): string {
  if (err instanceof UsageError || err instanceof MountError) return err.message
  if (!(err instanceof Error) || !('code' in err)) return err instanceof Error ? String(err.stack) : String(err)
  return systemMessage(err as NodeJS.ErrnoException)
}

// The control files everyone may read; the others are root's (see README, "The control directory").
const PUBLIC_CONTROL = /\/\.dmem\/(stat|map|datapath)$/

function systemMessage (err: NodeJS.ErrnoException): string {
  const where = typeof err.path === 'string' ? err.path : null
  if (where === null) return err.message
  if (err.code === 'ENOENT') return `${where}: no such file or directory`
  if (err.code !== 'EACCES' && err.code !== 'EPERM') return err.message
  if (PUBLIC_CONTROL.test(where)) {
    return `${where}: permission denied (users other than root reach a dmemfs only when it is mounted with -o allow_other)`
  }
  if (/\/\.dmem\/[^/]+$/.test(where)) return `${where}: permission denied (only root may use it, as the kernel keeps PFNs and injection)`
  return `${where}: permission denied`
}

export function exitCode (err: unknown): number {
  return err instanceof UsageError ? EXIT_USAGE : EXIT_FAILURE
}

export function runCli (argv: string[]): void {
  // A reader that went away (`dmemfs stat MNT | head`) has what it wanted: end quietly.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => process.exit(err.code === 'EPIPE' ? 0 : EXIT_FAILURE))
  main(argv).then(
    // Standard output to a pipe may still be writing: exit once it has all gone (a long --json or map
    // would otherwise be cut short).
    code => process.stdout.write('', () => process.exit(code)),
    (err: unknown) => {
      process.stderr.write(`dmemfs: ${failureMessage(err)}\n`)
      process.exit(exitCode(err))
    }
  )
}
