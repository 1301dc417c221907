// dmemfs pfn: the PFNs backing a file, like filefrag -v, and where they sit in the pool.

import * as fs from 'fs'
import * as path from 'path'
import { CONTROL_DIR } from '../control/control'
import { argBytes } from '../argv'
import { FSTYPE, MountError, readMounts } from '../fuse/mount'
import { DEFAULT_CELLS, markFile, MAX_CELLS, parsePfns, plural, regionsJson, renderText } from '../statmap'
import { Command, parseCells, Parsed, print, printBytes, UsageError, useColour, value } from './common'
import { controlPath, readControl, readMap } from './dmem'

interface PfnRun {
  offset: number
  pfn: string
  frames: number
}

/** The mounted dmemfs holding `real` (a resolved path, as bytes): the deepest dmemfs mount point above it. */
function dmemfsMountOf (real: string, file: string): string {
  const mounts = readMounts().filter(m => {
    const bytes = Buffer.from(m.mountpoint, 'utf8').toString('latin1')
    return m.fstype === FSTYPE && (real === bytes || real.startsWith(bytes + '/'))
  })
  if (mounts.length === 0) throw new MountError(`${file} is not on a dmemfs`)
  return mounts.reduce((a, b) => (b.mountpoint.length > a.mountpoint.length ? b : a)).mountpoint
}

/** The mount holding `file` (a byte string), which must be a regular file of it: not a directory, not a
 *  control file. */
function dmemfsFileMount (file: string, shown: string): { mnt: string, ino: number, size: number } {
  // The native realpath: fs.realpathSync() itself works on strings and would decode the bytes.
  const real = fs.realpathSync.native(Buffer.from(file, 'latin1'), 'latin1')
  const mnt = dmemfsMountOf(real, shown)
  const st = fs.statSync(Buffer.from(real, 'latin1'))
  const mntBytes = Buffer.from(mnt, 'utf8').toString('latin1')
  const inControlDir = real.slice(mntBytes.length + 1).split('/')[0] === CONTROL_DIR
  if (!st.isFile() || inControlDir) throw new MountError(`${shown} is not a regular dmemfs file`)
  return { mnt, ino: st.ino, size: st.size }
}

function fileRuns (mnt: string, ino: number): PfnRun[] {
  const runs = parsePfns(readControl(controlPath(mnt, 'pfns')), ino)
  if (!runs.ok) throw new MountError(runs.error)
  return runs.value.map(r => ({ offset: r.offset, pfn: '0x' + r.pfn.toString(16), frames: r.frames }))
}

export const pfn: Command = {
  name: 'pfn',
  args: 'FILE',
  summary: 'print the PFNs backing a file (and where they sit in the pool)',
  flags: [
    { name: 'json', help: 'print a list of runs {"offset": bytes, "pfn": "0x...", "frames": n}' },
    {
      name: 'map',
      help: "also draw the pool as 'dmemfs stat' does, the cells holding FILE's dpages marked F (with --json: " +
        '{"runs": [...], "regions": [...]}, each cell counting FILE\'s dpages in "file")'
    },
    { name: 'cells', value: 'N', help: `with --map, cells per region, 1 to ${MAX_CELLS} (default ${DEFAULT_CELLS})` }
  ],
  details: 'Prints the dpages and PFNs backing FILE, a regular file on a dmemfs, one line per run of contiguous\n' +
    'frames, like filefrag -v. Reads MOUNTPOINT/.dmem/pfns, which only root may read.',
  run (parsed: Parsed): number {
    if (parsed.positionals.length !== 1) throw new UsageError('pfn needs exactly one FILE')
    const withMap = parsed.flags.has('map')
    if (parsed.values.has('cells') && !withMap) throw new UsageError('--cells goes with --map')
    const cells = parseCells(value(parsed, 'cells'))
    const shown = parsed.positionals[0]
    // FILE's exact bytes: a name that is not UTF-8 is still found.
    const file = argBytes(shown)
    const { mnt, ino, size } = dmemfsFileMount(file, shown)
    const runs = fileRuns(mnt, ino)
    // The map comes from a second read: a file written in between may show a cell or two apart.
    const map = withMap ? markFile(readMap(mnt, cells), runs.map(r => ({ pfn: parseInt(r.pfn, 16), frames: r.frames }))) : null
    if (parsed.flags.has('json')) {
      print(JSON.stringify(map ? { runs, regions: regionsJson(map, true) } : runs))
      return 0
    }
    const frames = runs.reduce((n, r) => n + r.frames, 0)
    printBytes(`${file}: ${plural(runs.length, 'run')}, ${plural(frames, 'frame')} of 4K (${plural(size, 'byte')})`)
    print(' run         offset              pfn     frames')
    runs.forEach((r, i) => print(`${String(i).padStart(4)} ${String(r.offset).padStart(14)} ${r.pfn.padStart(16)} ${String(r.frames).padStart(10)}`))
    if (map) {
      print('')
      process.stdout.write(renderText(map, null, { colour: useColour(), fileLabel: path.basename(shown) }))
    }
    return 0
  }
}
