// dmemfs pfn: the PFNs backing a file, like filefrag -v, and where they sit in the pool.

import * as path from 'path'
import { argBytes } from '../argv'
import { DEFAULT_CELLS, markFile, MAX_CELLS, parsePfns, plural, regionsJson, renderText } from '../statmap'
import { Command, parseCells, Parsed, print, printBytes, UsageError, useColour, value } from './common'
import { dmemfsFileMount, fileRuns, PfnRun, readMap, readPoisoned } from './dmem'

interface PoisonedInRun {
  dpage_pfn: string // the poisoned dpage's first PFN
  pfn: string // the frame that failed
  offset: number // the dpage's byte offset in the file
}

/** Each run's poisoned dpages, from .dmem/poisoned (root's: without it, none are known). */
function poisonedInRuns (mnt: string, runs: PfnRun[], framesPerDpage: (pfn: number) => number): PoisonedInRun[][] {
  const book = readPoisoned(mnt) ?? []
  const failed = new Map(book.map(p => [p.dpagePfn, p.pfn]))
  return runs.map(r => {
    const first = parseInt(r.pfn, 16)
    const fpd = framesPerDpage(first)
    const out: PoisonedInRun[] = []
    for (let f = 0; f < r.frames; f += fpd) {
      const frame = failed.get(first + f)
      if (frame !== undefined) out.push({ dpage_pfn: '0x' + (first + f).toString(16), pfn: '0x' + frame.toString(16), offset: r.offset + f * 4096 })
    }
    return out
  })
}

export const pfn: Command = {
  name: 'pfn',
  args: 'FILE',
  summary: 'print the PFNs backing a file (and where they sit in the pool)',
  flags: [
    {
      name: 'json',
      help: 'print a list of runs {"offset": bytes, "pfn": "0x...", "frames": n, "poisoned": [{"dpage_pfn", "pfn", ' +
        '"offset"}]}, "poisoned" listing the run\'s poisoned dpages (the frame that failed, the dpage\'s offset)'
    },
    {
      name: 'map',
      help: "also draw the pool as 'dmemfs stat' does, the cells holding FILE's dpages marked F, poison shown over " +
        'it (! a poisoned dpage in a file, X a poisoned free one) (with --json: ' +
        '{"runs": [...], "regions": [...]}, each cell counting FILE\'s dpages in "file")'
    },
    { name: 'cells', value: 'N', help: `with --map, cells per region, 1 to ${MAX_CELLS} (default ${DEFAULT_CELLS})` }
  ],
  details: 'Prints the dpages and PFNs backing FILE, a regular file on a dmemfs, one line per run of contiguous\n' +
    'frames, like filefrag -v, with the number of poisoned dpages in each run, then a line per poisoned dpage.\n' +
    'Reads MOUNTPOINT/.dmem/pfns and .dmem/poisoned, which only root may read.',
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
    const pool = readMap(mnt, cells)
    const framesPerDpage = (pfn: number): number => (pool.regions.find(r => pfn >= r.pfnFirst && pfn <= r.pfnLast)?.dpageSize ?? 4096) / 4096
    const poisoned = poisonedInRuns(mnt, runs, framesPerDpage)
    const map = withMap ? markFile(pool, runs.map(r => ({ pfn: parseInt(r.pfn, 16), frames: r.frames }))) : null
    if (parsed.flags.has('json')) {
      const withPoison = runs.map((r, i) => ({ ...r, poisoned: poisoned[i] }))
      print(JSON.stringify(map ? { runs: withPoison, regions: regionsJson(map, true) } : withPoison))
      return 0
    }
    const frames = runs.reduce((n, r) => n + r.frames, 0)
    printBytes(`${file}: ${plural(runs.length, 'run')}, ${plural(frames, 'frame')} of 4K (size ${plural(size, 'byte')})`)
    print(' run         offset              pfn     frames  poisoned')
    runs.forEach((r, i) => print(`${String(i).padStart(4)} ${String(r.offset).padStart(14)} ${r.pfn.padStart(16)} ` +
      `${String(r.frames).padStart(10)} ${String(poisoned[i].length || '-').padStart(9)}`))
    for (const p of poisoned.flat()) print(`poisoned dpage ${p.dpage_pfn} at offset ${p.offset} (frame ${p.pfn} failed)`)
    if (map) {
      print('')
      process.stdout.write(renderText(map, null, { colour: useColour(), fileLabel: path.basename(shown) }))
    }
    return 0
  }
}
