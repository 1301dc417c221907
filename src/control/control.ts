// The control directory at the mount's root, `.dmem/`: small files that speak the kernel's language, like
// the seed's debugfs files. Each file renders its text on demand; writable ones parse what is written and
// reject bad input with EINVAL and a message.

import { Errno } from '../fs/errno'
import { Superblock } from '../fs/super'

export const CONTROL_DIR = '.dmem'

export interface ControlFile {
  name: string
  mode: number // permission bits
  render (): string
  write? (text: string): 0 | Errno
}

export class ControlDir {
  readonly files = new Map<string, ControlFile>()

  constructor (readonly sb: Superblock) {
    this.add({ name: 'stat', mode: 0o444, render: () => renderStat(sb) })
  }

  private add (file: ControlFile): void {
    this.files.set(file.name, file)
  }
}

/** Pool statistics, one `name: value` per line, as the seed's debugfs files read. */
export function renderStat (sb: Superblock): string {
  const pool = sb.pool
  const layout = pool.layout
  const lines = [
    `region_num: ${pool.regions.length}`,
    `registered_pages: ${layout.registeredPages}`,
    `unaligned_pages: ${layout.unalignedPages}`,
    `dpage_shift: ${pool.dpageShift}`,
    `total_dpages: ${pool.total}`,
    `free_dpages: ${pool.free}`
  ]
  for (const node of pool.nodes) {
    lines.push(`node${node.id}.total_dpages: ${node.total}`, `node${node.id}.free_dpages: ${node.free}`)
  }
  return lines.join('\n') + '\n'
}
