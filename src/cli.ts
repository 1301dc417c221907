// The `dmemfs` command. Every failure ends with one line on stderr and a non-zero exit: 2 for bad usage or
// options, 1 for everything else.

import { execFileSync } from 'child_process'
import * as fs from 'fs'
import * as path from 'path'
import { describePool, findMount, FSTYPE, mountDmemfs, MountError, readMounts, serveUntilUnmounted } from './fuse/mount'
import { parseMountOptions } from './options'
import {
  DEFAULT_CELLS, markFile, MAX_CELLS, parseMap, parsePfns, parseStat, PoolMap, renderSvg, renderText, regionsJson,
  Stat, statJson
} from './statmap'

const EXIT_FAILURE = 1
const EXIT_USAGE = 2

class UsageError extends Error {}

const HELP: Record<string, string> = {
  main: `usage: dmemfs COMMAND [ARGS]

commands:
  mount MOUNTPOINT [-o OPTIONS]   mount dmemfs and serve it in the foreground (Ctrl-C unmounts)
  umount MOUNTPOINT               unmount a dmemfs
  mce MOUNTPOINT PFN [FLAGS]      run the memory-failure path for a PFN and print the report
  stat MOUNTPOINT [FLAGS]         print the pool's statistics and draw the pool as a map
  pfn FILE [--map]                print the PFNs backing a file (and where they sit in the pool)
  unpoison MOUNTPOINT PFN         return a poisoned dpage to service
  help [COMMAND]                  show help

Run 'dmemfs COMMAND --help' for a command's options.`,
  mount: `usage: dmemfs mount MOUNTPOINT [-o OPTIONS]

Mounts dmemfs on an existing empty directory and serves it until SIGINT/SIGTERM or an unmount.
OPTIONS are comma-separated (-o may be repeated):
  pagesize=4K|2M|1G          dpage size (default 4K)
  dmem=SIZE[@ADDR][:ALIGN]   pool per node, as the seed's boot parameter (default 1G; ALIGN default 128M)
  size=SIZE                  a one-node pool of SIZE (any multiple of 4K)
  nodes=N                    simulated NUMA nodes, each reserving SIZE (default 1)
  max_alloc_try_dpages=N     contiguous dpages one allocation tries to take (default 1)
  mode=OCTAL,uid=N,gid=N     owner and permissions of the root directory (default 0755, caller)
  nr_inodes=N                inode limit (default 1048576; 0 = unlimited)
  allow_other                let other users reach the mount`,
  umount: `usage: dmemfs umount MOUNTPOINT

Unmounts a dmemfs; its daemon notices and exits.`,
  mce: `usage: dmemfs mce MOUNTPOINT PFN [--action-required] [--must-kill] [--deliver] [--json]

Runs the memory-failure path for the 4 KiB frame PFN (decimal, 0x hex or 0 octal), as writing it to
MOUNTPOINT/.dmem/mce does, and prints the report. This command (and npx running it) is not listed.
  --action-required   MF_ACTION_REQUIRED: signal BUS_MCEERR_AR instead of BUS_MCEERR_AO
  --must-kill         MF_MUST_KILL: signal the processes mapping the page (without it, none is signalled)
  --deliver           really send the signals (the report says which way each went)
  --json              print the report as JSON`,
  pfn: `usage: dmemfs pfn FILE [--json] [--map [--cells N]]

Prints the dpages and PFNs backing FILE on a dmemfs, one line per run of contiguous frames, like
filefrag -v. --json prints a list of runs {"offset": bytes, "pfn": "0x...", "frames": n}.
  --map       also draw the pool as 'dmemfs stat' does, the cells holding FILE's dpages marked F
              (with --json: {"runs": [...], "regions": [...]}, each cell counting FILE's dpages in "file")
  --cells N   cells per region in the map, 1 to ${MAX_CELLS} (default ${DEFAULT_CELLS})`,
  stat: `usage: dmemfs stat MOUNTPOINT [--json] [--svg FILE] [--watch] [--cells N]

Prints the pool's statistics (as MOUNTPOINT/.dmem/stat) and draws the pool as a map: per node and
region a grid of cells, each cell a run of dpages, with the region's PFN range and the scale.
  .  free        no file owns a dpage of the cell
  +  partly used files own some of its dpages
  #  used        files own all of its dpages
  X  poisoned    a dpage of the cell is poisoned (poison wins)
Colours on a terminal (not with NO_COLOR set), plain characters otherwise.
  --json      print {"stat": {...}, "regions": [{id, node, phys, pfn_first, pfn_last, dpages,
              dpage_size, per_cell, cells: [{first_pfn, dpages, used, poisoned, state}]}]} instead
  --svg FILE  also write the map as an SVG image (hover a cell for its PFN range); FILE - writes
              it to standard output instead of the text
  --watch     redraw every second until Ctrl-C
  --cells N   cells per region, 1 to ${MAX_CELLS} (default ${DEFAULT_CELLS}; fewer if a region has fewer dpages)`,
  unpoison: `usage: dmemfs unpoison MOUNTPOINT PFN

Returns a poisoned dpage to service, as writing PFN to MOUNTPOINT/.dmem/unpoison does. A dpage still
owned by a file stays poisoned (exit 1).`,
  help: 'usage: dmemfs help [COMMAND]'
}

function print (line: string): void {
  process.stdout.write(line + '\n')
}

function parseMountArgs (args: string[]): { mountpoint: string, options: string[] } {
  const options: string[] = []
  const positional: string[] = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    if (arg === '-o') {
      if (i + 1 >= args.length) throw new UsageError('-o needs OPTIONS')
      options.push(args[++i])
    } else if (arg.startsWith('-o')) {
      options.push(arg.slice(2))
    } else if (arg.startsWith('-')) {
      throw new UsageError(`unknown flag '${arg}'`)
    } else {
      positional.push(arg)
    }
  }
  if (positional.length !== 1) throw new UsageError('mount needs exactly one MOUNTPOINT')
  return { mountpoint: positional[0], options }
}

async function cmdMount (args: string[]): Promise<number> {
  const { mountpoint, options } = parseMountArgs(args)
  const opts = parseMountOptions(options)
  if (!opts.ok) throw new UsageError(opts.error)
  const mounted = await mountDmemfs(mountpoint, opts.value, print)
  // Signal handlers first: whoever reads the next line may send SIGINT at once.
  const served = serveUntilUnmounted(mounted, print)
  print(`dmemfs: mounted ${mounted.mountpoint} (${describePool(mounted.sb.pool.layout)})`)
  await served
  return 0
}

function cmdUmount (args: string[]): number {
  if (args.length !== 1 || args[0].startsWith('-')) throw new UsageError('umount needs exactly one MOUNTPOINT')
  const mnt = path.resolve(args[0])
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

/** Splits arguments into positional ones and known --flags; anything else is a usage error. */
function parseFlags (args: string[], known: string[]): { positional: string[], flags: Set<string> } {
  const positional: string[] = []
  const flags = new Set<string>()
  for (const arg of args) {
    if (!arg.startsWith('--')) positional.push(arg)
    else if (known.includes(arg)) flags.add(arg)
    else throw new UsageError(`unknown flag '${arg}'`)
  }
  return { positional, flags }
}

function controlPath (mountpoint: string, name: string): string {
  const mnt = path.resolve(mountpoint)
  const entry = findMount(mnt)
  if (!entry || entry.fstype !== FSTYPE) throw new MountError(`${mnt} is not a mounted dmemfs`)
  return path.join(mnt, '.dmem', name)
}

/** Writes a request to a control file and reads the reply from the same descriptor. */
function askControl (file: string, request: string): { ok: boolean, reply: string } {
  const fd = fs.openSync(file, 'r+')
  try {
    let ok = true
    try {
      fs.writeSync(fd, request)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === undefined) throw err
      ok = false
    }
    const chunks: Buffer[] = []
    let len = 0
    for (;;) {
      const buf = Buffer.alloc(1 << 20)
      const n = fs.readSync(fd, buf, 0, buf.length, len)
      if (n === 0) break
      chunks.push(buf.subarray(0, n))
      len += n
    }
    return { ok, reply: Buffer.concat(chunks).toString('utf8') }
  } finally {
    fs.closeSync(fd)
  }
}

function firstLine (reply: string): string {
  return reply.trim().split('\n')[0].replace(/^error: /, '')
}

function cmdMce (args: string[]): number {
  const { positional, flags } = parseFlags(args, ['--action-required', '--must-kill', '--deliver', '--json'])
  if (positional.length !== 2) throw new UsageError('mce needs MOUNTPOINT and PFN')
  // The CLI inherits its shell's descriptors; it is not what the error is about: leave it out.
  const words = [positional[1], 'exclude_writer']
  if (flags.has('--action-required')) words.push('action_required')
  if (flags.has('--must-kill')) words.push('must_kill')
  if (flags.has('--deliver')) words.push('deliver')
  if (flags.has('--json')) words.push('json')
  const { ok, reply } = askControl(controlPath(positional[0], 'mce'), words.join(' ') + '\n')
  if (!ok) throw new MountError(firstLine(reply))
  process.stdout.write(reply)
  return 0
}

function cmdUnpoison (args: string[]): number {
  const { positional } = parseFlags(args, [])
  if (positional.length !== 2) throw new UsageError('unpoison needs MOUNTPOINT and PFN')
  const { ok, reply } = askControl(controlPath(positional[0], 'unpoison'), positional[1] + '\n')
  if (!ok) throw new MountError(firstLine(reply))
  process.stdout.write(reply)
  return 0
}

interface PfnRun {
  offset: number
  pfn: string
  frames: number
}

/** The mounted dmemfs holding `file`: the deepest dmemfs mount point that is a prefix of its real path. */
function dmemfsMountOf (file: string): string {
  const real = fs.realpathSync(file)
  const mounts = readMounts().filter(m => m.fstype === FSTYPE && (real === m.mountpoint || real.startsWith(m.mountpoint + '/')))
  if (mounts.length === 0) throw new MountError(`${file} is not on a dmemfs`)
  return mounts.reduce((a, b) => (b.mountpoint.length > a.mountpoint.length ? b : a)).mountpoint
}

function cmdPfn (args: string[]): number {
  const { positional, flags, values } = parseArgs(args, ['--json', '--map'], ['--cells'])
  if (positional.length !== 1) throw new UsageError('pfn needs exactly one FILE')
  if (values.has('--cells') && !flags.has('--map')) throw new UsageError('--cells goes with --map')
  const cells = parseCells(values.get('--cells'))
  const file = positional[0]
  const mnt = dmemfsMountOf(file)
  const st = fs.statSync(file)
  if (!st.isFile()) throw new MountError(`${file} is not a regular file`)
  const runs: PfnRun[] = []
  for (const line of fs.readFileSync(path.join(mnt, '.dmem', 'pfns'), 'utf8').split('\n')) {
    const f = line.split(' ')
    if (f.length < 5 || f[0] === '#' || Number(f[0]) !== st.ino) continue
    runs.push({ offset: Number(f[1]), pfn: f[2], frames: Number(f[3]) })
  }
  // The map comes from a second read: a file written in between may show a cell or two apart.
  const map = flags.has('--map')
    ? markFile(readMap(mnt, cells), runs.map(r => ({ pfn: parseInt(r.pfn, 16), frames: r.frames })))
    : null
  if (flags.has('--json')) {
    print(JSON.stringify(map ? { runs, regions: regionsJson(map, true) } : runs))
    return 0
  }
  const frames = runs.reduce((n, r) => n + r.frames, 0)
  print(`${file}: ${runs.length} run${runs.length === 1 ? '' : 's'}, ${frames} frames of 4K (${st.size} bytes)`)
  print(' run         offset              pfn     frames')
  runs.forEach((r, i) => print(`${String(i).padStart(4)} ${String(r.offset).padStart(14)} ${r.pfn.padStart(16)} ${String(r.frames).padStart(10)}`))
  if (map) {
    print('')
    process.stdout.write(renderText(map, null, { colour: useColour(), fileLabel: path.basename(file) }))
  }
  return 0
}

/** Splits arguments into positional ones, known boolean --flags and known --options with a value
 *  (`--cells 8` or `--cells=8`); anything else is a usage error. */
function parseArgs (args: string[], booleans: string[], valued: string[]):
{ positional: string[], flags: Set<string>, values: Map<string, string> } {
  const positional: string[] = []
  const flags = new Set<string>()
  const values = new Map<string, string>()
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    const eq = arg.indexOf('=')
    const name = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg
    if (!arg.startsWith('--') || arg === '-') {
      positional.push(arg)
    } else if (booleans.includes(arg)) {
      flags.add(arg)
    } else if (valued.includes(name)) {
      let value: string
      if (name !== arg) value = arg.slice(eq + 1)
      else if (i + 1 < args.length) value = args[++i]
      else throw new UsageError(`${arg} needs a value`)
      if (value === '') throw new UsageError(`${name} needs a value`)
      values.set(name, value)
    } else {
      throw new UsageError(`unknown flag '${arg}'`)
    }
  }
  return { positional, flags, values }
}

function parseCells (value: string | undefined): number {
  if (value === undefined) return DEFAULT_CELLS
  const n = /^[0-9]+$/.test(value) ? Number(value) : NaN
  if (!(n >= 1 && n <= MAX_CELLS)) throw new UsageError(`--cells needs a number from 1 to ${MAX_CELLS}, not '${value}'`)
  return n
}

function useColour (): boolean {
  return process.stdout.isTTY === true && process.env.NO_COLOR === undefined && process.env.TERM !== 'dumb'
}

/** The pool in `cells` cells per region, from `.dmem/map`. */
function readMap (mnt: string, cells: number): PoolMap {
  const { ok, reply } = askControl(path.join(mnt, '.dmem', 'map'), `cells=${cells}\n`)
  if (!ok) throw new MountError(`.dmem/map: ${firstLine(reply)}`)
  const map = parseMap(reply)
  if (!map.ok) throw new MountError(map.error)
  return map.value
}

function readStat (mnt: string): { text: string, stat: Stat } {
  const text = fs.readFileSync(path.join(mnt, '.dmem', 'stat'), 'utf8')
  const stat = parseStat(text)
  if (!stat.ok) throw new MountError(stat.error)
  return { text, stat: stat.value }
}

async function cmdStat (args: string[]): Promise<number> {
  const { positional, flags, values } = parseArgs(args, ['--json', '--watch'], ['--svg', '--cells'])
  if (positional.length !== 1) throw new UsageError('stat needs exactly one MOUNTPOINT')
  const cells = parseCells(values.get('--cells'))
  const svg = values.get('--svg')
  const json = flags.has('--json')
  const watch = flags.has('--watch')
  if (json && svg === '-') throw new UsageError('--json and --svg - both want standard output')
  if (watch && json) throw new UsageError('--watch draws on the terminal; not with --json')
  if (watch && svg === '-') throw new UsageError('--watch draws on the terminal; not with --svg -')
  const mountpoint = path.dirname(path.dirname(controlPath(positional[0], 'stat'))) // a mounted dmemfs
  const colour = useColour()

  /** One picture: what goes to standard output, after writing the SVG if asked. */
  const draw = (): string => {
    controlPath(mountpoint, 'stat') // still mounted (in --watch, it may go away)
    const { text, stat } = readStat(mountpoint)
    const map = readMap(mountpoint, cells)
    if (svg !== undefined) {
      const image = renderSvg(map, stat, { title: `dmemfs pool at ${mountpoint}` })
      if (svg === '-') return image
      fs.writeFileSync(svg, image)
    }
    if (json) return JSON.stringify(statJson(stat, map), null, 2) + '\n'
    return text + '\n' + renderText(map, stat, { colour })
  }

  if (!watch) {
    process.stdout.write(draw())
    return 0
  }
  const clear = process.stdout.isTTY === true ? '\x1b[H\x1b[2J' : '\n'
  return await new Promise<number>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined
    const stop = (): void => {
      clearTimeout(timer)
      resolve(0)
    }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    const tick = (): void => {
      let frame: string
      try {
        frame = draw()
      } catch (err) {
        reject(err)
        return
      }
      const now = new Date().toTimeString().slice(0, 8)
      process.stdout.write(`${clear}Every 1s: dmemfs stat ${mountpoint}   (Ctrl-C to stop)   ${now}\n\n${frame}`)
      timer = setTimeout(tick, 1000)
    }
    tick()
  })
}

async function main (argv: string[]): Promise<number> {
  const [command, ...args] = argv
  if (command === undefined || command === '--help' || command === '-h') {
    print(HELP.main)
    return command === undefined ? EXIT_USAGE : 0
  }
  if (command === 'help') {
    print(HELP[args[0] ?? 'main'] ?? HELP.main)
    return 0
  }
  if (!(command in HELP)) throw new UsageError(`unknown command '${command}' (try 'dmemfs --help')`)
  if (args.includes('--help') || args.includes('-h')) {
    print(HELP[command])
    return 0
  }
  switch (command) {
    case 'mount': return cmdMount(args)
    case 'umount': return cmdUmount(args)
    case 'mce': return cmdMce(args)
    case 'pfn': return cmdPfn(args)
    case 'stat': return cmdStat(args)
    case 'unpoison': return cmdUnpoison(args)
    default: throw new UsageError(`unknown command '${command}'`)
  }
}

// A reader that went away (`dmemfs stat MNT | head`) has what it wanted: end quietly.
process.stdout.on('error', (err: NodeJS.ErrnoException) => process.exit(err.code === 'EPIPE' ? 0 : EXIT_FAILURE))

main(process.argv.slice(2)).then(
  // Standard output to a pipe may still be writing: exit once it has all gone (a long --json or map
  // would otherwise be cut short).
  code => process.stdout.write('', () => process.exit(code)),
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`dmemfs: ${err.message}\n`)
      process.exit(EXIT_USAGE)
    }
    // A system call's failure (EACCES, ENOENT ...) is the user's to fix: its message is enough.
    const known = err instanceof MountError || (err instanceof Error && 'code' in err)
    const message = known ? (err as Error).message : (err instanceof Error ? err.stack : String(err))
    process.stderr.write(`dmemfs: ${message}\n`)
    process.exit(EXIT_FAILURE)
  }
)
