// What every `dmemfs` command shares: how a command is described (its help and the top-level help are
// generated from that description), flag parsing with Node's util.parseArgs, the two kinds of failure
// (bad usage, exit 2; anything else, exit 1) and the arguments several commands take. Reaching a mounted
// dmemfs is in dmem.ts.

import { parseArgs } from 'util'
import { parseKernelU64 } from '../mce/input'
import { DEFAULT_CELLS, MAX_CELLS } from '../statmap'

export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2

/** Bad usage: an unknown flag, a missing or malformed argument. Exit 2. */
export class UsageError extends Error {}

export interface FlagDef {
  name: string // the long name, without `--`
  short?: string // one letter, as `-o`
  value?: string // the value's placeholder (a flag without one is a boolean)
  multiple?: boolean // may be repeated
  help: string
}

export interface Parsed {
  positionals: string[]
  flags: Set<string> // boolean flags given
  values: Map<string, string[]> // valued flags given, each with every value in order
}

export interface Command {
  name: string
  args: string // the positional arguments, e.g. `MOUNTPOINT PFN`
  summary: string // one line for the top-level help
  flags: FlagDef[]
  details: string // what `dmemfs COMMAND --help` says after the usage line
  epilogue?: string // and after the flags
  run (parsed: Parsed): Promise<number> | number
}

export function print (line: string): void {
  process.stdout.write(line + '\n')
}

/** Prints a line of bytes (one char per byte), such as a file's name or a control file's text. */
export function printBytes (line: string): void {
  process.stdout.write(Buffer.from(line + '\n', 'latin1'))
}

/** The one line a failure prints on standard error, as bytes (it may name a file). */
export function printFailure (line: string): void {
  process.stderr.write(Buffer.from(`dmemfs: ${line}\n`, 'latin1'))
}

/** How a flag is written in a usage line: `-o OPTIONS`, `--cells N`, `--json`. */
function flagSpelling (f: FlagDef): string {
  const name = f.short ? `-${f.short}` : `--${f.name}`
  return f.value ? `${name} ${f.value}` : name
}

export function usageLine (cmd: Command): string {
  return ['dmemfs', cmd.name, cmd.args, ...cmd.flags.map(f => `[${flagSpelling(f)}]`)].filter(s => s !== '').join(' ')
}

/** `dmemfs COMMAND --help`: the usage line, the details, then each flag with its meaning. */
export function commandHelp (cmd: Command): string {
  const lines = [`usage: ${usageLine(cmd)}`, '', cmd.details]
  if (cmd.flags.length > 0) {
    const width = Math.max(...cmd.flags.map(f => flagSpelling(f).length))
    lines.push('')
    for (const f of cmd.flags) lines.push(...hanging(`  ${flagSpelling(f).padEnd(width)}  `, f.help))
  }
  if (cmd.epilogue !== undefined) lines.push('', cmd.epilogue)
  return lines.join('\n')
}

const HELP_WIDTH = 100

/** `text` after `lead`, wrapped at HELP_WIDTH with the following lines indented as far as `lead`. */
export function hanging (lead: string, text: string): string[] {
  const lines: string[] = []
  let line = lead
  let words = 0 // on this line
  for (const word of text.split(/\s+/)) {
    if (words > 0 && line.length + 1 + word.length > HELP_WIDTH) {
      lines.push(line)
      line = ' '.repeat(lead.length)
      words = 0
    }
    line += (words > 0 ? ' ' : '') + word
    words++
  }
  lines.push(line)
  return lines
}

/** The command's flags parsed with util.parseArgs; its errors become one-line usage errors. */
export function parseCommand (cmd: Command, args: string[]): Parsed {
  const options: Record<string, { type: 'string' | 'boolean', short?: string, multiple?: boolean }> = {}
  for (const f of cmd.flags) {
    options[f.name] = { type: f.value ? 'string' : 'boolean', ...(f.short ? { short: f.short } : {}), multiple: true }
  }
  let result: ReturnType<typeof parseArgs>
  try {
    result = parseArgs({ args, options, allowPositionals: true, strict: true })
  } catch (err) {
    throw new UsageError(parseArgsMessage(err))
  }
  const parsed: Parsed = { positionals: result.positionals, flags: new Set(), values: new Map() }
  for (const f of cmd.flags) {
    const given = result.values[f.name]
    if (given === undefined) continue
    if (!f.value) {
      parsed.flags.add(f.name)
      continue
    }
    const values = given as string[]
    if (values.some(v => v === '')) throw new UsageError(`${flagSpelling({ ...f, value: undefined })} needs a value`)
    if (!f.multiple && values.length > 1) throw new UsageError(`--${f.name} given twice`)
    parsed.values.set(f.name, values)
  }
  return parsed
}

/** util.parseArgs explains itself at length; one short line says the same. */
function parseArgsMessage (err: unknown): string {
  const e = err as { code?: string, message?: string }
  const name = /'(-[^' ,]+)/.exec(e.message ?? '')?.[1] ?? ''
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': return `unknown flag '${name}'`
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/does not take an argument/.test(e.message ?? '')) return `${name} takes no value`
      // `--count -1`: a value that starts with a dash reads as a flag.
      if (/argument is ambiguous/.test(e.message ?? '')) return `${name} needs a value (a value starting with '-' is written ${name}=VALUE)`
      return `${name} needs a value`
    default: return e.message ?? String(err)
  }
}

export function value (parsed: Parsed, name: string): string | undefined {
  return parsed.values.get(name)?.[0]
}

/** A PFN as the kernel's kstrtoull(buf, 0) takes it; anything else is bad usage. */
export function checkPfn (text: string): string {
  const pfn = parseKernelU64(text)
  if (!pfn.ok) throw new UsageError(`bad PFN: ${pfn.error}`)
  return text
}

export function parseCells (text: string | undefined): number {
  if (text === undefined) return DEFAULT_CELLS
  const n = /^[0-9]+$/.test(text) ? Number(text) : NaN
  if (!(n >= 1 && n <= MAX_CELLS)) throw new UsageError(`--cells needs a number from 1 to ${MAX_CELLS}, not '${text}'`)
  return n
}

export function useColour (): boolean {
  return process.stdout.isTTY === true && process.env.NO_COLOR === undefined && process.env.TERM !== 'dumb'
}
