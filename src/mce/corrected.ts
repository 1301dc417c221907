// Corrected errors, as rasdaemon and mcelog count them: memory that erred but was fixed by ECC. Each one
// is counted against its dpage; at a threshold the dpage is soft-offlined before it fails for good, as
// the kernel's RAS CEC (drivers/ras/cec.c) offlines a page whose count crosses its threshold.

export class CorrectedErrors {
  private readonly counts = new Map<number, number>() // pool dpage -> corrected errors seen

  /** threshold 0: count only, never offline. */
  constructor (readonly threshold: number) {}

  /** Counts one error on `dpage`; true when the count has just reached the threshold. */
  count (dpage: number): { count: number, reached: boolean } {
    const count = (this.counts.get(dpage) ?? 0) + 1
    this.counts.set(dpage, count)
    return { count, reached: this.threshold > 0 && count === this.threshold }
  }

  /** Dpages with a count, in pool order. */
  list (): Array<{ dpage: number, count: number }> {
    return [...this.counts].sort((a, b) => a[0] - b[0]).map(([dpage, count]) => ({ dpage, count }))
  }
}
