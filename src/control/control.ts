// The control directory at the mount's root, `.dmem/`: small files that speak the kernel's language, like
// the seed's debugfs files and the hwpoison injector. Each file renders its text on demand; writable ones
// parse what is written, reject bad input with EINVAL and a readable reason, and reply with text that the
// writer reads back from the same descriptor.

import { EBUSY, EINVAL, Errno } from '../fs/errno'
import { jsonAscii, nameEscape } from '../fs/name'
import { Superblock } from '../fs/super'
import { renderDataPath } from '../fs/datapath'
import { parseMceRequest, parsePfn } from '../mce/input'
import { EarlyKillMode, handleMemoryFailure, locatePfn, MceEnvironment, McePlace, NOT_DMEM_PFN } from '../mce/memory-failure'
import { PoisonBook, renderPoisoned } from '../mce/poison-book'
import { renderReport, reportJson } from '../mce/report'
import { CorrectedErrors } from '../mce/corrected'
import { renderSoftOffline, softOffline, softOfflineJson } from '../mce/soft-offline'
import { hex } from '../pool/layout'
import { DmemPool } from '../pool/pool'
import { Tracer } from '../pool/trace'
import { RateLimit } from './ratelimit'

export const CONTROL_DIR = '.dmem'

export interface WriteResult {
  errno: 0 | Errno
  reply: string // what the writing descriptor reads next
}

export interface ControlFile {
  name: string
  mode: number // permission bits; the files belong to root
  public?: boolean // readable by every user; all others are root's alone, and every write is root's
  render (): string // text whose chars are bytes (latin1): names in it are byte strings
  // `writer` is the writing thread (0 if unknown). A write may answer later (mce waits for revocation
  // and delivery, which need the daemon to serve other requests meanwhile).
  write? (text: string, writer?: number): WriteResult | Promise<WriteResult>
  truncate? (): void // what opening with O_TRUNC does
  stream?: Tracer // reads block and stream new events from this ring (trace_pipe)
}

export interface ControlOptions {
  earlyKill: EarlyKillMode
  ceThreshold?: number // corrected errors on one dpage that soft-offline it (0 or absent: never)
  onPoisonChange: () => void // the set of poisoned dpages changed (to keep it across mounts)
}

export class ControlDir {
  readonly files = new Map<string, ControlFile>()
  // What each writable file reads: the reply to its latest write.
  private readonly last = new Map<string, string>([
    ['mce', 'no memory failure yet\n'],
    ['unpoison', 'nothing unpoisoned yet\n'],
    ['soft_offline', 'nothing soft-offlined yet\n'],
    ['ce', 'no corrected error yet\n']
  ])
  private readonly refusals: RateLimit
  readonly poisonBook: PoisonBook
  readonly corrected: CorrectedErrors

  constructor (
    readonly sb: Superblock,
    readonly env: MceEnvironment,
    readonly opts: ControlOptions = { earlyKill: 'all', onPoisonChange: () => {} }
  ) {
    this.refusals = new RateLimit(line => env.log(line))
    this.poisonBook = new PoisonBook(sb.pool)
    this.corrected = new CorrectedErrors(opts.ceThreshold ?? 0)
    this.add({ name: 'stat', mode: 0o444, public: true, render: () => renderStat(sb.pool) })
    // Physical addresses are root's alone, as /proc/PID/pagemap hides PFNs from other users.
    this.add({ name: 'pfns', mode: 0o400, render: () => renderPfns(sb) })
    // Read-only, so that any user who may read it gets the whole map: `dmemfs stat` merges its cells.
    this.add({ name: 'map', mode: 0o444, public: true, render: () => renderMap(sb.pool, MAP_CELLS) })
    this.add({ name: 'mce', mode: 0o600, render: () => this.last.get('mce')!, write: (text, writer) => this.writeMce(text, writer) })
    this.add({
      name: 'unpoison', mode: 0o600, render: () => this.last.get('unpoison')!, write: text => this.writeUnpoison(text)
    })
    this.add({ name: 'poisoned', mode: 0o400, render: () => renderPoisoned(this.poisonBook.list()) })
    this.add({
      name: 'soft_offline', mode: 0o600, render: () => this.last.get('soft_offline')!, write: text => this.writeSoftOffline(text)
    })
    this.add({ name: 'offline', mode: 0o400, render: () => renderOffline(sb.pool) })
    this.add({ name: 'ce', mode: 0o600, render: () => this.last.get('ce')!, write: text => this.writeCe(text) })
    this.add({ name: 'ce_counts', mode: 0o400, render: () => this.renderCeCounts() })
    // Whether READ and WRITE are served natively, and how many were (see src/fs/datapath.ts).
    this.add({ name: 'datapath', mode: 0o444, public: true, render: () => sb.opts.datapath?.render() ?? renderDataPath(false, []) })
    const tracer = sb.pool.tracer
    this.add({
      name: 'tracing_on', mode: 0o600, render: () => (tracer.on ? '1\n' : '0\n'), write: text => this.writeTracingOn(text)
    })
    this.add({
      name: 'trace',
      mode: 0o600,
      render: () => renderTrace(tracer),
      write: () => {
        tracer.clear()
        return { errno: 0, reply: '' }
      },
      truncate: () => tracer.clear()
    })
    this.add({ name: 'trace_pipe', mode: 0o400, render: () => '', stream: tracer })
  }

  writeTracingOn (text: string): WriteResult {
    const m = /^([01])\n?$/.exec(text)
    if (!m) return { errno: EINVAL, reply: 'error: write 0 or 1\n' }
    this.sb.pool.tracer.on = m[1] === '1'
    this.sb.opts.datapath?.setTracing(this.sb.pool.tracer.on)
    return { errno: 0, reply: m[1] + '\n' }
  }

  private add (file: ControlFile): void {
    this.files.set(file.name, file)
  }

  private refuse (file: string, message: string): WriteResult {
    const reply = `error: ${message}\n`
    this.refusals.print(`dmemfs: .dmem/${file}: ${message}`)
    this.last.set(file, reply)
    return { errno: EINVAL, reply }
  }

  /** Where a written PFN lives in the pool, or the refusal of a PFN no region holds. */
  private locate (file: string, pfn: number, text: string): McePlace | WriteResult {
    const place = locatePfn(this.sb.pool, pfn)
    return place ?? this.refuse(file, `${text.trim().split(/\s+/)[0]}: ${NOT_DMEM_PFN}`)
  }

  async writeMce (text: string, writer = 0): Promise<WriteResult> {
    const req = parseMceRequest(text)
    if (!req.ok) return this.refuse('mce', req.error)
    const place = this.locate('mce', req.value.pfn, text)
    if ('errno' in place) return place
    // The writer, and what launched it (npx): it inherits its shell's descriptors and is not what the
    // error is about.
    const exclude = req.value.excludeWriter && writer !== 0 ? this.env.invocationOf(writer) : []
    const report = await handleMemoryFailure(
      this.sb, place, req.value.flags, req.value.deliver, this.env, this.opts.earlyKill, exclude)
    this.poisonBook.note(report)
    if (report.state !== 'already-poisoned') this.opts.onPoisonChange()
    const rendered = renderReport(report)
    this.last.set('mce', rendered)
    const reply = req.value.json ? jsonAscii(reportJson(report), 2) + '\n' : rendered
    return { errno: 0, reply }
  }

  /** After /sys/devices/system/memory/soft_offline_page: a PFN retires its dpage, its data kept. */
  writeSoftOffline (text: string): WriteResult {
    // `PFN [json]`: the word json asks for the reply in JSON, as .dmem/mce's does.
    const m = /^(.*?)[ \t]+json(\n?)$/s.exec(text)
    const json = m !== null
    const pfn = parsePfn(m ? m[1] + m[2] : text)
    if (!pfn.ok) return this.refuse('soft_offline', pfn.error)
    const place = this.locate('soft_offline', pfn.value, text)
    if ('errno' in place) return place
    const report = softOffline(this.sb, place)
    const rendered = renderSoftOffline(report)
    this.last.set('soft_offline', rendered)
    if (report.errno) this.refusals.print(`dmemfs: .dmem/soft_offline: ${report.result}`)
    else this.env.log(report.result)
    const reply = json ? jsonAscii(softOfflineJson(report), 2) + '\n' : rendered
    return { errno: report.errno, reply }
  }

  /** A corrected error on a PFN: counted against its dpage; at the ce_threshold mount option's count the
   *  dpage is soft-offlined, and the reply says so. */
  writeCe (text: string): WriteResult {
    const pfn = parsePfn(text)
    if (!pfn.ok) return this.refuse('ce', pfn.error)
    const place = this.locate('ce', pfn.value, text)
    if ('errno' in place) return place
    const { count, reached } = this.corrected.count(place.dpage)
    const pfnHex = hex(place.pfn)
    const threshold = this.corrected.threshold
    let reply = `ce pfn ${pfnHex} dpage ${hex(place.dpagePfn)} count ${count}` +
      (threshold > 0 ? ` threshold ${threshold}\n` : ' (no threshold: ce_threshold=0)\n')
    if (reached) {
      const report = softOffline(this.sb, place)
      const rendered = renderSoftOffline(report)
      this.last.set('soft_offline', rendered)
      this.env.log(`RAS: corrected errors on ${pfnHex} reached ${threshold}: ${report.result}`)
      reply += `threshold reached: soft offline\n${rendered}`
    }
    this.last.set('ce', reply)
    return { errno: 0, reply }
  }

  private renderCeCounts (): string {
    const pool = this.sb.pool
    const lines = ['# dpage node count']
    for (const { dpage, count } of this.corrected.list()) {
      lines.push(`${hex(pool.pfnOf(dpage))} ${pool.regionOf(dpage).node} ${count}`)
    }
    return lines.join('\n') + '\n'
  }

  writeUnpoison (text: string): WriteResult {
    const pfn = parsePfn(text)
    if (!pfn.ok) return this.refuse('unpoison', pfn.error)
    const pool = this.sb.pool
    const dpage = pool.dpageOfPfn(pfn.value)
    if (dpage < 0) return this.refuse('unpoison', `${text.trim()}: ${NOT_DMEM_PFN}`)
    const pfnHex = hex(pfn.value)
    const owner = pool.ownerOf(dpage)
    const result = pool.unpoison(dpage)
    let errno: 0 | Errno = 0
    let reply: string
    if (result === 'not-poisoned') {
      reply = `Unpoison: Page was already unpoisoned ${pfnHex}\n`
    } else if (result === 'unpoisoned') {
      this.poisonBook.forget(dpage)
      reply = `Unpoison: Software-unpoisoned free page ${pfnHex}\n`
      this.opts.onPoisonChange()
    } else {
      const inode = this.sb.inode(owner)
      const path = inode ? nameEscape(this.sb.pathOf(inode) ?? '(deleted)') : '?'
      reply = `Unpoison: the hwpoison page has non-NULL mapping ${pfnHex}: ` +
        `still owned by ${path} (ino ${owner}); it stays poisoned\n`
      errno = EBUSY
    }
    this.last.set('unpoison', reply)
    this.env.log(reply.trimEnd())
    return { errno, reply }
  }
}

/** Pool statistics, one `name: value` per line, as the seed's debugfs files read. */
export function renderStat (pool: DmemPool): string {
  const layout = pool.layout
  const lines = [
    `region_num: ${pool.regions.length}`,
    `registered_pages: ${layout.registeredPages}`,
    `unaligned_pages: ${layout.unalignedPages}`,
    `dpage_shift: ${pool.dpageShift}`,
    `total_dpages: ${pool.total}`,
    `free_dpages: ${pool.free}`,
    `poisoned_dpages: ${pool.poisoned}`,
    `offline_dpages: ${pool.offline}`
  ]
  for (const node of pool.nodes) {
    lines.push(
      `node${node.id}.total_dpages: ${node.total}`,
      `node${node.id}.free_dpages: ${node.free}`,
      `node${node.id}.poisoned_dpages: ${node.poisoned}`,
      `node${node.id}.offline_dpages: ${node.offline}`
    )
  }
  return lines.join('\n') + '\n'
}

/** Soft-offlined dpages, one line each: what `dmemfs inject` needs to leave them alone (they are neither
 *  free, used nor poisoned). A dpage still owned (retired once its file lets go) is listed too. */
function renderOffline (pool: DmemPool): string {
  const lines = ['# dpage node']
  for (let d = 0; d < pool.total; d++) {
    if (pool.isOffline(d)) lines.push(`${hex(pool.pfnOf(d))} ${pool.regionOf(d).node}`)
  }
  return lines.join('\n') + '\n'
}

/** The buffered events, oldest first, under a header like ftrace's. */
export function renderTrace (tracer: Tracer): string {
  const { lines } = tracer.read(tracer.oldest())
  const header = `# tracer: dmem\n# entries-in-buffer: ${lines.length}\n# TIMESTAMP: [ino N] EVENT: DETAILS\n`
  return header + lines.map(l => l + '\n').join('')
}

// Fine enough for `dmemfs stat` to merge into the cells it draws (512 of a 1G region's 4K dpages, 4096 at
// most) with exact counts; a region with fewer dpages gets one cell a dpage.
export const MAP_CELLS = 4096

/** The pool as a map: per region, its place and `cells` runs of dpages, each given as `used/poisoned`
 *  (dpages a file owns / poisoned dpages), `used/poisoned/owned` when files own `owned` of the poisoned
 *  dpages. Every cell holds `per_cell` dpages but the last, which holds the
 *  rest. */
export function renderMap (pool: DmemPool, cells: number): string {
  const lines = ['# region R node N phys P dpages D dpage_size S per_cell C cells used/poisoned[/owned] ...']
  for (const r of pool.regions) {
    const perCell = Math.ceil(r.dpages / Math.min(cells, r.dpages))
    const counts: string[] = []
    for (let start = 0; start < r.dpages; start += perCell) {
      const c = pool.countRange(r.base + start, r.base + Math.min(r.dpages, start + perCell))
      // A third count only where a file owns poisoned dpages, so the common cell stays `used/poisoned`.
      counts.push(c.poisonedUsed > 0 ? `${c.used}/${c.poisoned}/${c.poisonedUsed}` : `${c.used}/${c.poisoned}`)
    }
    lines.push(`region ${r.id} node ${r.node} phys ${hex(r.phys)} dpages ${r.dpages} ` +
      `dpage_size ${pool.dpageSize} per_cell ${perCell} cells ${counts.join(' ')}`)
  }
  return lines.join('\n') + '\n'
}

/** Which PFNs back which file: one line per run of dpages contiguous in both the file and the pool. The
 *  path is escaped as seq_file does (`\012` for a newline), so each line holds one run. */
export function renderPfns (sb: Superblock): string {
  const pool = sb.pool
  const lines = ['# ino offset pfn frames path']
  for (const inode of sb.allInodes()) {
    if (!inode.dpages || inode.dpages.size === 0) continue
    const path = nameEscape(sb.pathOf(inode) ?? '(deleted)')
    const indices = [...inode.dpages.keys()].sort((a, b) => a - b)
    let i = 0
    while (i < indices.length) {
      const first = indices[i]
      const dpage = inode.dpages.get(first)!
      let n = 1
      while (i + n < indices.length && indices[i + n] === first + n &&
        inode.dpages.get(first + n) === dpage + n && pool.pfnOf(dpage + n) === pool.pfnOf(dpage) + n * pool.framesPerDpage) n++
      lines.push(`${inode.ino} ${first * pool.dpageSize} ${hex(pool.pfnOf(dpage))} ${n * pool.framesPerDpage} ${path}`)
      i += n
    }
  }
  return lines.join('\n') + '\n'
}
