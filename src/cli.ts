// The `dmemfs` command. Every failure ends with one line on stderr and a non-zero exit: 2 for bad usage or
// options, 1 for everything else.

import { execFileSync } from 'child_process'
import * as fs from 'fs'
import * as path from 'path'
import { describePool, findMount, FSTYPE, mountDmemfs, MountError, readMounts, serveUntilUnmounted } from './fuse/mount'
import { parseMountOptions } from './options'

const EXIT_FAILURE = 1
const EXIT_USAGE = 2

class UsageError extends Error {}

const HELP: Record<string, string> = {
  main: `usage: dmemfs COMMAND [ARGS]

commands:
  mount MOUNTPOINT [-o OPTIONS]   mount dmemfs and serve it in the foreground (Ctrl-C unmounts)
  umount MOUNTPOINT               unmount a dmemfs
  mce MOUNTPOINT PFN [FLAGS]      run the memory-failure path for a PFN and print the report
  pfn FILE                        print the PFNs backing a file
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
MOUNTPOINT/.dmem/mce does, and prints the report.
  --action-required   MF_ACTION_REQUIRED: signal BUS_MCEERR_AR instead of BUS_MCEERR_AO
  --must-kill         MF_MUST_KILL: signal the processes (without it, none is signalled)
  --deliver           really send the signals (plain SIGBUS/SIGKILL from user space)
  --json              print the report as JSON`,
  pfn: `usage: dmemfs pfn FILE [--json]

Prints the dpages and PFNs backing FILE on a dmemfs, one line per run of contiguous frames, like
filefrag -v. --json prints a list of runs {"offset": bytes, "pfn": "0x...", "frames": n}.`,
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
  const layout = mounted.sb.pool.layout
  print(`dmemfs: mounted ${mounted.mountpoint} (${describePool(layout)})`)
  await serveUntilUnmounted(mounted, print)
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
    const buf = Buffer.alloc(1 << 20)
    let len = 0
    for (let n = -1; n !== 0 && len < buf.length; len += n) n = fs.readSync(fd, buf, len, buf.length - len, len)
    return { ok, reply: buf.toString('utf8', 0, len) }
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
  const words = [positional[1]]
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
  const { positional, flags } = parseFlags(args, ['--json'])
  if (positional.length !== 1) throw new UsageError('pfn needs exactly one FILE')
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
  if (flags.has('--json')) {
    print(JSON.stringify(runs))
    return 0
  }
  const frames = runs.reduce((n, r) => n + r.frames, 0)
  print(`${file}: ${runs.length} run${runs.length === 1 ? '' : 's'}, ${frames} frames of 4K (${st.size} bytes)`)
  print(' run         offset              pfn     frames')
  runs.forEach((r, i) => print(`${String(i).padStart(4)} ${String(r.offset).padStart(14)} ${r.pfn.padStart(16)} ${String(r.frames).padStart(10)}`))
  return 0
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
    case 'unpoison': return cmdUnpoison(args)
    default: throw new UsageError(`unknown command '${command}'`)
  }
}

main(process.argv.slice(2)).then(
  code => process.exit(code),
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
