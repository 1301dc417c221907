// dmemfs's data path without FUSE: the superblock's read and write, in this process, against a bare Buffer
// copy of the same bytes (the least any in-memory filesystem does). The difference is what dmemfs's own
// logic adds to each request, apart from the hand-offs every fuse-native request pays.

import { layoutPool } from '../src/pool/layout'
import { DmemPool } from '../src/pool/pool'
import { Superblock } from '../src/fs/super'

const O_RDWR = 2
const MiB = 1 << 20

export interface CoreFigure {
  label: string
  dmemfsUs: number // microseconds per call through the superblock
  copyUs: number // microseconds per bare Buffer copy of the same bytes
}

function microseconds (calls: number, fn: (i: number) => void): number {
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < calls; i++) fn(i)
  return Number(process.hrtime.bigint() - t0) / 1000 / calls
}

/** Reads of 4 KiB at random offsets and overwrites of 128 KiB (the largest FUSE write) in a file of
 *  `fileMiB`, each timed over `calls` calls after a warm-up of the same length. */
export function measureCore (fileMiB: number, calls: number): CoreFigure[] {
  const layout = layoutPool({ size: 2 * fileMiB * MiB, addr: null, align: 4096 }, 1, 12)
  if (!layout.ok) throw new Error(layout.error)
  const sb = new Superblock(new DmemPool(layout.value), { rootMode: 0o755, rootUid: 0, rootGid: 0, nrInodes: 0, maxAllocTry: 32 })
  const fh = sb.create('/f', 0o644, O_RDWR)
  if (fh < 0) throw new Error(`create: ${fh}`)
  const flat = Buffer.alloc(fileMiB * MiB, 1)
  for (let pos = 0; pos < flat.length; pos += MiB) sb.write(fh, flat, MiB, pos)

  const page = Buffer.alloc(4096)
  const offsets = Float64Array.from({ length: calls }, () => Math.floor(Math.random() * (flat.length / 4096)) * 4096)
  const chunk = Buffer.alloc(128 * 1024, 2)
  const chunks = flat.length / chunk.length
  const timed = (fn: (i: number) => void) => {
    microseconds(calls, fn) // warm-up: let the JIT settle
    return microseconds(calls, fn)
  }
  return [
    {
      label: '4 KiB read at a random offset',
      dmemfsUs: timed(i => sb.read(fh, page, 4096, offsets[i])),
      copyUs: timed(i => flat.copy(page, 0, offsets[i], offsets[i] + 4096))
    },
    {
      label: '128 KiB overwrite, in order',
      dmemfsUs: timed(i => sb.write(fh, chunk, chunk.length, (i % chunks) * chunk.length)),
      copyUs: timed(i => chunk.copy(flat, (i % chunks) * chunk.length))
    }
  ]
}
