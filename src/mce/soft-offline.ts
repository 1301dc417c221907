// Soft offline, after the kernel's soft_offline_page(): retire a dpage before it fails. A free dpage leaves
// service at once; a used one has its data migrated to a fresh dpage (same node if it can, else the
// fallback order), the file's dpage table and the reverse map follow, and the old dpage is retired. Nobody
// is signalled: the data is safe. The retired dpage counts as offline, not poisoned.

import { EBUSY, EINVAL, Errno } from '../fs/errno'
import { nameEscape, nameForJson } from '../fs/name'
import { fileMigrateDpage } from '../fs/file'
import { Superblock } from '../fs/super'
import { hex, PAGE_SIZE } from '../pool/layout'
import { NO_OWNER } from '../pool/pool'
import { McePlace } from './memory-failure'

export type SoftOfflineState = 'free' | 'used' | 'already-poisoned' | 'already-offline' | 'no-free-dpage'

export interface SoftOfflineReport extends McePlace {
  time: number
  state: SoftOfflineState
  errno: 0 | Errno
  result: string // the kernel-style log line
  file: { path: string | null, ino: number, index: number, offset: number } | null
  newPfn: number | null // where a used dpage's data went
  newNode: number | null
}

/** Runs soft offline for a PFN the caller has located. */
export function softOffline (sb: Superblock, place: McePlace): SoftOfflineReport {
  const pool = sb.pool
  const pfnHex = hex(place.pfn)
  const base = { ...place, time: Date.now(), file: null, newPfn: null, newNode: null }
  if (pool.isPoisoned(place.dpage)) {
    return { ...base, state: 'already-poisoned', errno: EINVAL, result: `soft_offline: ${pfnHex}: page already poisoned` }
  }
  if (pool.isOffline(place.dpage)) {
    return { ...base, state: 'already-offline', errno: EINVAL, result: `soft_offline: ${pfnHex}: dpage already offline` }
  }
  const ino = pool.ownerOf(place.dpage)
  const inode = ino === NO_OWNER ? undefined : sb.inode(ino)
  if (!inode) {
    pool.takeOffline(place.dpage)
    trace(sb, place, 0, null)
    return { ...base, state: 'free', errno: 0, result: `soft_offline: ${pfnHex}: free dpage taken out of service` }
  }
  const index = pool.indexOf(place.dpage)
  const file = { path: sb.pathOf(inode), ino, index, offset: index * pool.dpageSize }
  // Marked first, so that the migration's release keeps it out; undone if there is nowhere to go.
  pool.takeOffline(place.dpage)
  const to = fileMigrateDpage(pool, inode, index, place.node)
  if (to < 0) {
    pool.cancelOffline(place.dpage)
    return {
      ...base, file, state: 'no-free-dpage', errno: EBUSY,
      result: `soft offline: ${pfnHex}: dpage migration failed ${EBUSY}, no free dpage`
    }
  }
  const newPfn = pool.pfnOf(to)
  trace(sb, place, ino, newPfn)
  return {
    ...base, file, state: 'used', errno: 0, newPfn, newNode: pool.regionOf(to).node,
    result: `soft_offline: ${pfnHex}: migrated to ${hex(newPfn)}`
  }
}

/** A tracepoint in the style of the seed's dmem_memory_failure. */
function trace (sb: Superblock, place: McePlace, ino: number, newPfn: number | null): void {
  const pool = sb.pool
  if (!pool.tracer.on) return
  const to = newPfn === null ? '' : ` new_pfn=${hex(newPfn)}`
  pool.tracer.emit(ino, 'dmem_soft_offline', `pfn=${hex(place.pfn)} used=${newPfn === null ? 0 : 1}${to}`)
}

export function renderSoftOffline (r: SoftOfflineReport): string {
  const lines = [
    `pfn ${hex(r.pfn)} phys ${hex(r.phys)} node ${r.node} region ${r.region} dpage ${hex(r.dpagePfn)} state ${r.state}`,
    `result ${r.result}`
  ]
  if (r.file) {
    lines.push(`file ${r.file.path === null ? '(deleted)' : nameEscape(r.file.path)} ino ${r.file.ino} index ${r.file.index} offset ${r.file.offset}`)
  }
  if (r.newPfn !== null) lines.push(`new pfn ${hex(r.newPfn)} node ${r.newNode} (data kept, nobody signalled)`)
  return lines.join('\n') + '\n'
}

export function softOfflineJson (r: SoftOfflineReport): object {
  return {
    pfn: hex(r.pfn),
    phys: hex(r.phys),
    node: r.node,
    region: r.region,
    dpage_pfn: hex(r.dpagePfn),
    dpage_size: r.dpageSize,
    frames: r.dpageSize / PAGE_SIZE,
    state: r.state,
    errno: -r.errno,
    result: r.result,
    file: r.file && { ...r.file, path: r.file.path === null ? null : nameForJson(r.file.path) },
    new_pfn: r.newPfn === null ? null : hex(r.newPfn),
    new_node: r.newNode,
    time: r.time
  }
}
