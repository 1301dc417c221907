// dmemfs help, and the list of every command: the top-level help shows each command's usage line with all
// of its flags, generated from the commands themselves.

import { Command, commandHelp, Parsed, print, UsageError, usageLine } from './common'
import { inject } from './inject'
import { mce } from './mce'
import { mount } from './mount'
import { pfn } from './pfn'
import { softOfflineCommand } from './soft-offline'
import { stat } from './stat'
import { umount } from './umount'
import { unpoison } from './unpoison'

export const help: Command = {
  name: 'help',
  args: '[COMMAND]',
  summary: 'show this help, or a command\'s',
  flags: [],
  details: "Shows the commands, or one command's flags (as 'dmemfs COMMAND --help' does).",
  run (parsed: Parsed): number {
    if (parsed.positionals.length > 1) throw new UsageError('help takes at most one COMMAND')
    const name = parsed.positionals[0]
    if (name === undefined) {
      print(mainHelp())
      return 0
    }
    print(commandHelp(findCommand(name)))
    return 0
  }
}

export const COMMANDS: readonly Command[] = [mount, umount, mce, softOfflineCommand, inject, stat, pfn, unpoison, help]

export function findCommand (name: string): Command {
  const cmd = COMMANDS.find(c => c.name === name)
  if (!cmd) throw new UsageError(`unknown command '${name}' (commands: ${COMMANDS.map(c => c.name).join(', ')})`)
  return cmd
}

/** Each command's usage line, without the leading `dmemfs`. */
export function commandLines (): Array<{ usage: string, summary: string }> {
  return COMMANDS.map(c => ({ usage: usageLine(c).replace(/^dmemfs /, ''), summary: c.summary }))
}

export function mainHelp (): string {
  const lines = ['usage: dmemfs COMMAND [ARGS]', '', 'commands:']
  for (const c of commandLines()) lines.push(`  ${c.usage}`, `      ${c.summary}`)
  lines.push('', "Run 'dmemfs COMMAND --help' for what a command's flags do.")
  return lines.join('\n')
}
