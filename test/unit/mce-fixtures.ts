// Shared fixtures of the memory-failure unit tests: a small pool and Superblock, files with data, and a
// fake MceEnvironment that records what the memory-failure path asks of the outside world.

import { expect } from 'chai'
import { isErrno } from '../../src/fs/errno'
import { Inode } from '../../src/fs/inode'
import { Superblock } from '../../src/fs/super'
import { MceEnvironment, Revocation, RevokeTarget, SigbusResult } from '../../src/mce/memory-failure'
import { FileHolder } from '../../src/mce/procfs'
import { layoutPool } from '../../src/pool/layout'
import { DmemPool } from '../../src/pool/pool'

export const O_RDWR = 2

export interface PoolShape {
  size: number // bytes per node
  nodes: number
  shift: number // dpage shift
  maxAllocTry?: number
}

/** A pool of `nodes` reservations of `size` bytes from 4 GiB up (a GiB apart), and a Superblock on it. */
export function makeSb (shape: PoolShape): Superblock {
  const layout = layoutPool({ size: shape.size, addr: null, align: 2 ** shape.shift }, shape.nodes, shape.shift)
  if (!layout.ok) throw new Error(layout.error)
  const pool = new DmemPool(layout.value)
  return new Superblock(pool, {
    rootMode: 0o755, rootUid: 0, rootGid: 0, nrInodes: 0, maxAllocTry: shape.maxAllocTry ?? 1
  })
}

export function lookup (sb: Superblock, path: string): Inode {
  const inode = sb.lookup(path)
  if (isErrno(inode)) throw new Error(`lookup ${path}: ${inode}`)
  return inode
}

/** Creates `path`, writes `bytes` bytes of a pattern from offset `pos`, and returns the open handle. */
export function createOpen (sb: Superblock, path: string, bytes = 0, pos = 0): number {
  const fh = sb.create(path, 0o644, O_RDWR)
  if (isErrno(fh)) throw new Error(`create ${path}: ${fh}`)
  if (bytes > 0) writeAt(sb, fh, bytes, pos)
  return fh
}

export function writeAt (sb: Superblock, fh: number, bytes: number, pos: number): void {
  const buf = Buffer.alloc(bytes, 0x5a)
  const n = sb.write(fh, buf, bytes, pos)
  expect(n, `write ${bytes} at ${pos}`).to.equal(bytes)
}

/** Creates `path` with `bytes` bytes of data written at `pos`, closes it and returns its inode. */
export function createFile (sb: Superblock, path: string, bytes: number, pos = 0): Inode {
  const fh = createOpen(sb, path, bytes, pos)
  expect(sb.release(fh)).to.equal(0)
  return lookup(sb, path)
}

/** The first PFN of the pool dpage backing file dpage `index` of `inode`. */
export function pfnOfIndex (sb: Superblock, inode: Inode, index: number): number {
  const dpage = inode.dpages!.get(index)
  if (dpage === undefined) throw new Error(`ino ${inode.ino} has no dpage at index ${index}`)
  return sb.pool.pfnOf(dpage)
}

export interface SigbusCall {
  pid: number
  siCode: number
  addr: bigint
}

export interface FakeEnv extends MceEnvironment {
  holderCalls: number[] // the inode numbers findHolders was asked about
  sigbus: SigbusCall[]
  revoked: RevokeTarget[]
  events: string[] // 'revoke' and 'sigbus PID', in the order they happened
  lines: string[]
}

export interface FakeEnvOptions {
  holders?: FileHolder[] | ((ino: number) => FileHolder[])
  self?: number
  sendError?: (pid: number) => Error | null // sendSigbus rejects with it for that pid
  sendResult?: (pid: number) => SigbusResult // what sendSigbus resolves with (default: way kill)
}

export function fakeEnv (opts: FakeEnvOptions = {}): FakeEnv {
  const env: FakeEnv = {
    holderCalls: [],
    sigbus: [],
    revoked: [],
    events: [],
    lines: [],
    self: opts.self ?? 4242,
    findHolders (ino: number): FileHolder[] {
      env.holderCalls.push(ino)
      const h = opts.holders
      if (h === undefined) return []
      return typeof h === 'function' ? h(ino) : h
    },
    threadFlags: () => [0],
    sysctlEarlyKill: () => null,
    processOf (tid: number) {
      return { pid: tid, comm: 'opener' }
    },
    invocationOf (tid: number) {
      return [env.processOf(tid)?.pid ?? tid]
    },
    async sendSigbus (pid: number, siCode: number, addr: bigint): Promise<SigbusResult> {
      env.sigbus.push({ pid, siCode, addr })
      env.events.push(`sigbus ${pid}`)
      const err = opts.sendError?.(pid)
      if (err) throw err
      return opts.sendResult?.(pid) ?? { way: 'kill' }
    },
    async revoke (target: RevokeTarget): Promise<Revocation> {
      env.revoked.push(target)
      env.events.push('revoke')
      return { via: target.path, ms: 1, failed: [] }
    },
    log (line: string): void {
      env.lines.push(line)
    }
  }
  return env
}

// A small deterministic PRNG (mulberry32), so churn tests are reproducible.
export function rng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
