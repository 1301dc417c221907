// The benchmark's baseline: a plain in-memory filesystem on fuse-native, one growable Buffer per file and a
// Map of path -> entry, with just enough operations for dd, fio, cp -r and tar x. It measures what any
// fuse-native filesystem pays, so that the benchmark can tell dmemfs's own costs apart.
//
//   node dist/bench/baseline.js MOUNTPOINT naive|tuned [nouser_xattr]
//
// naive mounts with fuse-native's default options and has no extended attributes. tuned mirrors dmemfs's
// interface: the libfuse options dmemfs uses (src/fuse/mount.ts) and, unless `nouser_xattr` is given (as
// dmemfs's option of that name), user xattrs. The set of operations decides what the kernel sends: a
// filesystem with getxattr is asked for security.capability before every write(), one round trip any
// fuse-native filesystem with xattrs pays, so tuned pays it too.
// Prints one line once mounted; SIGINT/SIGTERM unmount (umount -l: no fusermount needed) and exit.

import { execFileSync } from 'child_process'
import { constants as bufferConstants } from 'buffer'
import Fuse = require('fuse-native')
import { FUSE_OPTIONS } from '../src/fuse/mount'

const ENOENT = -2
const EBADF = -9
const EEXIST = -17
const ENOTDIR = -20
const EFBIG = -27
const ENOTEMPTY = -39
const ENODATA = -61
const EOPNOTSUPP = -95
const XATTR_CREATE = 1
const XATTR_REPLACE = 2
const S_IFMT = 0o170000
const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const S_IFLNK = 0o120000
const UTIME_NOW = -1n
const UTIME_OMIT = -2n

interface Entry {
  ino: number
  mode: number
  uid: number
  gid: number
  size: number
  data: Buffer // bytes past `size` are always zero
  atime: bigint // nanoseconds
  mtime: bigint
  ctime: bigint
  children?: Set<string> // directories: the names in it
  target?: string // symbolic links
  xattrs?: Map<string, Buffer>
}

// Exactly dmemfs's options, so `tuned` measures what dmemfs's own logic costs.
const TUNED: Fuse.FuseOptions = { ...FUSE_OPTIONS }

const entries = new Map<string, Entry>()
const handles = new Map<number, Entry>()
let nextIno = 1
let nextFh = 1

const now = (): bigint => BigInt(Date.now()) * 1000000n
const parentOf = (p: string): string => p.slice(0, p.lastIndexOf('/')) || '/'
const nameOf = (p: string): string => p.slice(p.lastIndexOf('/') + 1)

function add (path: string, mode: number, target?: string): number {
  const parent = entries.get(parentOf(path))
  if (!parent) return ENOENT
  if (!parent.children) return ENOTDIR
  if (entries.has(path)) return EEXIST
  const t = now()
  const isDir = (mode & S_IFMT) === S_IFDIR
  entries.set(path, {
    ino: nextIno++, mode, uid: 0, gid: 0, size: 0, data: Buffer.alloc(0), atime: t, mtime: t, ctime: t,
    children: isDir ? new Set() : undefined, target
  })
  parent.children.add(nameOf(path))
  parent.mtime = parent.ctime = t
  return 0
}

function remove (path: string): void {
  entries.delete(path)
  entries.get(parentOf(path))?.children?.delete(nameOf(path))
}

/** Grows or shrinks a file; capacity doubles, so a file written sequentially is copied O(log n) times. */
function resize (e: Entry, size: number): number {
  if (size > bufferConstants.MAX_LENGTH) return EFBIG
  if (size < e.size) e.data.fill(0, size, e.size)
  else if (size > e.data.length) {
    const data = Buffer.alloc(Math.min(bufferConstants.MAX_LENGTH, Math.max(size, e.data.length * 2)))
    e.data.copy(data, 0, 0, e.size)
    e.data = data
  }
  e.size = size
  e.mtime = e.ctime = now()
  return 0
}

function withEntry (path: string, fn: (e: Entry) => void): number {
  const e = entries.get(path)
  if (!e) return ENOENT
  fn(e)
  e.ctime = now()
  return 0
}

function open (path: string, cb: (err: number, fh?: number) => void): void {
  const e = entries.get(path)
  if (!e) return cb(ENOENT)
  handles.set(nextFh, e)
  cb(0, nextFh++)
}

// utimens gets BigInt nanoseconds (or UTIME_NOW/UTIME_OMIT) with timeNs, milliseconds without.
function setTime (old: bigint, t: bigint | number): bigint {
  if (typeof t === 'number') return BigInt(t) * 1000000n
  return t === UTIME_OMIT ? old : t === UTIME_NOW ? now() : t
}

const ops: Fuse.FuseOperations = {
  getattr (path, cb) {
    const e = entries.get(path)
    if (!e) return cb(ENOENT)
    cb(0, {
      mode: e.mode, uid: e.uid, gid: e.gid, size: e.target?.length ?? e.size, nlink: e.children ? 2 : 1,
      ino: e.ino, rdev: 0, blksize: 4096, blocks: Math.ceil(e.size / 512),
      atime: e.atime, mtime: e.mtime, ctime: e.ctime
    })
  },
  readdir (path, cb) {
    const e = entries.get(path)
    if (!e) return cb(ENOENT)
    if (!e.children) return cb(ENOTDIR)
    cb(0, ['.', '..', ...e.children])
  },
  create (path, mode, cb) {
    const err = add(path, S_IFREG | (mode & 0o7777))
    if (err) return cb(err)
    open(path, cb)
  },
  open: (path, _flags, cb) => open(path, cb),
  release (_path, fh, cb) {
    handles.delete(fh)
    cb(0)
  },
  read (_path, fh, buf, len, pos, cb) {
    const e = handles.get(fh)
    if (!e) return cb(EBADF)
    const n = Math.max(0, Math.min(len, e.size - pos))
    e.data.copy(buf, 0, pos, pos + n)
    cb(n)
  },
  write (_path, fh, buf, len, pos, cb) {
    const e = handles.get(fh)
    if (!e) return cb(EBADF)
    if (pos + len > e.size) {
      const err = resize(e, pos + len)
      if (err) return cb(err)
    }
    buf.copy(e.data, pos, 0, len)
    e.mtime = e.ctime = now()
    cb(len)
  },
  truncate (path, size, cb) {
    const e = entries.get(path)
    cb(e ? resize(e, size) : ENOENT)
  },
  ftruncate (_path, fh, size, cb) {
    const e = handles.get(fh)
    cb(e ? resize(e, size) : EBADF)
  },
  unlink (path, cb) {
    if (!entries.has(path)) return cb(ENOENT)
    remove(path)
    cb(0)
  },
  mkdir: (path, mode, cb) => cb(add(path, S_IFDIR | (mode & 0o7777))),
  rmdir (path, cb) {
    const e = entries.get(path)
    if (!e) return cb(ENOENT)
    if (!e.children) return cb(ENOTDIR)
    if (e.children.size > 0) return cb(ENOTEMPTY)
    remove(path)
    cb(0)
  },
  rename (src, dest, cb) {
    const e = entries.get(src)
    if (!e) return cb(ENOENT)
    const over = entries.get(dest)
    if (over?.children && over.children.size > 0) return cb(ENOTEMPTY)
    if (over) remove(dest)
    const destParent = entries.get(parentOf(dest))
    if (!destParent?.children) return cb(destParent ? ENOTDIR : ENOENT)
    remove(src)
    entries.set(dest, e)
    destParent.children.add(nameOf(dest))
    if (e.children) { // a directory: everything under it changes its path
      for (const [p, child] of [...entries]) {
        if (!p.startsWith(src + '/')) continue
        entries.delete(p)
        entries.set(dest + p.slice(src.length), child)
      }
    }
    e.ctime = now()
    cb(0)
  },
  symlink: (target, path, cb) => cb(add(path, S_IFLNK | 0o777, target)),
  readlink (path, cb) {
    const e = entries.get(path)
    if (!e?.target) return cb(ENOENT)
    cb(0, e.target)
  },
  chmod: (path, mode, cb) => cb(withEntry(path, e => { e.mode = (e.mode & S_IFMT) | (mode & 0o7777) })),
  chown: (path, uid, gid, cb) => cb(withEntry(path, e => {
    if (uid !== -1 && uid !== 0xffffffff) e.uid = uid
    if (gid !== -1 && gid !== 0xffffffff) e.gid = gid
  })),
  utimens: (path, atime, mtime, cb) => cb(withEntry(path, e => {
    e.atime = setTime(e.atime, atime)
    e.mtime = setTime(e.mtime, mtime)
  })),
  flush: (_path, _fh, cb) => cb(0),
  fsync: (_path, _datasync, _fh, cb) => cb(0)
}

// User xattrs, as dmemfs keeps them: user.* only, ENODATA when absent.
const xattrOps: Fuse.FuseOperations = {
  setxattr (path, name, value, _position, flags, cb) {
    const e = entries.get(path)
    if (!e) return cb(ENOENT)
    if (!name.startsWith('user.')) return cb(EOPNOTSUPP)
    const xattrs = e.xattrs ??= new Map()
    if ((flags & XATTR_CREATE) && xattrs.has(name)) return cb(EEXIST)
    if ((flags & XATTR_REPLACE) && !xattrs.has(name)) return cb(ENODATA)
    xattrs.set(name, Buffer.from(value))
    e.ctime = now()
    cb(0)
  },
  getxattr (path, name, _position, cb) {
    const e = entries.get(path)
    if (!e) return cb(ENOENT)
    const value = e.xattrs?.get(name)
    if (!value) return cb(ENODATA)
    cb(0, value)
  },
  listxattr (path, cb) {
    const e = entries.get(path)
    if (!e) return cb(ENOENT)
    cb(0, e.xattrs ? [...e.xattrs.keys()] : [])
  },
  removexattr (path, name, cb) {
    const e = entries.get(path)
    if (!e) return cb(ENOENT)
    if (!e.xattrs?.delete(name)) return cb(ENODATA)
    e.ctime = now()
    cb(0)
  }
}

function main (): void {
  const [mnt, mode, extra] = process.argv.slice(2)
  if (!mnt || (mode !== 'naive' && mode !== 'tuned') || (extra !== undefined && extra !== 'nouser_xattr')) {
    process.stderr.write('usage: baseline MOUNTPOINT naive|tuned [nouser_xattr]\n')
    process.exit(2)
  }
  const t = now()
  entries.set('/', { ino: nextIno++, mode: S_IFDIR | 0o755, uid: 0, gid: 0, size: 0, data: Buffer.alloc(0), atime: t, mtime: t, ctime: t, children: new Set() })
  const withXattrs = mode === 'tuned' && extra !== 'nouser_xattr'
  const fuse = new Fuse(mnt, withXattrs ? { ...ops, ...xattrOps } : ops, mode === 'tuned' ? TUNED : {})
  fuse.mount(err => {
    if (err) {
      process.stderr.write(`baseline: cannot mount ${mnt}: ${err.message}\n`)
      process.exit(1)
    }
    process.stdout.write(`baseline: mounted ${mnt} (${mode}${withXattrs ? ', user xattrs' : ''})\n`)
  })
  const stop = (): void => {
    try {
      execFileSync('umount', ['-l', mnt], { stdio: 'ignore' })
    } catch {
      // already unmounted from outside
    }
    process.exit(0)
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

main()
