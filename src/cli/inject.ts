// dmemfs inject: a campaign of memory errors, as RAS engineers run them ("an error every second for an hour,
// and see what survives"). Each event picks a PFN at random among the chosen dpages (campaign.ts) and runs it
// through the mount's own .dmem/mce (or .dmem/soft_offline): no second implementation of either.

import * as fs from 'fs'
import { argBytes } from '../argv'
import { jsonAscii, nameEscape, nameFromJson } from '../fs/name'
import { MountError } from '../fuse/mount'
import { parseKernelU64 } from '../mce/input'
import { PAGE_SIZE, parseMap, parsePfns } from '../statmap'
import { CampaignTarget, candidates, pick, PoolFacts, prng } from './campaign'
import { Command, Parsed, print, printBytes, UsageError, value } from './common'
import {
  askControl, closeInheritedUnder, controlPath, dmemfsFileMount, mountedDmemfs, readControl, readOffline, readPoisoned
} from './dmem'
import { EXCLUDE_WRITER, MCE_FLAGS, mceWords } from './mce'
import { hex } from '../pool/layout'

interface Campaign {
  mnt: string
  count: number // 0: until Ctrl-C or no dpage is left
  interval: number // ms between events
  seed: number
  target: CampaignTarget
  file: { ino: number, shown: string } | null
  softOffline: boolean
  words: string[] // .dmem/mce's flag words
  json: boolean
}

interface ReportProcess { pid: number, comm: string, signal: string | null, sent: boolean | null }

interface Report {
  state: string
  result: string
  errno?: number
  file: { path: string | null, offset: number } | null
  processes?: ReportProcess[]
  new_pfn?: string | null
}

interface Tally {
  events: number
  hit: number // dpages poisoned, or soft-offlined
  refused: number
  signalled: Map<number, string | null> // pid -> its start time (field 22 of /proc/PID/stat) right after
  left: number
  stopped: 'count' | 'interrupted' | 'no dpages left'
}

function integer (text: string | undefined, name: string, max: number, fallback: number): number {
  if (text === undefined) return fallback
  const n = parseKernelU64(text)
  if (!n.ok || n.value > BigInt(max)) throw new UsageError(`--${name} needs a whole number from 0 to ${max}, not '${text}'`)
  return Number(n.value)
}

function parseCampaign (parsed: Parsed): Campaign {
  if (parsed.positionals.length !== 1) throw new UsageError('inject needs exactly one MOUNTPOINT')
  const targetText = value(parsed, 'target')
  if (targetText !== undefined && !['used', 'free', 'any'].includes(targetText)) {
    throw new UsageError(`--target is used, free or any, not '${targetText}'`)
  }
  const fileArg = value(parsed, 'file')
  if (fileArg !== undefined && targetText !== undefined && targetText !== 'used') {
    throw new UsageError('--file aims at the file\'s own dpages: not with --target free or any')
  }
  const softOffline = parsed.flags.has('soft-offline')
  const words = mceWords(parsed.flags).filter(w => w !== 'json')
  if (softOffline && words.length > 0) {
    throw new UsageError('--soft-offline signals nobody: not with --must-kill, --action-required or --deliver')
  }
  const mnt = mountedDmemfs(parsed.positionals[0])
  let file: Campaign['file'] = null
  if (fileArg !== undefined) {
    const where = dmemfsFileMount(argBytes(fileArg), fileArg)
    if (fs.realpathSync(where.mnt) !== mnt) throw new UsageError(`${fileArg} is not on the dmemfs at ${mnt}`)
    file = { ino: where.ino, shown: fileArg }
  }
  return {
    mnt,
    count: integer(value(parsed, 'count'), 'count', 1e9, 1),
    interval: integer(value(parsed, 'interval'), 'interval', 86400000, 1000),
    seed: integer(value(parsed, 'seed'), 'seed', 0xffffffff, Math.floor(Math.random() * 0x100000000)),
    target: (targetText ?? (file ? 'used' : 'any')) as CampaignTarget,
    file,
    softOffline,
    words,
    json: parsed.flags.has('json')
  }
}

/** What the mount's control files say now: regions, owned runs, poisoned and offline dpages. */
function readFacts (mnt: string): { facts: PoolFacts, fileRuns: (ino: number) => PoolFacts['used'] } {
  const map = parseMap(readControl(controlPath(mnt, 'map')))
  if (!map.ok) throw new MountError(map.error)
  const runs = parsePfns(readControl(controlPath(mnt, 'pfns')))
  if (!runs.ok) throw new MountError(runs.error)
  const poisoned = readPoisoned(mnt)
  if (poisoned === null) throw new MountError("only root may inject (.dmem/mce, .dmem/pfns and .dmem/poisoned are root's)")
  const facts: PoolFacts = {
    regions: map.value.regions.map(r => ({ pfnFirst: r.pfnFirst, dpages: r.dpages, framesPerDpage: r.dpageSize / PAGE_SIZE })),
    used: runs.value,
    poisoned: new Set(poisoned.map(p => p.dpagePfn)),
    offline: readOffline(mnt)
  }
  return { facts, fileRuns: ino => runs.value.filter(r => r.ino === ino) }
}

function dpagesNow (c: Campaign): { dpages: number[], framesPerDpage: number } {
  const { facts, fileRuns } = readFacts(c.mnt)
  return {
    dpages: candidates(facts, c.target, c.file ? fileRuns(c.file.ino) : undefined),
    framesPerDpage: facts.regions[0]?.framesPerDpage ?? 1
  }
}

/** The start time of a process, to tell it from a later one with the same pid; null once it is gone. */
function startTime (pid: number): string | null {
  let stat: string
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1')
  } catch {
    return null
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  if (fields[0] === 'Z' || fields[0] === 'X') return null // dead, not yet reaped
  return fields[19] // field 22 of the whole line
}

/** One event: the PFN through the control file; the reply's report, or null with the refusal. */
function runEvent (c: Campaign, pfn: number): { report: Report | null, refusal: string } {
  const file = c.softOffline ? 'soft_offline' : 'mce'
  const words = c.softOffline ? c.words : [EXCLUDE_WRITER, ...c.words]
  const { ok, reply } = askControl(controlPath(c.mnt, file), [hex(pfn), ...words, 'json'].join(' ') + '\n')
  if (reply.startsWith('error: ')) return { report: null, refusal: reply.trim().slice('error: '.length) }
  const report = JSON.parse(reply) as Report
  return { report, refusal: ok ? '' : report.result }
}

function eventLine (n: number, pfn: number, report: Report | null, refusal: string): string {
  if (report === null) return `event ${n}: pfn ${hex(pfn)}: refused: ${refusal}`
  const parts = [`event ${n}: pfn ${hex(pfn)} ${report.state}`]
  if (report.file) {
    const path = report.file.path === null ? '(deleted)' : nameEscape(nameFromJson(report.file.path))
    parts.push(` ${path} offset ${report.file.offset}`)
  }
  parts.push(`: ${report.result}`)
  if (report.new_pfn) parts.push(`; data now at ${report.new_pfn}`)
  for (const p of report.processes ?? []) {
    if (p.signal === null) continue
    const fate = p.sent === true ? 'sent' : p.sent === false ? 'not sent' : 'not delivered'
    parts.push(`; ${p.signal} ${p.pid} (${nameEscape(nameFromJson(p.comm))}) ${fate}`)
  }
  return parts.join('')
}

function emit (c: Campaign, line: string, json: object): void {
  if (c.json) print(jsonAscii(json))
  else printBytes(line)
}

/** Resolves after `ms`, or at once when `stop` is called. */
function pause (ms: number, interrupted: { stop?: () => void }): Promise<void> {
  return new Promise(resolve => {
    const timer = setTimeout(resolve, ms)
    interrupted.stop = () => {
      clearTimeout(timer)
      resolve()
    }
  })
}

async function runCampaign (c: Campaign): Promise<Tally> {
  const tally: Tally = { events: 0, hit: 0, refused: 0, signalled: new Map(), left: 0, stopped: 'count' }
  const random = prng(c.seed)
  let interrupted = false
  const waiter: { stop?: () => void } = {}
  const onSignal = (): void => {
    interrupted = true
    waiter.stop?.()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    for (;;) {
      const { dpages, framesPerDpage } = dpagesNow(c)
      tally.left = dpages.length
      if (interrupted) {
        tally.stopped = 'interrupted'
        break
      }
      if (c.count > 0 && tally.events >= c.count) break
      if (dpages.length === 0) {
        tally.stopped = 'no dpages left'
        break
      }
      if (tally.events > 0) {
        await pause(c.interval, waiter)
        if (interrupted) continue // counted above, with the pool as it is now
      }
      const pfn = pick(dpages, framesPerDpage, random)
      const { report, refusal } = runEvent(c, pfn)
      tally.events++
      if (refusal === '') tally.hit++
      else tally.refused++
      for (const p of report?.processes ?? []) {
        if (p.sent === true && !tally.signalled.has(p.pid)) tally.signalled.set(p.pid, startTime(p.pid) ?? 'gone')
      }
      emit(c, eventLine(tally.events, pfn, report, refusal), { event: tally.events, pfn: hex(pfn), refused: refusal || null, report })
      await pause(0, waiter) // let a pending SIGINT in
    }
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
  return tally
}

/** The signalled processes that are gone (or are another process by now), after a moment to die in. */
async function deadVictims (tally: Tally): Promise<number[]> {
  const dead = (): number[] => [...tally.signalled].filter(([pid, start]) => start === 'gone' || startTime(pid) !== start).map(([pid]) => pid)
  for (let i = 0; i < 10 && dead().length < tally.signalled.size; i++) await new Promise(resolve => setTimeout(resolve, 50))
  return dead()
}

async function summarize (c: Campaign, tally: Tally): Promise<void> {
  const died = await deadVictims(tally)
  const signalled = [...tally.signalled.keys()]
  const what = c.softOffline ? 'soft-offlined' : 'poisoned'
  const kind = c.file ? `of ${c.file.shown}` : c.target
  if (c.json) {
    print(jsonAscii({
      summary: {
        events: tally.events, [what.replace('-', '_')]: tally.hit, refused: tally.refused, signalled, died,
        dpages_left: tally.left, target: c.file ? 'file' : c.target, seed: c.seed, stopped: tally.stopped
      }
    }))
    return
  }
  const list = (pids: number[]): string => (pids.length > 0 ? `: ${pids.join(' ')}` : '')
  process.stdout.write(Buffer.from([
    `summary: ${tally.events} events (${tally.hit} ${what}, ${tally.refused} refused), stopped: ${tally.stopped}`,
    `victims signalled ${signalled.length}${list(signalled)}`,
    `processes died ${died.length}${list(died)}`,
    `dpages left ${tally.left} (${kind})`,
    `seed ${c.seed} (the same seed on the same pool picks the same PFNs)`
  ].join('\n') + '\n', 'latin1'))
}

export const inject: Command = {
  name: 'inject',
  args: 'MOUNTPOINT',
  summary: 'run a campaign of memory errors at random PFNs (reproducible from a seed) and summarize what survived',
  flags: [
    { name: 'count', value: 'N', help: 'events to inject (default 1; 0: until Ctrl-C or no dpage is left)' },
    { name: 'interval', value: 'MS', help: 'milliseconds between events (default 1000)' },
    { name: 'seed', value: 'S', help: 'seed of the PRNG, 0 to 4294967295 (default: a random one, printed in the summary)' },
    { name: 'target', value: 'used|free|any', help: 'which dpages to hit: owned by a file, free, or either (default any)' },
    { name: 'file', value: 'PATH', help: "hit only PATH's dpages (a file on this dmemfs)" },
    { name: 'soft-offline', help: 'soft-offline each PFN (.dmem/soft_offline) instead of a memory failure' },
    ...MCE_FLAGS,
    { name: 'json', help: 'print one JSON object per line: one per event ({"event", "pfn", "refused", "report"}), then {"summary"}' }
  ],
  details: 'Injects --count memory errors into the dmemfs at MOUNTPOINT, one every --interval ms. Each picks a dpage\n' +
    'at random among the chosen ones (never a poisoned or soft-offlined one), then a 4 KiB frame in it, and\n' +
    'writes its PFN to MOUNTPOINT/.dmem/mce (or .dmem/soft_offline), printing one line per event. The picks\n' +
    'come from a seeded PRNG: the same seed on the same pool state picks the same PFNs. At the end, or at\n' +
    'Ctrl-C (exit 0), a summary: events, victims signalled, which of them died, dpages left to hit. Only\n' +
    'root may inject.',
  async run (parsed: Parsed): Promise<number> {
    const c = parseCampaign(parsed)
    try {
      fs.accessSync(controlPath(c.mnt, 'mce'), fs.constants.W_OK)
    } catch {
      throw new MountError("only root may inject (.dmem/mce, .dmem/pfns and .dmem/poisoned are root's)")
    }
    closeInheritedUnder(c.mnt)
    if (!c.json) {
      const how = c.softOffline ? '.dmem/soft_offline' : ['.dmem/mce', ...c.words].join(' ')
      print(`inject: seed ${c.seed}, target ${c.file ? c.file.shown : c.target}, ` +
        `${c.count === 0 ? 'until Ctrl-C' : `${c.count} event${c.count === 1 ? '' : 's'}`} every ${c.interval} ms, through ${how}`)
    }
    await summarize(c, await runCampaign(c))
    return 0
  }
}
