// Wall-clock time in nanoseconds, as the kernel keeps inode times. Date.now() has only milliseconds, so
// the monotonic high-resolution clock is anchored to it once and carries the finer part.

export const anchorNs = BigInt(Date.now()) * 1000000n - process.hrtime.bigint()

export function nowNs (): bigint {
  return anchorNs + process.hrtime.bigint()
}

// utimensat(2)'s special values, as the patched fuse-native passes them (Fuse.UTIME_NOW/UTIME_OMIT).
export const UTIME_NOW = -1n
export const UTIME_OMIT = -2n
