// printk_ratelimited() for the daemon's log: refused control writes may each say why, but a storm of them
// (a script writing garbage in a loop) must not flood the log. As the kernel's ___ratelimit(): at most
// `burst` lines per `interval`; the first line after a suppressed stretch says how many were dropped.

const DEFAULT_RATELIMIT_INTERVAL_MS = 5000 // DEFAULT_RATELIMIT_INTERVAL, 5 * HZ
const DEFAULT_RATELIMIT_BURST = 10

export class RateLimit {
  private begin = -Infinity
  private printed = 0
  private missed = 0

  constructor (
    private readonly log: (line: string) => void,
    private readonly now: () => number = Date.now,
    readonly intervalMs = DEFAULT_RATELIMIT_INTERVAL_MS,
    readonly burst = DEFAULT_RATELIMIT_BURST
  ) {}

  /** Logs `line` unless this interval's burst is spent. */
  print (line: string): void {
    const t = this.now()
    if (t - this.begin >= this.intervalMs) {
      if (this.missed > 0) this.log(`dmemfs: ${this.missed} callbacks suppressed`)
      this.begin = t
      this.printed = 0
      this.missed = 0
    }
    if (this.printed >= this.burst) {
      this.missed++
      return
    }
    this.printed++
    this.log(line)
  }
}
