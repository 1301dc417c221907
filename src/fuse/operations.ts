// The fuse-native operations table: each handler translates a FUSE request into a call on the filesystem
// core or the control directory and maps the result back. No filesystem logic lives here.

import Fuse = require('fuse-native')
import { ControlDir, ControlFile, CONTROL_DIR, WriteResult } from '../control/control'
import { EACCES, EINTR, EINVAL, EIO, ENODATA, ENOENT, EOPNOTSUPP, EPERM, Errno, isErrno } from '../fs/errno'
import { textBytes } from '../fs/name'
import { signalPending } from '../mce/procfs'
import { Cred, Inode, ROOT_CRED, S_IFDIR, S_IFREG, Stat } from '../fs/inode'
import { O_ACCMODE, Superblock } from '../fs/super'

type Reply<T> = (err: number, value?: T, extra?: number) => void

const CONTROL_PATH = '/' + CONTROL_DIR
// Control inodes and handles are numbered far above the core's, so both can share one namespace.
const CONTROL_INO_BASE = 0xffffff00
const CONTROL_FH_BASE = 0x40000000
// libfuse hides a file that is unlinked, or renamed over, while open (without `hard_remove`): within that
// one request it asks getattr for a fresh name `.fuse_hidden%08x%08x` and, on ENOENT, renames the file to
// it (lib/fuse.c: hidden_name(), hide_node()); it unlinks that name at the last release. A user's `mv` to
// such a name is a request of its own, so the request's unique tells the two apart; the name alone means
// nothing. Only getattrs of names of that form are remembered, to keep the bookkeeping off other lookups.
const LIBFUSE_HIDDEN_NAME = /\/\.fuse_hidden[0-9a-f]{16}$/
// Requests that may still be inside libfuse between that getattr and its rename: one per FUSE thread.
const MISSED_MAX = 256

// fuse-native's open/create callbacks take a third value once patches/ are applied: FOPEN flags.
// Control files are direct_io, so every read and write reaches the daemon, as with procfs or debugfs.
const FOPEN_DIRECT_IO = 1
const O_RDONLY = 0
// The size a control file reports when the binding cannot open it direct_io (the prebuilt fallback): the
// kernel then reads through its page cache up to this size, and a short read sets the true end. With
// direct_io every read reaches the daemon whatever the size, so the size is 0, as in debugfs and procfs:
// a stat never renders a file.
const FALLBACK_CONTROL_SIZE = 1 << 20
const SIGNAL_POLL_MS = 200

interface ControlHandle {
  file: ControlFile
  text: Buffer // what this descriptor reads: the file at open, or the reply to its last write
  cursor: number
  seq: number // stream files: the next event this descriptor reads
  waiting: (() => void) | null // stream files: a read parked until the next event
  watch: NodeJS.Timeout | null // stream files: checks whether the parked reader was signalled
  closed: boolean
}

export class FuseAdapter {
  // Names libfuse gave to unlinked-but-open files; the core keeps those inodes alive, without a name.
  private readonly hidden = new Map<string, Inode>()
  // request unique -> the libfuse hidden-name candidate whose getattr answered ENOENT in that request
  private readonly missed = new Map<number, string>()
  // Handles opened direct_io: their reads bypass the page cache, where a short read means end of file.
  private readonly uncached = new Set<number>()
  private readonly controlHandles = new Map<number, ControlHandle>()
  private nextControlFh = CONTROL_FH_BASE

  constructor (
    readonly sb: Superblock,
    readonly control: ControlDir,
    readonly log: (line: string) => void = () => {},
    // The caller of the request being served (the patched fuse-native's fuse_get_context()), or null.
    readonly caller: () => Fuse.FuseContext | null = () => null
  ) {}

  private cred (): Cred {
    return credOf(this.caller())
  }

  private callerPid (): number {
    return this.caller()?.pid ?? 0
  }

  /** The operations table. Without user xattrs the xattr operations are left out: libfuse then answers
   *  ENOSYS and the kernel stops asking, which spares the GETXATTR of security.capability it otherwise
   *  sends before every write. */
  operations (userXattr = true): Fuse.FuseOperations {
    const ops: Fuse.FuseOperations = {
      init: cb => cb(0),
      getattr: (path, cb) => this.getattr(path, cb),
      readdir: (path, cb) => this.readdir(path, cb),
      statfs: (_path, cb) => cb(0, this.sb.statfs()),
      open: (path, flags, cb) => this.open(path, flags, cb),
      create: (path, mode, cb) => this.create(path, mode, cb),
      release: (path, fd, cb) => cb(this.release(fd)),
      read: (path, fd, buf, len, pos, cb) => {
        if (fd >= CONTROL_FH_BASE) return this.controlRead(fd, buf, len, pos, cb)
        cb(this.read(fd, buf, len, pos))
      },
      write: (path, fd, buf, len, pos, cb) => {
        if (fd >= CONTROL_FH_BASE) return this.controlWrite(fd, buf, len, cb)
        cb(this.sb.write(fd, buf, len, pos))
      },
      truncate: (path, size, cb) => cb(this.truncate(path, size)),
      ftruncate: (path, fd, size, cb) => cb(this.ftruncate(path, fd, size)),
      fallocate: (path, fd, mode, offset, length, cb) =>
        cb(fd >= CONTROL_FH_BASE ? EOPNOTSUPP : this.sb.fallocate(fd, mode, offset, length)),
      mkdir: (path, mode, cb) => cb(this.guardName(path) || this.sb.mkdir(path, mode, this.cred())),
      rmdir: (path, cb) => cb(this.guardName(path) || this.sb.rmdir(path)),
      mknod: (path, mode, dev, cb) => cb(this.guardName(path) || this.sb.mknod(path, mode, dev, this.cred())),
      unlink: (path, cb) => cb(this.unlink(path)),
      rename: (src, dest, cb) => cb(this.rename(src, dest)),
      link: (src, dest, cb) => cb(this.guardName(src) || this.guardName(dest) || this.sb.link(src, dest)),
      symlink: (target, path, cb) => cb(this.guardName(path) || this.sb.symlink(target, path, this.cred())),
      readlink: (path, cb) => this.readlink(path, cb),
      chmod: (path, mode, cb) => cb(this.withInode(path, inode => this.sb.chmod(inode, mode))),
      chown: (path, uid, gid, cb) => cb(this.withInode(path, inode => this.sb.chown(inode, uid, gid))),
      utimens: (path, atime, mtime, cb) => cb(this.withInode(path, inode => this.sb.utimens(inode, atime, mtime))),
      setxattr: (path, name, value, _position, flags, cb) =>
        cb(this.withInode(path, inode => this.sb.setxattr(inode, name, value, flags))),
      getxattr: (path, name, _position, cb) => this.getxattr(path, name, cb),
      listxattr: (path, cb) => this.listxattr(path, cb),
      removexattr: (path, name, cb) => cb(this.withInode(path, inode => this.sb.removexattr(inode, name))),
      flush: (_path, _fd, cb) => cb(0),
      fsync: (_path, _datasync, _fd, cb) => cb(0)
    }
    if (!userXattr) {
      delete ops.setxattr
      delete ops.getxattr
      delete ops.listxattr
      delete ops.removexattr
    }
    return guardAll(ops, this.log)
  }

  // --- resolution --------------------------------------------------------------------------------------

  private resolve (path: string): Inode | Errno {
    return this.hidden.get(path) ?? this.sb.lookup(path)
  }

  private withInode (path: string, fn: (inode: Inode) => number): number {
    if (isControl(path)) return EPERM
    const inode = this.resolve(path)
    return isErrno(inode) ? inode : fn(inode)
  }

  /** The control directory and its files cannot be created over, removed, renamed or linked. */
  private guardName (path: string): 0 | Errno {
    return isControl(path) ? EPERM : 0
  }

  // --- attributes and directories ----------------------------------------------------------------------

  private getattr (path: string, cb: Reply<Stat>): void {
    if (isControl(path)) return this.controlGetattr(path, cb)
    const inode = this.resolve(path)
    if (isErrno(inode)) {
      if (inode === ENOENT && LIBFUSE_HIDDEN_NAME.test(path)) this.rememberMiss(path)
      return cb(inode)
    }
    cb(0, this.sb.getattr(inode))
  }

  private rememberMiss (path: string): void {
    const unique = this.caller()?.unique ?? 0
    if (unique === 0) return
    this.missed.set(unique, path)
    if (this.missed.size > MISSED_MAX) this.missed.delete(this.missed.keys().next().value!)
  }

  private readdir (path: string, cb: Reply<string[]>): void {
    if (path === CONTROL_PATH) return cb(0, ['.', '..', ...this.control.files.keys()])
    if (isControl(path)) return cb(ENOENT)
    const inode = this.resolve(path)
    if (isErrno(inode)) return cb(inode)
    const names = this.sb.readdir(inode)
    if (isErrno(names)) return cb(names)
    if (inode === this.sb.root) names.push(CONTROL_DIR)
    cb(0, names)
  }

  private readlink (path: string, cb: Reply<string>): void {
    const inode = isControl(path) ? EINVAL : this.resolve(path)
    if (isErrno(inode)) return cb(inode)
    const target = this.sb.readlink(inode)
    if (isErrno(target)) return cb(target)
    cb(0, target)
  }

  private getxattr (path: string, name: string, cb: Reply<Buffer>): void {
    const inode = isControl(path) ? ENODATA : this.resolve(path)
    if (isErrno(inode)) return cb(inode)
    const value = this.sb.getxattr(inode, name)
    if (isErrno(value)) return cb(value)
    cb(0, value)
  }

  private listxattr (path: string, cb: Reply<string[]>): void {
    if (isControl(path)) return cb(0, [])
    const inode = this.resolve(path)
    if (isErrno(inode)) return cb(inode)
    cb(0, this.sb.listxattr(inode))
  }

  // --- names -------------------------------------------------------------------------------------------

  private unlink (path: string): number {
    if (isControl(path)) return EPERM
    if (this.hidden.delete(path)) return 0
    return this.sb.unlink(path)
  }

  private rename (src: string, dest: string): number {
    if (isControl(src) || isControl(dest)) return EPERM
    if (!this.isLibfuseHide(dest)) return this.sb.rename(src, dest)
    return this.hide(src, dest)
  }

  /** Whether this rename is libfuse's hide: in the same request, a getattr of exactly `dest` answered
   *  ENOENT. Without the request's unique (an older binding) no rename is; a hidden file then shows its
   *  name until its last close, and no data is lost. */
  private isLibfuseHide (dest: string): boolean {
    const unique = this.caller()?.unique ?? 0
    if (unique === 0 || this.missed.get(unique) !== dest) return false
    this.missed.delete(unique)
    return true
  }

  /** libfuse's hide-on-unlink: the name goes now, the inode when its last handle closes. */
  private hide (src: string, dest: string): number {
    const hiddenBefore = this.hidden.get(src)
    if (hiddenBefore) {
      this.hidden.delete(src)
      this.hidden.set(dest, hiddenBefore)
      return 0
    }
    const inode = this.sb.lookup(src)
    if (isErrno(inode)) return inode
    const err = this.sb.unlink(src)
    if (err) return err
    this.hidden.set(dest, inode)
    return 0
  }

  // --- open files --------------------------------------------------------------------------------------

  private open (path: string, flags: number, cb: Reply<number>): void {
    if (isControl(path)) return this.controlOpen(path, flags, cb)
    const inode = this.resolve(path)
    if (isErrno(inode)) return cb(inode)
    const fh = this.sb.open(inode, flags, this.callerPid())
    if (isErrno(fh)) return cb(fh)
    cb(0, fh, this.cacheFlags(fh, inode))
  }

  private create (path: string, mode: number, cb: Reply<number>): void {
    if (isControl(path)) return cb(EPERM)
    const ctx = this.caller() // one native call for both the identity and the opener
    const fh = this.sb.create(path, mode, 0, credOf(ctx), ctx?.pid ?? 0)
    if (isErrno(fh)) return cb(fh)
    const handle = this.sb.handle(fh)
    cb(0, fh, handle ? this.cacheFlags(fh, handle.inode) : 0)
  }

  /** How the kernel may cache an open file: not at all once it has a poisoned dpage, so a write the daemon
   *  refused can never be read back from the page cache. */
  private cacheFlags (fh: number, inode: Inode): number {
    if (!inode.hwpoisoned) return 0
    this.uncached.add(fh)
    return FOPEN_DIRECT_IO
  }

  /** A read that a poisoned dpage cuts short fails whole when it fills the page cache: there the kernel
   *  takes a short read for the end of the file and shrinks the file to it, so the healthy pages after the
   *  poisoned one would fault with SIGBUS (readahead around a mapped page does that). Failing the whole
   *  read makes the kernel fall back to reading the faulting page alone. Through direct_io a short read
   *  is just a short read, as read(2) gives it. */
  private read (fh: number, buf: Buffer, len: number, pos: number): number {
    const n = this.sb.read(fh, buf, len, pos)
    // A full read is the common case: nothing more to look up.
    if (n <= 0 || n === len || this.uncached.has(fh)) return n
    const inode = this.sb.handle(fh)?.inode
    return inode && n < Math.min(len, inode.size - pos) ? EIO : n
  }

  private release (fh: number): number {
    if (fh >= CONTROL_FH_BASE) {
      const handle = this.controlHandles.get(fh)
      this.controlHandles.delete(fh)
      if (!handle) return 0
      handle.closed = true
      // A reader killed while it waited (Ctrl-C on `cat trace_pipe`) leaves its request parked: answer it.
      if (handle.waiting) {
        handle.file.stream!.cancelWait(handle.waiting)
        handle.waiting()
      }
      return 0
    }
    this.uncached.delete(fh)
    return this.sb.release(fh)
  }

  private truncate (path: string, size: number): number {
    const file = this.controlFile(path)
    if (file) return this.controlTruncate(file, size, false)
    return this.withInode(path, inode => this.sb.truncate(inode, size))
  }

  private ftruncate (path: string, fh: number, size: number): number {
    if (fh >= CONTROL_FH_BASE) {
      const handle = this.controlHandles.get(fh)
      return handle ? this.controlTruncate(handle.file, size, true) : EIO
    }
    const handle = this.sb.handle(fh)
    if (!handle) return this.withInode(path, inode => this.sb.truncate(inode, size))
    return this.sb.truncate(handle.inode, size)
  }

  // --- the control directory ---------------------------------------------------------------------------

  private controlFile (path: string): ControlFile | undefined {
    return this.control.files.get(path.slice(CONTROL_PATH.length + 1))
  }

  private controlGetattr (path: string, cb: Reply<Stat>): void {
    const root = this.sb.getattr(this.sb.root)
    if (path === CONTROL_PATH) {
      return cb(0, controlStat(root, 0, S_IFDIR | 0o755, 2, 0))
    }
    const file = this.controlFile(path)
    if (!file) return cb(ENOENT)
    const ino = [...this.control.files.keys()].indexOf(file.name) + 1
    // The patched binding answers for the caller; only it can open control files direct_io.
    const size = this.caller() ? 0 : FALLBACK_CONTROL_SIZE
    cb(0, controlStat(root, ino, S_IFREG | file.mode, 1, size))
  }

  /** Who may do what with a control file, checked on every request whatever the mount's uid=, mode= and
   *  allow_other: PFNs and injection are root's alone, as the kernel keeps them behind CAP_SYS_ADMIN. */
  private controlAccess (file: ControlFile, write: boolean): 0 | Errno {
    const uid = this.caller()?.uid ?? 0
    if (write) return uid === 0 ? 0 : EACCES
    return file.public || uid === 0 ? 0 : EACCES
  }

  private controlOpen (path: string, flags: number, cb: Reply<number>): void {
    const file = this.controlFile(path)
    if (!file) return cb(path === CONTROL_PATH ? 0 : ENOENT)
    const write = (flags & O_ACCMODE) !== O_RDONLY
    if (write && !file.write && !file.truncate) return cb(EACCES) // read-only, even for root
    const denied = this.controlAccess(file, write)
    if (denied) return cb(denied)
    const text = Buffer.from(file.render(), 'latin1')
    const fh = this.nextControlFh++
    this.controlHandles.set(fh, { file, text, cursor: 0, seq: file.stream ? file.stream.head() : 0, waiting: null, watch: null, closed: false })
    cb(0, fh, FOPEN_DIRECT_IO)
  }

  /** truncate(2) and O_TRUNC arrive without a handle: size 0 is what `echo PFN > .dmem/mce` asks for and
   *  means nothing but to a file that says what it means (trace clears). ftruncate(2) comes with one and
   *  only such a file takes it. Every other size is meaningless: EINVAL, never a silent success. */
  private controlTruncate (file: ControlFile, size: number, viaHandle: boolean): number {
    if (size !== 0) return EINVAL
    if (!file.write && !file.truncate) return EACCES
    const denied = this.controlAccess(file, true)
    if (denied) return denied
    if (file.truncate) {
      file.truncate()
      return 0
    }
    return viaHandle ? EINVAL : 0
  }

  /** Control files read as a stream from the descriptor's own cursor, so the reply to a write is read from
   *  its start whatever the file position; a read at offset 0 starts over. */
  private controlRead (fh: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void): void {
    const handle = this.controlHandles.get(fh)
    if (!handle) return cb(EIO)
    const denied = this.controlAccess(handle.file, false)
    if (denied) return cb(denied)
    if (handle.file.stream) return this.streamRead(handle, buf, len, cb)
    cb(this.controlCopy(handle, buf, len, pos))
  }

  /** trace_pipe: returns the events since this descriptor's last read, waiting for one if there are none.
   *  Text that does not fit the read stays for the next. */
  private streamRead (handle: ControlHandle, buf: Buffer, len: number, cb: (n: number) => void): void {
    const stream = handle.file.stream!
    if (handle.closed) return cb(0)
    if (handle.cursor >= handle.text.length) {
      const { lines, next } = stream.read(handle.seq, 1024)
      handle.seq = next
      handle.text = Buffer.from(lines.map(l => l + '\n').join(''), 'latin1')
      handle.cursor = 0
    }
    if (handle.text.length > 0) {
      const n = handle.text.copy(buf, 0, handle.cursor, Math.min(handle.text.length, handle.cursor + len))
      handle.cursor += n
      return cb(n)
    }
    const waiting = () => {
      handle.waiting = null
      if (handle.watch) clearInterval(handle.watch)
      handle.watch = null
      this.streamRead(handle, buf, len, cb)
    }
    handle.waiting = waiting
    stream.waitForEvent(waiting)
    // The kernel cannot cancel a request the daemon holds (fuse-native passes no INTERRUPT on), so a
    // reader hit by Ctrl-C would hang: answer EINTR once it has a signal pending.
    const tid = this.callerPid()
    if (tid === 0) return
    handle.watch = setInterval(() => {
      if (!signalPending(tid)) return
      stream.cancelWait(waiting)
      clearInterval(handle.watch!)
      handle.watch = null
      handle.waiting = null
      cb(EINTR)
    }, SIGNAL_POLL_MS)
  }

  private controlCopy (handle: ControlHandle, buf: Buffer, len: number, pos: number): number {
    if (pos === 0) handle.cursor = 0
    const n = handle.text.copy(buf, 0, handle.cursor, Math.min(handle.text.length, handle.cursor + len))
    handle.cursor += n
    return n
  }

  /** A control write may answer later: `.dmem/mce` waits for the revocation and the signals, during which
   *  the daemon serves other requests (the revocation's own open among them). fuse-native's multithreaded
   *  loop keeps this request's thread waiting meanwhile. The caller is read now: the native context is
   *  valid only while the handler runs synchronously. */
  private controlWrite (fh: number, buf: Buffer, len: number, cb: (n: number) => void): void {
    const handle = this.controlHandles.get(fh)
    if (!handle) return cb(EIO)
    if (!handle.file.write) return cb(EINVAL) // a file with no write method, as vfs_write answers
    const denied = this.controlAccess(handle.file, true)
    if (denied) return cb(denied)
    const done = (result: WriteResult) => {
      handle.text = Buffer.from(result.reply, 'latin1')
      handle.cursor = 0
      cb(result.errno || len)
    }
    const result = handle.file.write(buf.toString('latin1', 0, len), this.callerPid())
    if (!(result instanceof Promise)) return done(result)
    result.then(done, (err: unknown) => {
      this.log(textBytes(`dmemfs: .dmem/${handle.file.name} write failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`))
      cb(EIO)
    })
  }
}

function credOf (ctx: Fuse.FuseContext | null): Cred {
  return ctx ? { uid: ctx.uid, gid: ctx.gid } : ROOT_CRED
}

function isControl (path: string): boolean {
  return path === CONTROL_PATH || path.startsWith(CONTROL_PATH + '/')
}

function controlStat (root: Stat, index: number, mode: number, nlink: number, size: number): Stat {
  return {
    ...root,
    ino: CONTROL_INO_BASE + index,
    mode,
    nlink,
    uid: 0,
    gid: 0,
    size,
    blocks: 0
  }
}

/** Wraps every handler so an exception becomes EIO and a log line, never the daemon's death (fuse-native
 *  does not catch exceptions thrown in handlers). */
function guardAll (ops: Fuse.FuseOperations, log: (line: string) => void): Fuse.FuseOperations {
  const guarded: Record<string, unknown> = {}
  for (const [name, handler] of Object.entries(ops)) {
    // fuse-native calls every handler with its arguments followed by a callback.
    guarded[name] = (...args: unknown[]) => {
      const cb = args[args.length - 1] as (err: number) => void
      try {
        (handler as (...a: unknown[]) => void)(...args)
      } catch (err) {
        log(textBytes(`dmemfs: ${name} failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`))
        cb(EIO)
      }
    }
  }
  return guarded as Fuse.FuseOperations
}
