// Linux errno values, negated as FUSE expects them back from an operation. The core returns these for
// every user mistake instead of throwing.
export const EPERM = -1
export const ENOENT = -2
export const EINTR = -4
export const EIO = -5
export const EBADF = -9
export const EACCES = -13
export const EBUSY = -16
export const EEXIST = -17
export const EXDEV = -18
export const ENODEV = -19
export const ENOTDIR = -20
export const EISDIR = -21
export const EINVAL = -22
export const EFBIG = -27
export const ENOSPC = -28
export const ERANGE = -34
export const ENAMETOOLONG = -36
export const ENOTEMPTY = -39
export const ENODATA = -61
export const EOPNOTSUPP = -95

/** A negative errno. Operations return one of these, or their result. */
export type Errno = number

export function isErrno (value: unknown): value is Errno {
  return typeof value === 'number' && value < 0
}

const NAMES: Record<number, string> = {
  [EPERM]: 'EPERM',
  [ENOENT]: 'ENOENT',
  [EINTR]: 'EINTR',
  [EIO]: 'EIO',
  [EBADF]: 'EBADF',
  [EACCES]: 'EACCES',
  [EBUSY]: 'EBUSY',
  [EEXIST]: 'EEXIST',
  [EXDEV]: 'EXDEV',
  [ENODEV]: 'ENODEV',
  [ENOTDIR]: 'ENOTDIR',
  [EISDIR]: 'EISDIR',
  [EINVAL]: 'EINVAL',
  [EFBIG]: 'EFBIG',
  [ENOSPC]: 'ENOSPC',
  [ERANGE]: 'ERANGE',
  [ENAMETOOLONG]: 'ENAMETOOLONG',
  [ENOTEMPTY]: 'ENOTEMPTY',
  [ENODATA]: 'ENODATA',
  [EOPNOTSUPP]: 'EOPNOTSUPP'
}

export function errnoName (errno: Errno): string {
  return NAMES[errno] ?? `errno ${-errno}`
}
