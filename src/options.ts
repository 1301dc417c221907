// Mount options, comma-separated as after `-o`, in the kernel's spelling. Parsing is pure: every problem
// comes back as one message naming the option, for the CLI to print.

import { EarlyKillMode } from './mce/memory-failure'
import { DmemSpec, layoutPool, memparse, parseDmemSpec, PAGE_SIZE, MiB, GiB, ParseResult } from './pool/layout'

export interface MountOptions {
  dpageShift: number
  dmem: DmemSpec
  nodes: number
  maxAllocTry: number
  mode: number
  uid: number
  gid: number
  nrInodes: number
  allowOther: boolean
  earlyKill: EarlyKillMode
  trace: boolean // tracing on from mount
  prefault: boolean // touch the whole pool at mount
  userXattr: boolean // user.* extended attributes (ext4's user_xattr/nouser_xattr)
  poisonFile: string | null // where poisoned PFNs are kept across mounts
  native: boolean // serve READ and WRITE on libfuse's threads when the native data path is built (native=0: never)
}

export const DEFAULT_POISON_FILE = '/var/lib/dmemfs/poison'

export const MAX_NODES = 64
export const DEFAULT_NR_INODES = 1048576

const DPAGE_SHIFT_OF_SIZE = new Map<number, number>([[4 * 1024, 12], [2 * MiB, 21], [GiB, 30]])

export function defaultMountOptions (): MountOptions {
  return {
    dpageShift: 12,
    dmem: { size: GiB, addr: null, align: 128 * MiB },
    nodes: 1,
    maxAllocTry: 1,
    mode: 0o755,
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    nrInodes: DEFAULT_NR_INODES,
    allowOther: false,
    earlyKill: 'all',
    trace: false,
    prefault: false,
    userXattr: true,
    poisonFile: null,
    native: true
  }
}

type Setter = (opts: MountOptions, value: string | undefined, seen: Set<string>) => string | null

/** An option that takes no value. */
function flag (set: (opts: MountOptions) => void): Setter {
  return (opts, value) => {
    if (value !== undefined) return 'takes no value'
    set(opts)
    return null
  }
}

const SETTERS: Record<string, Setter> = {
  pagesize (opts, value) {
    const bytes = value === undefined ? null : memparse(value)
    const shift = bytes === null ? undefined : DPAGE_SHIFT_OF_SIZE.get(bytes)
    if (shift === undefined) return 'unknown pagesize (use 4K, 2M or 1G)'
    opts.dpageShift = shift
    return null
  },
  dmem (opts, value, seen) {
    if (seen.has('size')) return 'dmem= and size= both describe the pool; give one'
    if (value === undefined) return 'needs a value: size[@addr][:align]'
    const spec = parseDmemSpec(value)
    if (!spec.ok) return spec.error
    opts.dmem = spec.value
    return null
  },
  size (opts, value, seen) {
    if (seen.has('dmem')) return 'dmem= and size= both describe the pool; give one'
    const size = value === undefined ? null : memparse(value)
    if (size === null || size === 0 || size % PAGE_SIZE !== 0) return 'expects a size that is a multiple of 4K'
    // A friendly one-node pool: only 4K alignment is asked of it.
    opts.dmem = { size, addr: null, align: PAGE_SIZE }
    return null
  },
  nodes (opts, value) {
    const n = parseInteger(value)
    if (n === null || n < 1 || n > MAX_NODES) return `expects a number of nodes from 1 to ${MAX_NODES}`
    opts.nodes = n
    return null
  },
  max_alloc_try_dpages (opts, value) {
    const n = parseInteger(value)
    if (n === null || n < 1) return 'expects a whole number of at least 1'
    opts.maxAllocTry = n
    return null
  },
  mode (opts, value) {
    if (value === undefined || !/^[0-7]{1,4}$/.test(value)) return 'expects octal permission bits, e.g. 0755'
    opts.mode = parseInt(value, 8)
    return null
  },
  uid (opts, value) {
    const n = parseInteger(value)
    if (n === null || n > 0xfffffffe) return 'expects a numeric user id'
    opts.uid = n
    return null
  },
  gid (opts, value) {
    const n = parseInteger(value)
    if (n === null || n > 0xfffffffe) return 'expects a numeric group id'
    opts.gid = n
    return null
  },
  nr_inodes (opts, value) {
    const n = value === undefined ? null : memparse(value)
    if (n === null || n > 0xffffffff) return 'expects a number of inodes (0 = unlimited)'
    opts.nrInodes = n
    return null
  },
  allow_other: flag(opts => { opts.allowOther = true }),
  early_kill (opts, value) {
    if (value === 'all' || value === 'system') opts.earlyKill = value
    else if (value === '0' || value === '1') opts.earlyKill = Number(value) as 0 | 1
    else return 'expects all, system, 0 or 1'
    return null
  },
  prefault: flag(opts => { opts.prefault = true }),
  user_xattr: flag(opts => { opts.userXattr = true }),
  nouser_xattr: flag(opts => { opts.userXattr = false }),
  trace: flag(opts => { opts.trace = true }),
  native (opts, value) {
    if (value !== '0' && value !== '1') return 'expects 0 or 1'
    opts.native = value === '1'
    return null
  },
  poison_file (opts, value) {
    if (value === '') return 'expects a path, or no value for the default'
    opts.poisonFile = value ?? DEFAULT_POISON_FILE
    return null
  }
}

function parseInteger (value: string | undefined): number | null {
  if (value === undefined || !/^[0-9]+$/.test(value)) return null
  const n = Number(value)
  return Number.isSafeInteger(n) ? n : null
}

/** Applies `-o` option strings (each comma-separated) over the defaults. */
export function parseMountOptions (texts: string[]): ParseResult<MountOptions> {
  const opts = defaultMountOptions()
  const seen = new Set<string>()
  for (const text of texts) {
    for (const item of text.split(',')) {
      if (item === '') continue
      const eq = item.indexOf('=')
      const name = eq < 0 ? item : item.slice(0, eq)
      const value = eq < 0 ? undefined : item.slice(eq + 1)
      const setter = Object.prototype.hasOwnProperty.call(SETTERS, name) ? SETTERS[name] : undefined
      if (!setter) return { ok: false, error: `unknown mount option '${name}'` }
      const error = setter(opts, value, seen)
      if (error) return { ok: false, error: `bad mount option '${item}': ${error}` }
      seen.add(name)
    }
  }
  if (seen.has('size') && opts.nodes > 1) {
    return { ok: false, error: "bad mount option 'size': it describes a one-node pool; use dmem= with nodes=" }
  }
  const layout = layoutPool(opts.dmem, opts.nodes, opts.dpageShift)
  if (!layout.ok) {
    const pool = seen.has('size') ? 'size' : 'dmem'
    return { ok: false, error: `bad mount option '${pool}': ${layout.error}` }
  }
  return { ok: true, value: opts }
}
