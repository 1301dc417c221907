// dmemfs pfn: the PFNs backing a file, like filefrag -v, and where they sit in the pool.

import * as path from 'path'
import { argBytes } from '../argv'
import { DEFAULT_CELLS, markFile, MAX_CELLS, parsePfns, plural, regionsJson, renderText } from '../statmap'
import { Command, parseCells, Parsed, print, printBytes, UsageError, useColour, value } from './common'
import { dmemfsFileMount, fileRuns, readMap } from './dmem'

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
