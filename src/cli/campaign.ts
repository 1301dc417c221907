// The pure part of `dmemfs inject`: which dpages a campaign may hit, and which it picks. The picks come
// from a small seeded PRNG over a canonical (sorted) list of candidates, so that the same seed and the
// same pool state pick the same PFNs on any machine.

export type CampaignTarget = 'used' | 'free' | 'any'

export interface PoolFacts {
  regions: Array<{ pfnFirst: number, dpages: number, framesPerDpage: number }>
  used: Array<{ pfn: number, frames: number }> // runs of dpages files own (.dmem/pfns)
  poisoned: Set<number> // first PFNs of poisoned dpages
  offline: Set<number> // first PFNs of soft-offlined dpages
}

/** mulberry32: a 32-bit state, fast, and good enough to spread errors over a pool; not for secrets. */
export function prng (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** The first PFNs of the dpages `runs` cover, each once. */
function dpagesOf (runs: PoolFacts['used'], framesPerDpage: number): Set<number> {
  const out = new Set<number>()
  for (const r of runs) {
    for (let f = 0; f < r.frames; f += framesPerDpage) out.add(r.pfn + f)
  }
  return out
}

/** The dpages (first PFNs, ascending) a campaign may hit: `used` ones a file owns (those of `fileRuns`
 *  alone when given), `free` ones nothing owns, or `any` of both; never a poisoned or offline one. */
export function candidates (facts: PoolFacts, target: CampaignTarget, fileRuns?: PoolFacts['used']): number[] {
  const fpd = facts.regions[0]?.framesPerDpage ?? 1
  const usable = (pfn: number): boolean => !facts.poisoned.has(pfn) && !facts.offline.has(pfn)
  const used = dpagesOf(facts.used, fpd)
  const out: number[] = []
  if (fileRuns !== undefined) {
    for (const pfn of dpagesOf(fileRuns, fpd)) if (usable(pfn)) out.push(pfn)
    return out.sort((a, b) => a - b)
  }
  if (target === 'used') {
    for (const pfn of used) if (usable(pfn)) out.push(pfn)
    return out.sort((a, b) => a - b)
  }
  for (const r of facts.regions) {
    for (let d = 0; d < r.dpages; d++) {
      const pfn = r.pfnFirst + d * r.framesPerDpage
      if (!usable(pfn)) continue
      if (target === 'any' || !used.has(pfn)) out.push(pfn)
    }
  }
  return out.sort((a, b) => a - b)
}

/** One pick: a dpage among the candidates, then a 4 KiB frame inside it. Both draws are made every time,
 *  so the sequence does not depend on the dpage size. */
export function pick (dpages: number[], framesPerDpage: number, random: () => number): number {
  const dpage = dpages[Math.floor(random() * dpages.length)]
  const frame = Math.floor(random() * framesPerDpage)
  return dpage + frame
}
