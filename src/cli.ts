// The `dmemfs` command. Every failure ends with one line on stderr and a non-zero exit: 2 for bad usage or
// options, 1 for everything else.

import { execFileSync } from 'child_process'
import * as path from 'path'
import { describePool, findMount, FSTYPE, mountDmemfs, MountError, serveUntilUnmounted } from './fuse/mount'
import { parseMountOptions } from './options'

const EXIT_FAILURE = 1
const EXIT_USAGE = 2

class UsageError extends Error {}

const HELP: Record<string, string> = {
  main: `usage: dmemfs COMMAND [ARGS]

commands:
  mount MOUNTPOINT [-o OPTIONS]   mount dmemfs and serve it in the foreground (Ctrl-C unmounts)
  umount MOUNTPOINT               unmount a dmemfs
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
    const message = err instanceof MountError ? err.message : (err instanceof Error ? err.stack : String(err))
    process.stderr.write(`dmemfs: ${message}\n`)
    process.exit(EXIT_FAILURE)
  }
)
