// dmemfs stat: the pool's statistics and a map of the pool. It only reads (.dmem/stat and .dmem/map, both
// readable by all; for --json also .dmem/poisoned, when root), so any user who can reach the mount can run it.

import * as fs from 'fs'
import { MountError } from '../fuse/mount'
import { DEFAULT_CELLS, MAX_CELLS, parseStat, renderSvg, renderText, Stat, statJson } from '../statmap'
import { Command, parseCells, Parsed, UsageError, useColour, value } from './common'
import { jsonAscii } from '../fs/name'
import { poisonedJson } from '../mce/poison-book'
import { controlPath, mountedDmemfs, readControl, readMap, readPoisoned } from './dmem'

function readStat (mnt: string): { text: string, stat: Stat } {
  const text = readControl(controlPath(mnt, 'stat'))
  const stat = parseStat(text)
  if (!stat.ok) throw new MountError(stat.error)
  return { text, stat: stat.value }
}

/** `.dmem/poisoned` for --json; only root may read it, so for anyone else the list is absent, not an error. */
function poisonedList (mnt: string): { poisoned: object[] | null, poisoned_absent?: string } {
  const lines = readPoisoned(mnt)
  if (lines === null) return { poisoned: null, poisoned_absent: 'only root may read .dmem/poisoned' }
  return { poisoned: poisonedJson(lines) }
}

interface StatRequest {
  mnt: string
  cells: number
  svg: string | undefined // a file, or `-` for standard output
  json: boolean
}

/** One picture: what goes to standard output, after writing the SVG if asked. */
function draw (req: StatRequest): string {
  mountedDmemfs(req.mnt) // still mounted (in --watch, it may go away)
  const { text, stat } = readStat(req.mnt)
  const map = readMap(req.mnt, req.cells)
  if (req.svg !== undefined) {
    const image = renderSvg(map, stat, { title: `dmemfs pool at ${req.mnt}` })
    if (req.svg === '-') return image
    fs.writeFileSync(req.svg, image)
  }
  if (req.json) return jsonAscii({ ...statJson(stat, map), ...poisonedList(req.mnt) }, 2) + '\n'
  return text + '\n' + renderText(map, stat, { colour: useColour() })
}

/** Redraws every second until SIGINT or SIGTERM (exit 0), or until the mount goes away (an error). */
function watch (req: StatRequest): Promise<number> {
  const clear = process.stdout.isTTY === true ? '\x1b[H\x1b[2J' : '\n'
  return new Promise<number>((resolve, reject) => {
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
        frame = draw(req)
      } catch (err) {
        reject(err)
        return
      }
      const now = new Date().toTimeString().slice(0, 8)
      process.stdout.write(`${clear}Every 1s: dmemfs stat ${req.mnt}   (Ctrl-C to stop)   ${now}\n\n${frame}`)
      timer = setTimeout(tick, 1000)
    }
    tick()
  })
}

export const stat: Command = {
  name: 'stat',
  args: 'MOUNTPOINT',
  summary: "print the pool's statistics and draw the pool as a map (any user may)",
  flags: [
    {
      name: 'json',
      help: 'print {"stat": {...}, "regions": [{id, node, phys, pfn_first, pfn_last, dpages, dpage_size, per_cell, ' +
        'cells: [{first_pfn, dpages, used, poisoned, poisoned_in_file, state}]}], "poisoned": [{pfn, dpage_pfn, node, ' +
        'state, ino, offset, path, time, flags, flag_names}]} instead ("poisoned" is null, with "poisoned_absent" ' +
        'saying why, for a user who may not read .dmem/poisoned)'
    },
    {
      name: 'svg',
      value: 'FILE',
      help: 'also write the map as an SVG image (hover a cell for its PFN range); FILE - writes it to standard ' +
        'output instead of the text'
    },
    { name: 'watch', help: 'redraw every second until Ctrl-C' },
    {
      name: 'cells',
      value: 'N',
      help: `cells per region, at most N, 1 to ${MAX_CELLS} (default ${DEFAULT_CELLS}); fewer when the region has ` +
        "fewer dpages or its .dmem/map cells do not divide evenly into N"
    }
  ],
  details: "Prints the pool's statistics (as MOUNTPOINT/.dmem/stat) and draws the pool as a map: per node and\n" +
    "region a grid of cells, each cell a run of dpages, with the region's PFN range and the scale.\n" +
    '  .  free        no file owns a dpage of the cell\n' +
    '  +  partly used files own some of its dpages\n' +
    '  #  used        files own all of its dpages\n' +
    '  X  poisoned    a dpage of the cell is poisoned, none that a file owns (poison wins)\n' +
    '  !  poisoned in a file: a file owns a poisoned dpage of the cell, its data lost (wins over X)\n' +
    'Colours on a terminal (not with NO_COLOR set), plain characters otherwise. Reads .dmem/stat and\n' +
    '.dmem/map, which every user may read, and for --json .dmem/poisoned if this user may (root).',
  async run (parsed: Parsed): Promise<number> {
    if (parsed.positionals.length !== 1) throw new UsageError('stat needs exactly one MOUNTPOINT')
    const req: StatRequest = {
      mnt: '',
      cells: parseCells(value(parsed, 'cells')),
      svg: value(parsed, 'svg'),
      json: parsed.flags.has('json')
    }
    const watching = parsed.flags.has('watch')
    if (req.json && req.svg === '-') throw new UsageError('--json and --svg - both want standard output')
    if (watching && req.json) throw new UsageError('--watch draws on the terminal; not with --json')
    if (watching && req.svg === '-') throw new UsageError('--watch draws on the terminal; not with --svg -')
    req.mnt = mountedDmemfs(parsed.positionals[0])
    if (!watching) {
      process.stdout.write(draw(req))
      return 0
    }
    return await watch(req)
  }
}
