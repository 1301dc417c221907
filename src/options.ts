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
  ceThreshold: number // corrected errors on one dpage that soft-offline it; 0: never
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
    ceThreshold: 0,
    trace: false,
    prefault: false,
    userXattr: true,
    poisonFile: null,
    native: true
  }
}

type Setter = (opts: MountOptions, value: string | undefined, seen: Set<string>) => string | null

/** One mount option, defined once: how it is written, what it means and what applies without it. `dmemfs
 *  mount --help` and the README's table of mount options are both generated from these. */
export interface MountOptionDef {
  name: string // what comes before `=`
  syntax: string // as the user writes it, e.g. `pagesize=4K|2M|1G`
  meaning: string // may hold `code` spans (shown without the backticks in the help)
  default: string // what applies without the option ('' when nothing does); may hold `code` spans too
  set: Setter
}

/** An option that takes no value. */
function flag (set: (opts: MountOptions) => void): Setter {
  return (opts, value) => {
    if (value !== undefined) return 'takes no value'
    set(opts)
    return null
  }
}

export const MOUNT_OPTIONS: readonly MountOptionDef[] = [
  {
    name: 'pagesize',
    syntax: 'pagesize=4K|2M|1G',
    meaning: 'the dpage size (memparse suffixes or plain bytes)',
    default: '`4K`',
    set (opts, value) {
      const bytes = value === undefined ? null : memparse(value)
      const shift = bytes === null ? undefined : DPAGE_SHIFT_OF_SIZE.get(bytes)
      if (shift === undefined) return 'unknown pagesize (use 4K, 2M or 1G)'
      opts.dpageShift = shift
      return null
    }
  },
  {
    name: 'dmem',
    syntax: 'dmem=SIZE[@ADDR][:ALIGN]',
    meaning: "the pool, as the seed's `dmem=` boot parameter: SIZE reserved on each node, at ADDR if given, " +
      'ALIGN a power of two (SIZE and ADDR multiples of it, ADDR not 0)',
    default: '`1G`, ALIGN `128M`',
    set (opts, value, seen) {
      if (seen.has('size')) return 'dmem= and size= both describe the pool; give one'
      if (value === undefined) return 'needs a value: size[@addr][:align]'
      const spec = parseDmemSpec(value)
      if (!spec.ok) return spec.error
      opts.dmem = spec.value
      return null
    }
  },
  {
    name: 'size',
    syntax: 'size=SIZE',
    meaning: 'a friendly one-node pool of SIZE (any multiple of 4K; not with `dmem=` or `nodes>1`)',
    default: '',
    set (opts, value, seen) {
      if (seen.has('dmem')) return 'dmem= and size= both describe the pool; give one'
      const size = value === undefined ? null : memparse(value)
      if (size === null || size === 0 || size % PAGE_SIZE !== 0) return 'expects a size that is a multiple of 4K'
      // A friendly one-node pool: only 4K alignment is asked of it.
      opts.dmem = { size, addr: null, align: PAGE_SIZE }
      return null
    }
  },
  {
    name: 'nodes',
    syntax: 'nodes=N',
    meaning: `simulated NUMA nodes, each reserving SIZE at its own physical range (1 to ${MAX_NODES})`,
    default: '`1`',
    set (opts, value) {
      const n = parseInteger(value)
      if (n === null || n < 1 || n > MAX_NODES) return `expects a number of nodes from 1 to ${MAX_NODES}`
      opts.nodes = n
      return null
    }
  },
  {
    name: 'max_alloc_try_dpages',
    syntax: 'max_alloc_try_dpages=N',
    meaning: "how many contiguous dpages one allocation tries to take, as the seed's module parameter",
    default: '`1`',
    set (opts, value) {
      const n = parseInteger(value)
      if (n === null || n < 1) return 'expects a whole number of at least 1'
      opts.maxAllocTry = n
      return null
    }
  },
  {
    name: 'mode',
    syntax: 'mode=OCTAL',
    meaning: "the root directory's permission bits",
    default: '`0755`',
    set (opts, value) {
      if (value === undefined || !/^[0-7]{1,4}$/.test(value)) return 'expects octal permission bits, e.g. 0755'
      opts.mode = parseInt(value, 8)
      return null
    }
  },
  {
    name: 'uid',
    syntax: 'uid=N',
    meaning: "the root directory's owner",
    default: 'the caller',
    set (opts, value) {
      const n = parseInteger(value)
      if (n === null || n > 0xfffffffe) return 'expects a numeric user id'
      opts.uid = n
      return null
    }
  },
  {
    name: 'gid',
    syntax: 'gid=N',
    meaning: "the root directory's group",
    default: "the caller's",
    set (opts, value) {
      const n = parseInteger(value)
      if (n === null || n > 0xfffffffe) return 'expects a numeric group id'
      opts.gid = n
      return null
    }
  },
  {
    name: 'nr_inodes',
    syntax: 'nr_inodes=N',
    meaning: 'inode limit (0 = unlimited; `df -i` shows it)',
    default: `\`${DEFAULT_NR_INODES}\``,
    set (opts, value) {
      const n = value === undefined ? null : memparse(value)
      if (n === null || n > 0xffffffff) return 'expects a number of inodes (0 = unlimited)'
      opts.nrInodes = n
      return null
    }
  },
  {
    name: 'allow_other',
    syntax: 'allow_other',
    meaning: 'let users other than root use the mount (permissions are checked by the kernel)',
    default: 'off',
    set: flag(opts => { opts.allowOther = true })
  },
  {
    name: 'early_kill',
    syntax: 'early_kill=all|system|0|1',
    meaning: 'which holders of a failed dpage the memory-failure report collects early (see "Early kill")',
    default: '`all`',
    set (opts, value) {
      if (value === 'all' || value === 'system') opts.earlyKill = value
      else if (value === '0' || value === '1') opts.earlyKill = Number(value) as 0 | 1
      else return 'expects all, system, 0 or 1'
      return null
    }
  },
  {
    name: 'ce_threshold',
    syntax: 'ce_threshold=N',
    meaning: 'corrected errors (written to `.dmem/ce`) on one dpage that soft-offline it, as the kernel\'s RAS CEC does; 0: count only',
    default: '`0`',
    set (opts, value) {
      const n = parseInteger(value)
      if (n === null || n < 0) return 'expects a whole number (0 = never)'
      opts.ceThreshold = n
      return null
    }
  },
  {
    name: 'poison_file',
    syntax: 'poison_file[=PATH]',
    meaning: `keep poisoned PFNs across unmount and mount, in PATH (\`${DEFAULT_POISON_FILE}\` when no PATH is given); ` +
      'its directory must exist and be writable (only the default\'s `/var/lib/dmemfs` is created)',
    default: 'off',
    set (opts, value) {
      if (value === '') return 'expects a path, or no value for the default'
      opts.poisonFile = value ?? DEFAULT_POISON_FILE
      return null
    }
  },
  {
    name: 'trace',
    syntax: 'trace',
    meaning: 'tracing on from mount (so `dmem_alloc_init` is recorded)',
    default: 'off',
    set: flag(opts => { opts.trace = true })
  },
  {
    name: 'user_xattr',
    syntax: 'user_xattr',
    meaning: "user extended attributes (`user.*`), ext4's spelling",
    default: 'on',
    set: flag(opts => { opts.userXattr = true })
  },
  {
    name: 'nouser_xattr',
    syntax: 'nouser_xattr',
    meaning: 'no extended attributes. The kernel asks a FUSE filesystem that has xattrs for ' +
      '`security.capability` before every `write()`, one more round trip each; without them it stops asking. ' +
      'Small-file work (`tar x`, `cp -r`) is faster',
    default: 'off',
    set: flag(opts => { opts.userXattr = false })
  },
  {
    name: 'prefault',
    syntax: 'prefault',
    meaning: 'touch the whole pool at mount, as a real reservation has its memory ready: no page faults on ' +
      'first writes, but the pool is resident from the start and mounting takes about a second per GiB',
    default: 'off',
    set: flag(opts => { opts.prefault = true })
  },
  {
    name: 'native',
    syntax: 'native=0|1',
    meaning: "serve reads and writes of allocated, unpoisoned dpages in C on libfuse's threads (`.dmem/datapath` " +
      'shows what it served), in requests of up to 1020 KiB with a readahead window as large; 0 sends every request ' +
      'through TypeScript, in requests of up to 128 KiB as before the native path',
    default: '`1`',
    set (opts, value) {
      if (value !== '0' && value !== '1') return 'expects 0 or 1'
      opts.native = value === '1'
      return null
    }
  }
]

const SETTERS = new Map(MOUNT_OPTIONS.map(o => [o.name, o.set]))

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
      const setter = SETTERS.get(name)
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
