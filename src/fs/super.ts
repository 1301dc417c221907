// The superblock (the kernel's fs/dmemfs/inode.c, in user space): the inode table, the namespace, open
// handles and statfs. Paths are absolute, '/'-separated, already split and checked by the kernel for
// symlinks and permissions (the mount uses default_permissions), so no access checks are repeated here.
// Every operation returns its result or a negative errno; nothing throws for a user's mistake.
// A Linux name is bytes: every name here (path components, symlink targets, xattr names) is a byte string,
// one char per byte (char codes 0-255), as the binding hands them over (latin1). Nothing decodes or
// normalises them; a name's length in bytes is its length.

import { PAGE_SIZE } from '../pool/layout'
import { DmemPool } from '../pool/pool'
import {
  EBADF, EBUSY, EEXIST, EINVAL, EISDIR, ENAMETOOLONG, ENODATA, ENODEV, ENOENT, ENOSPC, ENOTDIR, ENOTEMPTY, EOPNOTSUPP,
  EPERM, ERANGE, Errno, isErrno
} from './errno'
import { nowNs, UTIME_NOW, UTIME_OMIT } from './clock'
import { DataPath } from './datapath'
import { DataLimits, fileEvict, fileFallocate, fileRead, fileTruncate, fileWrite } from './file'
import { Cred, Inode, PERM_MASK, ROOT_CRED, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, S_ISGID, S_ISUID, Stat } from './inode'

export const NAME_MAX = 255
export const PATH_MAX = 4096
export const XATTR_CREATE = 1
export const XATTR_REPLACE = 2
export const XATTR_SIZE_MAX = 65536
// The one namespace dmemfs keeps extended attributes in: a name outside it never has a value.
export const XATTR_PREFIX = 'user.'
export const O_ACCMODE = 3
export const O_APPEND = 0o2000
export const ROOT_INO = 1
// chown(2) leaves an id unchanged when it is -1; it crosses FUSE as an unsigned 32-bit value.
const ID_UNCHANGED = 0xffffffff
const S_IXGRP = 0o010
// Reverse-map and dpage-table indices are 32-bit.
const MAX_FILE_DPAGES = 2 ** 32
// The dentry cache starts over past this many entries or characters of path: with many files or deep
// trees it stays within a few tens of MiB.
const DCACHE_MAX = 1 << 16
const DCACHE_CHARS_MAX = 1 << 22

export interface SuperOptions {
  rootMode: number // permission bits of the root directory
  rootUid: number
  rootGid: number
  nrInodes: number // 0 = unlimited
  maxAllocTry: number
  datapath?: DataPath | null // the native data path, when it is built and attached
}

export interface Handle {
  fh: number
  inode: Inode
  flags: number
  pid: number // the thread that opened it (0 when unknown)
}

export interface StatFs {
  bsize: number
  frsize: number
  blocks: number
  bfree: number
  bavail: number
  files: number
  ffree: number
  favail: number
  namemax: number
}

interface ParentAndName {
  dir: Inode
  name: string
}

export class Superblock {
  readonly root: Inode
  readonly limits: DataLimits
  private readonly inodes = new Map<number, Inode>()
  private readonly handles = new Map<number, Handle>()
  // The dentry cache: canonical path -> inode, for paths that resolved. A name's entry goes when the name
  // does (unlink, rmdir, rename); when a directory's name goes, the whole cache does, since every path
  // under it changes. Creating names invalidates nothing: failed lookups are not cached.
  private readonly dcache = new Map<string, Inode>()
  private dcacheChars = 0
  private nextIno = ROOT_INO
  private nextFh = 1

  constructor (readonly pool: DmemPool, readonly opts: SuperOptions) {
    this.limits = {
      maxAllocTry: opts.maxAllocTry,
      maxSize: Math.min(MAX_FILE_DPAGES * pool.dpageSize, Number.MAX_SAFE_INTEGER)
    }
    this.root = this.newInode(S_IFDIR | (opts.rootMode & PERM_MASK), { uid: opts.rootUid, gid: opts.rootGid })
    this.root.parent = this.root
  }

  get inodeCount (): number {
    return this.inodes.size
  }

  inode (ino: number): Inode | undefined {
    return this.inodes.get(ino)
  }

  /** Every live inode, in inode-number order. */
  allInodes (): IterableIterator<Inode> {
    return this.inodes.values()
  }

  /** The open handles on an inode. */
  handlesOf (inode: Inode): Handle[] {
    return [...this.handles.values()].filter(h => h.inode === inode)
  }

  handle (fh: number): Handle | undefined {
    return this.handles.get(fh)
  }

  /** Every open handle, for the memory-failure path to tell which inodes are held open. */
  openHandles (): IterableIterator<Handle> {
    return this.handles.values()
  }

  // --- lookup ------------------------------------------------------------------------------------------

  /** The inode at `path`. A path looked up before comes from the dentry cache, so the GETATTR, OPEN and
   *  SETATTR that follow a LOOKUP (libfuse passes each a path) do not walk the tree again. */
  lookup (path: string): Inode | Errno {
    const cached = this.dcache.get(path)
    if (cached) return cached
    const found = this.walk(path)
    if (!isErrno(found) && isCanonical(path)) this.cacheDentry(path, found)
    return found
  }

  private cacheDentry (path: string, inode: Inode): void {
    if (this.dcache.size >= DCACHE_MAX || this.dcacheChars + path.length > DCACHE_CHARS_MAX) this.clearDentries()
    this.dcache.set(path, inode)
    this.dcacheChars += path.length
  }

  private clearDentries (): void {
    this.dcache.clear()
    this.dcacheChars = 0
  }

  private walk (path: string): Inode | Errno {
    let inode = this.root
    for (let start = 0; start < path.length;) {
      let slash = path.indexOf('/', start)
      if (slash < 0) slash = path.length
      if (slash > start) {
        if (!inode.entries) return ENOTDIR
        const name = path.slice(start, slash)
        if (tooLong(name)) return ENAMETOOLONG
        const next = inode.entries.get(name)
        if (!next) return ENOENT
        inode = next
      }
      start = slash + 1
    }
    return inode
  }

  private lookupParent (path: string): ParentAndName | Errno {
    let end = path.length
    while (end > 0 && path[end - 1] === '/') end--
    if (end === 0) return EBUSY // the root itself
    const slash = path.lastIndexOf('/', end - 1)
    const name = path.slice(slash + 1, end)
    if (tooLong(name)) return ENAMETOOLONG
    const dir = this.lookup(slash <= 0 ? '/' : path.slice(0, slash))
    if (isErrno(dir)) return dir
    if (!dir.entries) return ENOTDIR
    return { dir, name }
  }

  /** Forgets the cached lookup of a name that goes away; a directory's takes its descendants' with it. */
  private dropDentry (path: string, inode: Inode): void {
    if (inode.isDir()) return this.clearDentries()
    const key = canonical(path)
    if (this.dcache.delete(key)) this.dcacheChars -= key.length
  }

  /** The inode's path from the mount root, or null once it has no name (unlinked but still open). Found
   *  from the inode's own directory entry; only when that link was removed is the tree searched. */
  pathOf (inode: Inode): string | null {
    if (inode === this.root) return '/'
    if (inode.nlink === 0) return null
    const names: string[] = []
    for (let node = inode; node !== this.root; node = node.parent!) {
      if (!this.namedBy(node)) return this.searchPath(this.root, inode, '')
      names.push(node.name)
    }
    return '/' + names.reverse().join('/')
  }

  private namedBy (inode: Inode): boolean {
    return inode.parent !== null && inode.parent.entries?.get(inode.name) === inode
  }

  private searchPath (dir: Inode, inode: Inode, prefix: string): string | null {
    for (const [name, child] of dir.entries!) {
      if (child === inode) return `${prefix}/${name}`
      if (!child.entries) continue
      const found = this.searchPath(child, inode, `${prefix}/${name}`)
      if (found) return found
    }
    return null
  }

  // --- attributes --------------------------------------------------------------------------------------

  getattr (inode: Inode): Stat {
    inode.foldNativeTimes()
    const allocated = inode.dpages ? inode.dpages.size : 0
    return {
      ino: inode.ino,
      mode: inode.mode,
      nlink: inode.nlink,
      uid: inode.uid,
      gid: inode.gid,
      rdev: inode.rdev,
      size: inode.isDir() ? PAGE_SIZE : inode.size,
      blocks: allocated * (this.pool.dpageSize / 512),
      // cp and friends size their buffers by st_blksize; a 1 GiB buffer per copy helps nobody.
      blksize: Math.min(this.pool.dpageSize, 2 * 1024 * 1024),
      atime: inode.atime,
      mtime: inode.mtime,
      ctime: inode.ctime
    }
  }

  chmod (inode: Inode, mode: number): 0 {
    inode.mode = (inode.mode & S_IFMT) | (mode & PERM_MASK)
    inode.ctime = nowNs()
    return 0
  }

  chown (inode: Inode, uid: number, gid: number): 0 {
    if (uid !== ID_UNCHANGED) inode.uid = uid
    if (gid !== ID_UNCHANGED) inode.gid = gid
    // As the kernel's chown_common() does, changed ids or not: a regular file loses setuid, and setgid when
    // group execute is set (setgid without it marks mandatory locking and stays).
    if (inode.isReg()) {
      inode.mode &= ~S_ISUID
      if (inode.mode & S_IXGRP) inode.mode &= ~S_ISGID
    }
    inode.ctime = nowNs()
    return 0
  }

  /** Times in nanoseconds, or UTIME_NOW / UTIME_OMIT as utimensat(2) takes them. */
  utimens (inode: Inode, atime: bigint, mtime: bigint): 0 {
    inode.foldNativeTimes()
    const now = nowNs()
    if (atime !== UTIME_OMIT) inode.atime = atime === UTIME_NOW ? now : atime
    if (mtime !== UTIME_OMIT) inode.setMtime(mtime === UTIME_NOW ? now : mtime, now)
    inode.ctime = now
    return 0
  }

  truncate (inode: Inode, size: number): 0 | Errno {
    if (inode.isDir()) return EISDIR
    if (!inode.isReg()) return EINVAL
    return fileTruncate(this.pool, inode, size, this.limits)
  }

  // --- directories -------------------------------------------------------------------------------------

  readdir (inode: Inode): string[] | Errno {
    if (!inode.entries) return ENOTDIR
    return ['.', '..', ...inode.entries.keys()]
  }

  mkdir (path: string, mode: number, cred: Cred = ROOT_CRED): 0 | Errno {
    const created = this.createEntry(path, S_IFDIR | (mode & PERM_MASK), cred)
    return isErrno(created) ? created : 0
  }

  rmdir (path: string): 0 | Errno {
    const pn = this.lookupParent(path)
    if (isErrno(pn)) return pn
    if (pn.name === '.') return EINVAL
    const inode = pn.dir.entries!.get(pn.name)
    if (!inode) return ENOENT
    if (!inode.entries) return ENOTDIR
    if (inode.entries.size > 0) return ENOTEMPTY
    this.dropDentry(path, inode)
    this.removeEntry(pn.dir, pn.name, inode)
    return 0
  }

  // --- names -------------------------------------------------------------------------------------------

  mknod (path: string, mode: number, rdev: number, cred: Cred = ROOT_CRED): 0 | Errno {
    if ((mode & S_IFMT) === S_IFDIR || (mode & S_IFMT) === S_IFLNK) return EINVAL
    if ((mode & S_IFMT) === 0) mode |= S_IFREG
    const created = this.createEntry(path, mode, cred)
    if (isErrno(created)) return created
    created.rdev = rdev
    return 0
  }

  symlink (target: string, path: string, cred: Cred = ROOT_CRED): 0 | Errno {
    if (target.length >= PATH_MAX) return ENAMETOOLONG
    const created = this.createEntry(path, S_IFLNK | 0o777, cred)
    if (isErrno(created)) return created
    created.target = target
    created.size = target.length
    return 0
  }

  readlink (inode: Inode): string | Errno {
    if (!inode.isSymlink()) return EINVAL
    return inode.target
  }

  link (from: string, to: string): 0 | Errno {
    const inode = this.lookup(from)
    if (isErrno(inode)) return inode
    if (inode.isDir()) return EPERM
    const pn = this.lookupParent(to)
    if (isErrno(pn)) return pn
    if (pn.dir.entries!.has(pn.name)) return EEXIST
    pn.dir.entries!.set(pn.name, inode)
    if (!this.namedBy(inode)) {
      inode.parent = pn.dir
      inode.name = pn.name
    }
    inode.nlink++
    inode.ctime = nowNs()
    pn.dir.touchModified()
    return 0
  }

  unlink (path: string): 0 | Errno {
    const pn = this.lookupParent(path)
    if (isErrno(pn)) return pn
    const inode = pn.dir.entries!.get(pn.name)
    if (!inode) return ENOENT
    if (inode.isDir()) return EISDIR
    this.dropDentry(path, inode)
    this.removeEntry(pn.dir, pn.name, inode)
    return 0
  }

  rename (from: string, to: string): 0 | Errno {
    const src = this.lookupParent(from)
    if (isErrno(src)) return src
    const dst = this.lookupParent(to)
    if (isErrno(dst)) return dst
    const inode = src.dir.entries!.get(src.name)
    if (!inode) return ENOENT
    const target = dst.dir.entries!.get(dst.name)
    if (target === inode) return 0
    if (inode.isDir() && this.isAncestor(inode, dst.dir)) return EINVAL
    if (target) {
      const refused = this.checkReplace(inode, target)
      if (refused) return refused
      this.dropDentry(to, target)
      this.removeEntry(dst.dir, dst.name, target)
    }
    this.dropDentry(from, inode)
    src.dir.entries!.delete(src.name)
    dst.dir.entries!.set(dst.name, inode)
    if (inode.isDir() && src.dir !== dst.dir) {
      src.dir.nlink--
      dst.dir.nlink++
    }
    inode.parent = dst.dir
    inode.name = dst.name
    const now = nowNs()
    inode.ctime = now
    src.dir.touchModified(now)
    dst.dir.touchModified(now)
    return 0
  }

  private checkReplace (inode: Inode, target: Inode): 0 | Errno {
    if (inode.isDir() && !target.isDir()) return ENOTDIR
    if (!inode.isDir() && target.isDir()) return EISDIR
    if (target.entries && target.entries.size > 0) return ENOTEMPTY
    return 0
  }

  private isAncestor (dir: Inode, inode: Inode): boolean {
    for (let p = inode; ; p = p.parent!) {
      if (p === dir) return true
      if (p === this.root) return false
    }
  }

  // --- open files --------------------------------------------------------------------------------------

  create (path: string, mode: number, flags: number, cred: Cred = ROOT_CRED, pid = 0): number | Errno {
    const inode = this.createEntry(path, S_IFREG | (mode & PERM_MASK), cred)
    if (isErrno(inode)) return inode
    return this.openInode(inode, flags, pid)
  }

  open (inode: Inode, flags: number, pid = 0): number | Errno {
    if (inode.isDir() && (flags & O_ACCMODE) !== 0) return EISDIR
    return this.openInode(inode, flags, pid)
  }

  private openInode (inode: Inode, flags: number, pid: number): number {
    const fh = this.nextFh++
    this.handles.set(fh, { fh, inode, flags, pid })
    inode.opens++
    if (inode.native) this.opts.datapath!.open(fh, inode.ino, (flags & O_APPEND) !== 0)
    return fh
  }

  release (fh: number): 0 | Errno {
    const handle = this.handles.get(fh)
    if (!handle) return EBADF
    this.handles.delete(fh)
    const inode = handle.inode
    if (inode.native) this.opts.datapath!.close(fh)
    inode.opens--
    this.maybeEvict(inode)
    return 0
  }

  read (fh: number, buf: Buffer, len: number, pos: number): number | Errno {
    const handle = this.handles.get(fh)
    if (!handle) return EBADF
    const inode = handle.inode
    if (!inode.isReg()) return EISDIR
    inode.foldNativeTimes()
    const n = fileRead(this.pool, inode, buf, len, pos)
    // relatime: the access time moves when it is older than the last change.
    if (n > 0 && inode.atime <= inode.mtime) inode.atime = nowNs()
    return n
  }

  write (fh: number, buf: Buffer, len: number, pos: number): number | Errno {
    const handle = this.handles.get(fh)
    if (!handle) return EBADF
    const inode = handle.inode
    if (!inode.isReg()) return EISDIR
    if (handle.flags & O_APPEND) pos = inode.size
    return fileWrite(this.pool, inode, buf, len, pos, this.limits)
  }

  /** fallocate(2) on an open handle (the kernel has checked it is open for writing). */
  fallocate (fh: number, mode: number, offset: number, length: number): 0 | Errno {
    const handle = this.handles.get(fh)
    if (!handle) return EBADF
    const inode = handle.inode
    if (inode.isDir()) return EISDIR
    if (!inode.isReg()) return ENODEV
    return fileFallocate(this.pool, inode, mode, offset, length, this.limits)
  }

  // --- extended attributes (user namespace) ------------------------------------------------------------

  setxattr (inode: Inode, name: string, value: Buffer, flags: number): 0 | Errno {
    if (!name.startsWith(XATTR_PREFIX)) return EOPNOTSUPP
    if (name.length > NAME_MAX) return ERANGE
    if (value.length > XATTR_SIZE_MAX) return ERANGE
    const xattrs = inode.xattrs ?? new Map<string, Buffer>()
    if ((flags & XATTR_CREATE) && xattrs.has(name)) return EEXIST
    if ((flags & XATTR_REPLACE) && !xattrs.has(name)) return ENODATA
    xattrs.set(name, Buffer.from(value))
    inode.xattrs = xattrs
    inode.ctime = nowNs()
    return 0
  }

  getxattr (inode: Inode, name: string): Buffer | Errno {
    return inode.xattrs?.get(name) ?? ENODATA
  }

  listxattr (inode: Inode): string[] {
    return inode.xattrs ? [...inode.xattrs.keys()] : []
  }

  removexattr (inode: Inode, name: string): 0 | Errno {
    if (!inode.xattrs?.delete(name)) return ENODATA
    inode.ctime = nowNs()
    return 0
  }

  // --- the filesystem ----------------------------------------------------------------------------------

  statfs (): StatFs {
    const pool = this.pool
    const files = this.opts.nrInodes
    const ffree = files === 0 ? 0 : Math.max(0, files - this.inodes.size)
    return {
      bsize: pool.dpageSize,
      frsize: pool.dpageSize,
      blocks: pool.total,
      bfree: pool.free,
      bavail: pool.free,
      files,
      ffree,
      favail: ffree,
      namemax: NAME_MAX
    }
  }

  // --- inode life cycle --------------------------------------------------------------------------------

  private newInode (mode: number, cred: Cred): Inode {
    const ino = this.nextIno++
    const inode = new Inode(ino, mode, cred.uid, cred.gid, ino % this.pool.nodes.length)
    if (inode.isReg() && this.opts.datapath) inode.native = this.opts.datapath.fileNew(ino)
    this.inodes.set(ino, inode)
    return inode
  }

  private createEntry (path: string, mode: number, cred: Cred): Inode | Errno {
    const pn = this.lookupParent(path)
    if (isErrno(pn)) return pn
    if (pn.dir.entries!.has(pn.name)) return EEXIST
    if (this.opts.nrInodes !== 0 && this.inodes.size >= this.opts.nrInodes) return ENOSPC
    const inode = this.newInode(mode, cred)
    // A directory with the set-group-ID bit passes its group (and, to directories, the bit) down.
    if (pn.dir.mode & S_ISGID) {
      inode.gid = pn.dir.gid
      if (inode.isDir()) inode.mode |= S_ISGID
    }
    pn.dir.entries!.set(pn.name, inode)
    inode.parent = pn.dir
    inode.name = pn.name
    if (inode.isDir()) pn.dir.nlink++
    pn.dir.touchModified(inode.ctime)
    return inode
  }

  private removeEntry (dir: Inode, name: string, inode: Inode): void {
    dir.entries!.delete(name)
    const now = nowNs()
    dir.touchModified(now)
    inode.ctime = now
    if (inode.isDir()) {
      dir.nlink--
      inode.nlink = 0
    } else {
      inode.nlink--
    }
    this.maybeEvict(inode)
  }

  private maybeEvict (inode: Inode): void {
    if (inode.nlink > 0 || inode.opens > 0) return
    fileEvict(this.pool, inode)
    this.inodes.delete(inode.ino)
  }
}

/** A name of more than NAME_MAX bytes (names are byte strings: one char per byte). */
function tooLong (name: string): boolean {
  return name.length > NAME_MAX
}

/** The form FUSE passes paths in, the only one the dentry cache keeps: '/', or '/a/b' without empty names. */
function isCanonical (path: string): boolean {
  if (path === '/') return true
  return path[0] === '/' && path[path.length - 1] !== '/' && !path.includes('//')
}

function canonical (path: string): string {
  if (isCanonical(path)) return path
  return '/' + path.split('/').filter(name => name.length > 0).join('/')
}
