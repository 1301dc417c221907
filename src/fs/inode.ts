import { nowNs } from './clock'
import { NativeFile } from './datapath'

// Inodes: metadata, and per type either directory entries, a symlink target, or a regular file's dpage
// table (file dpage index -> pool dpage), as dmemfs keeps in its radix tree.

export const S_IFMT = 0o170000
export const S_IFREG = 0o100000
export const S_IFDIR = 0o040000
export const S_IFLNK = 0o120000
export const S_IFIFO = 0o010000
export const S_IFCHR = 0o020000
export const S_IFBLK = 0o060000
export const S_IFSOCK = 0o140000
export const S_ISUID = 0o4000
export const S_ISGID = 0o2000
export const PERM_MASK = 0o7777

export interface Cred {
  uid: number
  gid: number
}

export const ROOT_CRED: Cred = { uid: 0, gid: 0 }

export interface Stat {
  ino: number
  mode: number
  nlink: number
  uid: number
  gid: number
  rdev: number
  size: number
  blocks: number // 512-byte units, as st_blocks
  blksize: number
  atime: bigint // nanoseconds since the epoch
  mtime: bigint
  ctime: bigint
}

export class Inode {
  size = 0
  rdev = 0
  nlink: number
  atime: bigint
  mtime: bigint
  ctime: bigint
  // Open handles on this inode; an unlinked inode lives until the last one is released.
  opens = 0
  xattrs: Map<string, Buffer> | null = null
  // Directories only: entries by name.
  entries: Map<string, Inode> | null = null
  // The directory entry that last named this inode: exact for directories (the root is its own parent);
  // for a file with several hard links, one of them, checked before use (see Superblock.pathOf).
  parent: Inode | null = null
  name = ''
  // Symlinks only.
  target = ''
  // Regular files only: file dpage index -> pool dpage.
  dpages: Map<number, number> | null = null
  // One of its dpages was poisoned while it owned it: from then on the kernel must not cache it (every
  // open is direct_io), or bytes of a refused write could be read back from the page cache.
  hwpoisoned = false
  // Regular files, with the native data path: the mirror of `dpages` and `size` it serves from.
  native: NativeFile | null = null
  // TypeScript's clock when it last set mtime: see foldNativeTimes.
  private mtimeSetAt = 0n

  constructor (
    readonly ino: number,
    public mode: number,
    public uid: number,
    public gid: number,
    readonly node: number // home node: allocation tries this node first
  ) {
    const now = nowNs()
    this.atime = now
    this.mtime = now
    this.ctime = now
    this.nlink = 1
    const type = mode & S_IFMT
    if (type === S_IFDIR) {
      this.entries = new Map()
      this.nlink = 2
    } else if (type === S_IFREG) {
      this.dpages = new Map()
    }
  }

  isDir (): boolean {
    return (this.mode & S_IFMT) === S_IFDIR
  }

  isReg (): boolean {
    return (this.mode & S_IFMT) === S_IFREG
  }

  isSymlink (): boolean {
    return (this.mode & S_IFMT) === S_IFLNK
  }

  /** Takes in the times of reads and writes the native data path served since the last look: before
   *  anything shows or changes this inode's times. */
  foldNativeTimes (): void {
    if (!this.native) return
    const w = this.native.lastWrite()
    // A write after TypeScript last set mtime wins, even over an mtime set into the future (as a write
    // through TypeScript would); a stamp from before it lost the race to that change.
    if (w > this.mtimeSetAt) this.mtime = w
    if (w > this.ctime) this.ctime = w
    const r = this.native.lastRead()
    if (r > 0n && this.atime <= this.mtime) this.atime = r // relatime, as Superblock.read
  }

  touchModified (now = nowNs()): void {
    this.setMtime(now, now)
    this.ctime = now
  }

  /** mtime set by TypeScript at the moment `at` (a change, or utimens): native writes stamped before that
   *  moment no longer move it. */
  setMtime (t: bigint, at: bigint): void {
    this.foldNativeTimes()
    this.mtime = t
    this.mtimeSetAt = at
  }
}
