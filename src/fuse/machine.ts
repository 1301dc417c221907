// This machine's and this process's limits on memory and address space, from /proc, for the pool check
// in src/pool/limits.ts.

import * as fs from 'fs'
import { MachineLimits } from '../pool/limits'

const KIB = 1024

function readOr (file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch {
    return fallback
  }
}

/** `Name: value kB` lines (/proc/meminfo, /proc/self/status) in bytes. */
function kbFields (text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    const m = /^(\w+):\s+([0-9]+) kB$/.exec(line)
    if (m) out.set(m[1], Number(m[2]) * KIB)
  }
  return out
}

/** The soft RLIMIT_AS from /proc/self/limits; Infinity when unlimited. */
function addressSpaceLimit (): number {
  const m = /^Max address space\s+(\S+)/m.exec(readOr('/proc/self/limits', ''))
  return !m || m[1] === 'unlimited' ? Infinity : Number(m[1])
}

export function readMachineLimits (): MachineLimits {
  const mem = kbFields(readOr('/proc/meminfo', ''))
  const status = kbFields(readOr('/proc/self/status', ''))
  const vmSize = status.get('VmSize') ?? 0
  const get = (name: string): number => mem.get(name) ?? 0
  return {
    memAvailable: get('MemAvailable'),
    memTotal: get('MemTotal') + get('SwapTotal'),
    overcommit: Number(readOr('/proc/sys/vm/overcommit_memory', '0').trim()),
    commitFree: get('CommitLimit') - get('Committed_AS'),
    addressSpaceFree: addressSpaceLimit() - vmSize,
    addressSpaceUsed: vmSize,
    maxMapCount: Number(readOr('/proc/sys/vm/max_map_count', '65530').trim()),
    mapsUsed: readOr('/proc/self/maps', '').split('\n').length - 1
  }
}
