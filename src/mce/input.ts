// Parsing what is written to the memory-failure control files: a PFN as the kernel's kstrtoull(buf, 0)
// reads it (decimal, 0x hex, leading-0 octal, one optional trailing newline), then optional flags.

import { ParseResult } from '../pool/layout'

// include/linux/mm.h, enum mf_flags.
export const MF_COUNT_INCREASED = 1 << 0
export const MF_ACTION_REQUIRED = 1 << 1
export const MF_MUST_KILL = 1 << 2
export const MF_SOFT_OFFLINE = 1 << 3
export const MF_UNPOISON = 1 << 4
export const MF_SW_SIMULATED = 1 << 5
export const MF_NO_RETRY = 1 << 6
const MF_KNOWN = (1 << 7) - 1

const MF_NAMES: Array<[number, string]> = [
  [MF_COUNT_INCREASED, 'count_increased'],
  [MF_ACTION_REQUIRED, 'action_required'],
  [MF_MUST_KILL, 'must_kill'],
  [MF_SOFT_OFFLINE, 'soft_offline'],
  [MF_UNPOISON, 'unpoison'],
  [MF_SW_SIMULATED, 'sw_simulated'],
  [MF_NO_RETRY, 'no_retry']
]

// Longer input than any PFN with every flag spelled out is a mistake, not a request.
export const MAX_INPUT = 256
const U64_MAX = (1n << 64n) - 1n

// The first PFN of the default pool (1G from phys 0x100000000), so the example works as given.
const EXAMPLE_PFN = '0x100000'

export interface MceRequest {
  pfn: number // exact below 2^53; larger values can never be a dmem PFN and map to Infinity
  flags: number
  deliver: boolean // send the signals for real
  json: boolean // reply in JSON
  excludeWriter: boolean // leave the writing process out (the CLI: it inherits its shell's descriptors)
}

/** kstrtoull(text, 0): the whole string must be the number, optionally followed by one newline. */
export function parseKernelU64 (text: string): ParseResult<bigint> {
  const body = text.endsWith('\n') ? text.slice(0, -1) : text
  if (body === '') return { ok: false, error: `empty input: write a PFN, e.g. ${EXAMPLE_PFN}` }
  const m = /^\+?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(body)
  if (!m) return { ok: false, error: `'${printable(body)}' is not a number (decimal, 0x hex or 0 octal)` }
  const digits = m[1]
  let value: bigint
  if (/^0[xX]/.test(digits)) value = BigInt(digits)
  else if (digits.length > 1 && digits[0] === '0') value = BigInt('0o' + digits.slice(1))
  else value = BigInt(digits)
  if (value > U64_MAX) return { ok: false, error: `${printable(body)} is out of range (more than 64 bits)` }
  return { ok: true, value }
}

/** A PFN as a JavaScript number: exact up to 2^53, beyond that no region can hold it anyway. */
export function pfnNumber (value: bigint): number {
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(value)
}

/** `PFN [action_required] [must_kill] [flags=N] [deliver] [json] [exclude_writer]`, space separated. */
export function parseMceRequest (text: string): ParseResult<MceRequest> {
  const bad = checkText(text)
  if (bad) return { ok: false, error: bad }
  const line = text.endsWith('\n') ? text.slice(0, -1) : text
  // One trailing newline is allowed, as kstrtoull allows it; any other would reach a word and be stripped
  // there again, letting "12\n\n" through.
  if (line.includes('\n')) return { ok: false, error: 'more than one line: write a PFN and its flags on one line' }
  const words = line.split(/[ \t]+/).filter(w => w !== '')
  if (words.length === 0) return { ok: false, error: `empty input: write a PFN, e.g. ${EXAMPLE_PFN}` }
  // kstrtoull() takes the number first: no blank may lead it.
  if (/^[ \t]/.test(line)) return { ok: false, error: 'leading blank: write the PFN first' }
  const pfn = parseKernelU64(words[0])
  if (!pfn.ok) return pfn
  const req: MceRequest = { pfn: pfnNumber(pfn.value), flags: 0, deliver: false, json: false, excludeWriter: false }
  for (const word of words.slice(1)) {
    const error = applyFlag(req, word)
    if (error) return { ok: false, error }
  }
  return { ok: true, value: req }
}

/** A PFN alone, as written to `unpoison`. */
export function parsePfn (text: string): ParseResult<number> {
  const bad = checkText(text)
  if (bad) return { ok: false, error: bad }
  const value = parseKernelU64(text)
  return value.ok ? { ok: true, value: pfnNumber(value.value) } : value
}

function checkText (text: string): string | null {
  if (text.length > MAX_INPUT) return `input too long (a write of ${text.length} bytes; at most ${MAX_INPUT}, each write parsed alone)`
  // eslint-disable-next-line no-control-regex
  if (/[^\x20-\x7e\t\n]/.test(text)) return `input is not text: write a PFN, e.g. ${EXAMPLE_PFN}`
  return null
}

function applyFlag (req: MceRequest, word: string): string | null {
  switch (word) {
    case 'action_required': req.flags |= MF_ACTION_REQUIRED; return null
    case 'must_kill': req.flags |= MF_MUST_KILL; return null
    case 'deliver': req.deliver = true; return null
    case 'json': req.json = true; return null
    case 'exclude_writer': req.excludeWriter = true; return null
  }
  if (!word.startsWith('flags=')) {
    return `unknown flag '${word}' (known: action_required, must_kill, flags=N, deliver, json, exclude_writer)`
  }
  const n = parseKernelU64(word.slice('flags='.length))
  if (!n.ok) return `bad flags: ${n.error}`
  if (n.value > BigInt(MF_KNOWN)) return `unknown bits in ${word} (known MF_ flags: 0x${MF_KNOWN.toString(16)})`
  req.flags |= Number(n.value)
  return null
}

export function flagNames (flags: number): string[] {
  return MF_NAMES.filter(([bit]) => flags & bit).map(([, name]) => name)
}

function printable (text: string): string {
  return text.length > 40 ? text.slice(0, 40) + '...' : text
}
