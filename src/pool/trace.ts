// Tracepoints, like the seed's (TRACE_SYSTEM dmem and dmemfs) and ftrace's ring buffer: a bounded ring of
// formatted events, off by default. Callers test `on` before formatting anything, so a hot path pays one
// property read when tracing is off.

export const TRACE_RING_SIZE = 16384

export class Tracer {
  on = false
  private readonly ring: string[] = new Array<string>(TRACE_RING_SIZE)
  private next = 0 // sequence number of the next event
  private cleared = 0 // events before this one were cleared
  private waiters: Array<() => void> = []
  private wakeScheduled = false

  /** Records `event: text`, prefixed with the monotonic time in seconds (as ftrace shows it) and, where
   *  known, the inode. */
  emit (ino: number, event: string, text: string): void {
    if (!this.on) return
    const ns = process.hrtime.bigint()
    const stamp = `${ns / 1000000000n}.${String((ns / 1000n) % 1000000n).padStart(6, '0')}`
    this.ring[this.next % TRACE_RING_SIZE] = `${stamp}: ${ino ? `ino ${ino} ` : ''}${event}: ${text}`
    this.next++
    this.wake()
  }

  /** The oldest sequence number still held. */
  oldest (): number {
    return Math.max(this.cleared, this.next - TRACE_RING_SIZE)
  }

  /** The sequence number the next event will get: a reader starting now reads from here. */
  head (): number {
    return this.next
  }

  /** Events from `seq` on (from the oldest held, if `seq` was overwritten), and where to continue. */
  read (seq: number, max = Infinity): { lines: string[], next: number } {
    const from = Math.max(seq, this.oldest())
    const to = Math.min(this.next, from + max)
    const lines: string[] = []
    for (let s = from; s < to; s++) lines.push(this.ring[s % TRACE_RING_SIZE])
    return { lines, next: to }
  }

  clear (): void {
    this.cleared = this.next
  }

  /** Calls `fn` once, soon after the next event. */
  waitForEvent (fn: () => void): void {
    this.waiters.push(fn)
  }

  cancelWait (fn: () => void): void {
    this.waiters = this.waiters.filter(w => w !== fn)
  }

  // Waiters run after the current request, never inside the allocator that emitted the event.
  private wake (): void {
    if (this.waiters.length === 0 || this.wakeScheduled) return
    this.wakeScheduled = true
    setImmediate(() => {
      this.wakeScheduled = false
      const waiters = this.waiters
      this.waiters = []
      for (const fn of waiters) fn()
    })
  }
}
