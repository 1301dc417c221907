// The part of fuse-native 2.2.6's API this project uses (the package ships no types).
declare module 'fuse-native' {
  namespace Fuse {
    export interface FuseStat {
      mode: number
      uid: number
      gid: number
      size: number
      dev?: number
      nlink: number
      ino: number
      rdev: number
      blksize: number
      blocks: number
      atime: number | bigint // milliseconds, or (patched) BigInt nanoseconds
      mtime: number | bigint
      ctime: number | bigint
    }

    export interface FuseStatfs {
      bsize: number
      frsize: number
      blocks: number
      bfree: number
      bavail: number
      files: number
      ffree: number
      favail: number
      fsid?: number
      flag?: number
      namemax: number
    }

    export interface FuseOperations {
      init?: (cb: (err: number) => void) => void
      getattr?: (path: string, cb: (err: number, stat?: FuseStat) => void) => void
      readdir?: (path: string, cb: (err: number, names?: string[]) => void) => void
      statfs?: (path: string, cb: (err: number, statfs?: FuseStatfs) => void) => void
      open?: (path: string, flags: number, cb: (err: number, fd?: number, openFlags?: number) => void) => void
      create?: (path: string, mode: number, cb: (err: number, fd?: number, openFlags?: number) => void) => void
      release?: (path: string, fd: number, cb: (err: number) => void) => void
      read?: (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) => void
      write?: (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) => void
      truncate?: (path: string, size: number, cb: (err: number) => void) => void
      ftruncate?: (path: string, fd: number, size: number, cb: (err: number) => void) => void
      // patched: fallocate(2) (mode as the syscall's; offset and length in bytes)
      fallocate?: (path: string, fd: number, mode: number, offset: number, length: number, cb: (err: number) => void) => void
      mkdir?: (path: string, mode: number, cb: (err: number) => void) => void
      rmdir?: (path: string, cb: (err: number) => void) => void
      mknod?: (path: string, mode: number, dev: number, cb: (err: number) => void) => void
      unlink?: (path: string, cb: (err: number) => void) => void
      rename?: (src: string, dest: string, cb: (err: number) => void) => void
      link?: (src: string, dest: string, cb: (err: number) => void) => void
      symlink?: (target: string, path: string, cb: (err: number) => void) => void
      readlink?: (path: string, cb: (err: number, target?: string) => void) => void
      chmod?: (path: string, mode: number, cb: (err: number) => void) => void
      chown?: (path: string, uid: number, gid: number, cb: (err: number) => void) => void
      utimens?: (path: string, atime: bigint, mtime: bigint, cb: (err: number) => void) => void // with timeNs
      setxattr?: (path: string, name: string, value: Buffer, position: number, flags: number, cb: (err: number) => void) => void
      getxattr?: (path: string, name: string, position: number, cb: (err: number, value?: Buffer) => void) => void
      listxattr?: (path: string, cb: (err: number, list?: string[]) => void) => void
      removexattr?: (path: string, name: string, cb: (err: number) => void) => void
      flush?: (path: string, fd: number, cb: (err: number) => void) => void
      fsync?: (path: string, datasync: number, fd: number, cb: (err: number) => void) => void
    }

    export interface FuseOptions {
      force?: boolean
      mkdir?: boolean
      timeout?: number | false
      debug?: boolean
      allowOther?: boolean
      defaultPermissions?: boolean
      fsname?: string
      subtype?: string
      maxRead?: number
      // Added by patches/fuse-native+2.2.6.patch:
      maxWrite?: number
      useIno?: boolean
      bigWrites?: boolean
      attrTimeout?: number
      entryTimeout?: number
      negativeTimeout?: number
      timeNs?: boolean // times as BigInt nanoseconds; utimens gets UTIME_NOW/UTIME_OMIT
      binaryNames?: boolean // names cross as latin1 strings, one char per byte
      bigRequests?: boolean // READ and WRITE of up to 1020 KiB instead of 128 KiB (see bigRequests())
    }

    interface FuseContext {
      uid: number
      gid: number
      pid: number // the calling thread's id
      umask: number
      unique?: number // patched: the kernel's number of the request (one request may call several handlers); 0 unknown
    }
  }

  class Fuse {
    constructor (mnt: string, ops: FuseOperations, opts?: FuseOptions)
    mount (cb: (err: Error | null) => void): void
    unmount (cb: (err: Error | null) => void): void
    context (): Fuse.FuseContext | null // patched: the caller of the request being served
    bigRequests (): boolean // patched: whether opts.bigRequests took effect
    static unmount (mnt: string, cb: (err: Error | null) => void): void
  }

  export = Fuse
}
