// Unit tests of the Superblock without FUSE: the namespace, handles, attributes, xattrs, statfs and the
// inode limit, with the errno each mistake gets on Linux tmpfs.

import { expect } from 'chai'
import { UTIME_NOW, UTIME_OMIT } from '../../src/fs/clock'
import {
  EBADF, EBUSY, EEXIST, EINVAL, EISDIR, ENAMETOOLONG, ENODATA, ENOENT, ENOSPC, ENOTDIR, ENOTEMPTY, EOPNOTSUPP,
  EPERM, isErrno
} from '../../src/fs/errno'
import { Inode, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, S_ISGID, S_ISUID } from '../../src/fs/inode'
import { O_APPEND, Superblock, SuperOptions, XATTR_CREATE, XATTR_REPLACE } from '../../src/fs/super'
import { layoutPool } from '../../src/pool/layout'
import { DmemPool } from '../../src/pool/pool'

/** A name as the core holds it: its UTF-8 bytes, one char per byte. */
function bytes (text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1')
}

const O_RDONLY = 0
const O_WRONLY = 1
const O_RDWR = 2

function makeSb (opts: Partial<SuperOptions> = {}, size = 1 << 20): Superblock {
  const layout = layoutPool({ size, addr: null, align: 4096 }, 1, 12)
  if (!layout.ok) throw new Error(layout.error)
  const pool = new DmemPool(layout.value)
  return new Superblock(pool, { rootMode: 0o755, rootUid: 0, rootGid: 0, nrInodes: 0, maxAllocTry: 1, ...opts })
}

function get (sb: Superblock, path: string): Inode {
  const inode = sb.lookup(path)
  if (isErrno(inode)) throw new Error(`lookup ${path}: ${inode}`)
  return inode
}

function create (sb: Superblock, path: string, data?: Buffer | string, mode = 0o644): number {
  const fh = sb.create(path, mode, O_RDWR)
  if (isErrno(fh)) throw new Error(`create ${path}: ${fh}`)
  if (data !== undefined) {
    const buf = Buffer.from(data)
    expect(sb.write(fh, buf, buf.length, 0)).to.equal(buf.length)
  }
  return fh
}

function touch (sb: Superblock, path: string, data?: Buffer | string): Inode {
  const fh = create(sb, path, data)
  expect(sb.release(fh)).to.equal(0)
  return get(sb, path)
}

function readText (sb: Superblock, fh: number, len = 4096, pos = 0): string {
  const buf = Buffer.alloc(len)
  const n = sb.read(fh, buf, len, pos)
  if (isErrno(n)) throw new Error(`read: ${n}`)
  return buf.subarray(0, n).toString()
}

function names (sb: Superblock, path: string): string[] {
  const list = sb.readdir(get(sb, path))
  if (isErrno(list)) throw new Error(`readdir ${path}: ${list}`)
  return list
}

describe('Superblock', () => {
  let sb: Superblock

  beforeEach(() => {
    sb = makeSb()
  })

  describe('root', () => {
    it('is a directory with the given mode, owner and two links', () => {
      const other = makeSb({ rootMode: 0o1777, rootUid: 1000, rootGid: 100 })
      const st = other.getattr(other.root)
      expect(st.mode).to.equal(S_IFDIR | 0o1777)
      expect(st.uid).to.equal(1000)
      expect(st.gid).to.equal(100)
      expect(st.nlink).to.equal(2)
      expect(other.lookup('/')).to.equal(other.root)
      expect(names(other, '/')).to.deep.equal(['.', '..'])
    })

    it('cannot be removed or renamed (EBUSY)', () => {
      expect(sb.rmdir('/')).to.equal(EBUSY)
      expect(sb.mkdir('/d', 0o755)).to.equal(0)
      expect(sb.rename('/', '/d/x')).to.equal(EBUSY)
    })
  })

  describe('lookup', () => {
    it('finds nested entries and ignores repeated or trailing slashes', () => {
      expect(sb.mkdir('/a', 0o755)).to.equal(0)
      expect(sb.mkdir('/a/b', 0o755)).to.equal(0)
      const f = touch(sb, '/a/b/f')
      expect(sb.lookup('/a//b/f')).to.equal(f)
      expect(sb.lookup('/a/b/')).to.equal(get(sb, '/a/b'))
    })

    it('returns ENOENT for a missing name, at the end or in the middle', () => {
      expect(sb.lookup('/nope')).to.equal(ENOENT)
      expect(sb.lookup('/nope/x')).to.equal(ENOENT)
    })

    it('returns ENOTDIR through a regular file', () => {
      touch(sb, '/f')
      expect(sb.lookup('/f/x')).to.equal(ENOTDIR)
    })

    it('returns ENAMETOOLONG for a 256-byte name and accepts 255 bytes', () => {
      const ok = 'n'.repeat(255)
      const long = 'n'.repeat(256)
      expect(sb.lookup('/' + long)).to.equal(ENAMETOOLONG)
      expect(sb.mkdir('/' + long, 0o755)).to.equal(ENAMETOOLONG)
      expect(sb.create('/' + long, 0o644, O_RDWR)).to.equal(ENAMETOOLONG)
      expect(sb.mkdir('/' + ok, 0o755)).to.equal(0)
      expect(get(sb, '/' + ok).isDir()).to.equal(true)
    })

    it('counts bytes, not characters, against NAME_MAX (names are byte strings)', () => {
      expect(sb.mkdir('/' + bytes('\u00e9'.repeat(128)), 0o755)).to.equal(ENAMETOOLONG) // 256 bytes, 128 characters
      expect(sb.mkdir('/' + bytes('\u20ac'.repeat(86)), 0o755)).to.equal(ENAMETOOLONG) // 258 bytes, 86 characters
      expect(sb.mkdir('/' + bytes('\u20ac'.repeat(85)), 0o755)).to.equal(0) // 255 bytes
      expect(sb.mkdir('/' + '\xff'.repeat(255), 0o755)).to.equal(0) // 255 bytes that are not UTF-8
      expect(sb.mkdir('/' + '\xfe'.repeat(256), 0o755)).to.equal(ENAMETOOLONG)
    })

    it('keeps names that differ only in bytes that are not UTF-8 apart', () => {
      expect(sb.create('/caf\xe9', 0o644, O_RDWR)).to.be.above(0)
      expect(sb.create('/caf\xe8', 0o644, O_RDWR)).to.be.above(0)
      expect(sb.readdir(sb.root)).to.include.members(['caf\xe9', 'caf\xe8'])
      expect(get(sb, '/caf\xe9')).to.not.equal(get(sb, '/caf\xe8'))
    })

    // Every case below looks the path up first, so that a stale cached lookup would be returned.
    describe('after the names change (the dentry cache)', () => {
      it('a path looked up twice walks the tree once', () => {
        expect(sb.mkdir('/d', 0o755)).to.equal(0)
        expect(sb.release(create(sb, '/d/f'))).to.equal(0) // not looked up yet
        // The walk is private; counting its calls is how a test can tell the cache is there at all.
        const internals = sb as unknown as { walk: (path: string) => unknown }
        const walk = internals.walk
        const walked: string[] = []
        internals.walk = (path: string) => { walked.push(path); return walk.call(sb, path) }
        try {
          const f = get(sb, '/d/f')
          expect(get(sb, '/d/f')).to.equal(f)
        } finally {
          internals.walk = walk
        }
        expect(walked).to.deep.equal(['/d/f'])
      })

      // Unlinked by the path FUSE passes, and by one with extra slashes: either way the plain path goes.
      for (const [path, unlinkedAs] of [['/d/f', '/d/f'], ['/d/f', '//d//f/']]) {
        it(`an unlinked name is gone, and a new file there is the new inode (unlink ${unlinkedAs})`, () => {
          expect(sb.mkdir('/d', 0o755)).to.equal(0)
          const old = touch(sb, path)
          expect(get(sb, path)).to.equal(old)
          expect(sb.unlink(unlinkedAs)).to.equal(0)
          expect(sb.lookup(path)).to.equal(ENOENT)
          const fresh = touch(sb, path)
          expect(get(sb, path)).to.equal(fresh).and.not.equal(old)
        })
      }

      it('a renamed directory takes its descendants\' paths with it', () => {
        expect(sb.mkdir('/a', 0o755)).to.equal(0)
        expect(sb.mkdir('/a/b', 0o755)).to.equal(0)
        const f = touch(sb, '/a/b/f')
        expect(get(sb, '/a/b/f')).to.equal(f)
        expect(sb.rename('/a', '/z')).to.equal(0)
        expect(sb.lookup('/a/b/f')).to.equal(ENOENT)
        expect(sb.lookup('/a/b')).to.equal(ENOENT)
        expect(get(sb, '/z/b/f')).to.equal(f)
      })

      it('a file renamed over another: the old name is gone, the new one is the moved inode', () => {
        const a = touch(sb, '/a')
        const b = touch(sb, '/b')
        expect(get(sb, '/a')).to.equal(a)
        expect(get(sb, '/b')).to.equal(b)
        expect(sb.rename('/a', '/b')).to.equal(0)
        expect(sb.lookup('/a')).to.equal(ENOENT)
        expect(get(sb, '/b')).to.equal(a)
      })

      it('a directory removed and made again is the new directory; its old children stay gone', () => {
        expect(sb.mkdir('/d', 0o755)).to.equal(0)
        touch(sb, '/d/f')
        expect(get(sb, '/d/f').isReg()).to.equal(true)
        expect(sb.unlink('/d/f')).to.equal(0)
        const old = get(sb, '/d')
        expect(sb.rmdir('/d')).to.equal(0)
        expect(sb.lookup('/d')).to.equal(ENOENT)
        expect(sb.mkdir('/d', 0o755)).to.equal(0)
        expect(get(sb, '/d')).to.not.equal(old)
        expect(sb.lookup('/d/f')).to.equal(ENOENT)
      })

      it('one of two hard links unlinked: the other still finds the inode', () => {
        const f = touch(sb, '/x')
        expect(sb.link('/x', '/y')).to.equal(0)
        expect(get(sb, '/x')).to.equal(f)
        expect(get(sb, '/y')).to.equal(f)
        expect(sb.unlink('/x')).to.equal(0)
        expect(sb.lookup('/x')).to.equal(ENOENT)
        expect(get(sb, '/y')).to.equal(f)
      })

      it('keeps answering right after it starts over (more path characters than it keeps)', () => {
        let dir = ''
        for (let depth = 0; depth < 8; depth++) {
          dir += '/' + String(depth).repeat(250)
          expect(sb.mkdir(dir, 0o755)).to.equal(0)
        }
        const files = Array.from({ length: 2500 }, (_, i) => touch(sb, `${dir}/f${i}`)) // 5 M characters
        for (let i = 0; i < files.length; i++) expect(get(sb, `${dir}/f${i}`)).to.equal(files[i])
        for (let i = 0; i < files.length; i += 2) expect(sb.unlink(`${dir}/f${i}`)).to.equal(0)
        for (let i = 0; i < files.length; i++) {
          expect(sb.lookup(`${dir}/f${i}`)).to.equal(i % 2 ? files[i] : ENOENT)
        }
      })

      it('a directory renamed over an empty one: paths under either are looked up afresh', () => {
        expect(sb.mkdir('/src', 0o755)).to.equal(0)
        expect(sb.mkdir('/dst', 0o755)).to.equal(0)
        const f = touch(sb, '/src/f')
        const dst = get(sb, '/dst')
        expect(get(sb, '/src/f')).to.equal(f)
        expect(sb.rename('/src', '/dst')).to.equal(0)
        expect(get(sb, '/dst')).to.not.equal(dst)
        expect(get(sb, '/dst/f')).to.equal(f)
        expect(sb.lookup('/src/f')).to.equal(ENOENT)
      })
    })
  })

  describe('mkdir and rmdir', () => {
    it('creates a directory with the mode, two links, and a link more on the parent', () => {
      expect(sb.mkdir('/d', 0o4750, { uid: 5, gid: 6 })).to.equal(0)
      const d = get(sb, '/d')
      const st = sb.getattr(d)
      expect(st.mode).to.equal(S_IFDIR | 0o4750)
      expect(st.nlink).to.equal(2)
      expect(st.uid).to.equal(5)
      expect(st.gid).to.equal(6)
      expect(sb.root.nlink).to.equal(3)
      expect(sb.mkdir('/d/e', 0o755)).to.equal(0)
      expect(d.nlink).to.equal(3)
      expect(sb.root.nlink).to.equal(3)
      expect(names(sb, '/')).to.deep.equal(['.', '..', 'd'])
    })

    it('returns EEXIST for an existing name of any type', () => {
      expect(sb.mkdir('/d', 0o755)).to.equal(0)
      touch(sb, '/f')
      expect(sb.mkdir('/d', 0o755)).to.equal(EEXIST)
      expect(sb.mkdir('/f', 0o755)).to.equal(EEXIST)
      expect(sb.root.nlink).to.equal(3)
    })

    it('returns ENOENT or ENOTDIR for a bad parent', () => {
      touch(sb, '/f')
      expect(sb.mkdir('/none/d', 0o755)).to.equal(ENOENT)
      expect(sb.mkdir('/f/d', 0o755)).to.equal(ENOTDIR)
    })

    it('removes an empty directory and drops the parent link', () => {
      expect(sb.mkdir('/d', 0o755)).to.equal(0)
      const d = get(sb, '/d')
      const before = sb.inodeCount
      expect(sb.rmdir('/d')).to.equal(0)
      expect(sb.lookup('/d')).to.equal(ENOENT)
      expect(sb.root.nlink).to.equal(2)
      expect(d.nlink).to.equal(0)
      expect(sb.inodeCount).to.equal(before - 1)
      expect(sb.inode(d.ino)).to.equal(undefined)
    })

    it('returns ENOTEMPTY, ENOTDIR and ENOENT as tmpfs does', () => {
      expect(sb.mkdir('/d', 0o755)).to.equal(0)
      touch(sb, '/d/f')
      touch(sb, '/f')
      expect(sb.rmdir('/d')).to.equal(ENOTEMPTY)
      expect(get(sb, '/d').nlink).to.equal(2)
      expect(sb.rmdir('/f')).to.equal(ENOTDIR)
      expect(sb.rmdir('/none')).to.equal(ENOENT)
      expect(sb.rmdir('/f/x')).to.equal(ENOTDIR)
      expect(sb.lookup('/d/f')).to.not.satisfy(isErrno)
    })

    it('inherits the group and the setgid bit from a setgid directory', () => {
      expect(sb.mkdir('/g', 0o2775, { uid: 0, gid: 50 })).to.equal(0)
      expect(sb.mkdir('/g/sub', 0o755, { uid: 7, gid: 7 })).to.equal(0)
      const fh = sb.create('/g/f', 0o644, O_RDWR, { uid: 7, gid: 7 })
      expect(fh).to.be.greaterThan(0)
      const sub = get(sb, '/g/sub')
      const f = get(sb, '/g/f')
      expect(sub.gid).to.equal(50)
      expect(sub.mode & S_ISGID).to.equal(S_ISGID)
      expect(f.gid).to.equal(50)
      expect(f.mode & S_ISGID).to.equal(0)
      expect(f.uid).to.equal(7)
    })
  })

  describe('create, open and release', () => {
    it('creates a regular file with the mode, one link, size 0, and an open handle', () => {
      const fh = sb.create('/f', 0o640, O_RDWR, { uid: 3, gid: 4 })
      expect(fh).to.be.a('number').and.greaterThan(0)
      const f = get(sb, '/f')
      const st = sb.getattr(f)
      expect(st.mode).to.equal(S_IFREG | 0o640)
      expect(st.nlink).to.equal(1)
      expect(st.size).to.equal(0)
      expect(st.blocks).to.equal(0)
      expect([st.uid, st.gid]).to.deep.equal([3, 4])
      expect(sb.handle(fh as number)!.inode).to.equal(f)
      expect(f.opens).to.equal(1)
    })

    it('keeps only the permission bits of the mode given to create', () => {
      expect(sb.create('/f', S_IFDIR | 0o644, O_RDWR)).to.be.greaterThan(0)
      expect(get(sb, '/f').mode).to.equal(S_IFREG | 0o644)
    })

    it('returns EEXIST, ENOENT and ENOTDIR from create', () => {
      touch(sb, '/f')
      expect(sb.create('/f', 0o644, O_RDWR)).to.equal(EEXIST)
      expect(sb.create('/none/f', 0o644, O_RDWR)).to.equal(ENOENT)
      expect(sb.create('/f/g', 0o644, O_RDWR)).to.equal(ENOTDIR)
    })

    it('gives each open a distinct handle and counts opens', () => {
      const f = touch(sb, '/f', 'data')
      const a = sb.open(f, O_RDONLY) as number
      const b = sb.open(f, O_RDWR) as number
      expect(a).to.be.greaterThan(0)
      expect(b).to.be.greaterThan(0)
      expect(a).to.not.equal(b)
      expect(f.opens).to.equal(2)
      expect([...sb.openHandles()].map(h => h.fh)).to.have.members([a, b])
      expect(sb.release(a)).to.equal(0)
      expect(f.opens).to.equal(1)
      expect(sb.handle(a)).to.equal(undefined)
      expect(readText(sb, b)).to.equal('data')
    })

    it('returns EBADF for an unknown or released handle', () => {
      const fh = create(sb, '/f', 'x')
      const buf = Buffer.alloc(8)
      expect(sb.read(9999, buf, 8, 0)).to.equal(EBADF)
      expect(sb.write(9999, buf, 8, 0)).to.equal(EBADF)
      expect(sb.release(9999)).to.equal(EBADF)
      expect(sb.release(fh)).to.equal(0)
      expect(sb.release(fh)).to.equal(EBADF)
      expect(sb.read(fh, buf, 8, 0)).to.equal(EBADF)
      expect(sb.write(fh, buf, 1, 0)).to.equal(EBADF)
    })

    it('opens a directory read-only, refuses it for writing, and gives EISDIR on read and write', () => {
      expect(sb.mkdir('/d', 0o755)).to.equal(0)
      const d = get(sb, '/d')
      expect(sb.open(d, O_WRONLY)).to.equal(EISDIR)
      expect(sb.open(d, O_RDWR)).to.equal(EISDIR)
      const fh = sb.open(d, O_RDONLY) as number
      expect(fh).to.be.greaterThan(0)
      const buf = Buffer.alloc(8)
      expect(sb.read(fh, buf, 8, 0)).to.equal(EISDIR)
      expect(sb.write(fh, buf, 8, 0)).to.equal(EISDIR)
      expect(sb.release(fh)).to.equal(0)
    })

    it('appends with O_APPEND (0o2000) whatever offset a write names', () => {
      const f = touch(sb, '/f', 'hello')
      const fh = sb.open(f, O_WRONLY | O_APPEND) as number
      expect(O_APPEND).to.equal(0o2000)
      expect(sb.write(fh, Buffer.from(' world'), 6, 0)).to.equal(6)
      expect(sb.write(fh, Buffer.from('!'), 1, 2)).to.equal(1)
      expect(f.size).to.equal(12)
      const rd = sb.open(f, O_RDONLY) as number
      expect(readText(sb, rd)).to.equal('hello world!')
    })

    it('writes at the offset given without O_APPEND', () => {
      const f = touch(sb, '/f', 'hello')
      const fh = sb.open(f, O_RDWR) as number
      expect(sb.write(fh, Buffer.from('J'), 1, 0)).to.equal(1)
      expect(f.size).to.equal(5)
      expect(readText(sb, fh)).to.equal('Jello')
    })
  })

  describe('unlink', () => {
    it('removes a file, frees its dpages and its inode', () => {
      const pool = sb.pool
      const f = touch(sb, '/f', Buffer.alloc(3 * pool.dpageSize, 1))
      expect(pool.free).to.equal(pool.total - 3)
      const count = sb.inodeCount
      expect(sb.unlink('/f')).to.equal(0)
      expect(sb.lookup('/f')).to.equal(ENOENT)
      expect(f.nlink).to.equal(0)
      expect(pool.free).to.equal(pool.total)
      expect(sb.inodeCount).to.equal(count - 1)
      expect(sb.inode(f.ino)).to.equal(undefined)
    })

    it('returns EISDIR on a directory, ENOENT on a missing name, ENOTDIR through a file', () => {
      expect(sb.mkdir('/d', 0o755)).to.equal(0)
      touch(sb, '/f')
      expect(sb.unlink('/d')).to.equal(EISDIR)
      expect(sb.lookup('/d')).to.not.satisfy(isErrno)
      expect(sb.unlink('/none')).to.equal(ENOENT)
      expect(sb.unlink('/f/x')).to.equal(ENOTDIR)
    })

    it('keeps an open unlinked file readable and writable, and frees it at the last release', () => {
      const pool = sb.pool
      const ds = pool.dpageSize
      const fh = create(sb, '/f', 'before')
      const f = get(sb, '/f')
      const second = sb.open(f, O_RDONLY) as number
      expect(sb.unlink('/f')).to.equal(0)
      expect(sb.lookup('/f')).to.equal(ENOENT)
      expect(f.nlink).to.equal(0)
      expect(sb.inode(f.ino)).to.equal(f)
      expect(readText(sb, fh)).to.equal('before')
      expect(sb.write(fh, Buffer.alloc(ds, 0x41), ds, ds)).to.equal(ds)
      expect(pool.free).to.equal(pool.total - 2)
      expect(sb.getattr(f).size).to.equal(2 * ds)
      const buf = Buffer.alloc(4)
      expect(sb.read(second, buf, 4, ds + 10)).to.equal(4)
      expect(buf.toString()).to.equal('AAAA')
      expect(sb.release(fh)).to.equal(0)
      expect(pool.free).to.equal(pool.total - 2)
      expect(readText(sb, second, 6)).to.equal('before')
      expect(sb.release(second)).to.equal(0)
      expect(pool.free).to.equal(pool.total)
      expect(sb.inode(f.ino)).to.equal(undefined)
    })

    it('keeps the data while another hard link remains', () => {
      const pool = sb.pool
      touch(sb, '/a', 'shared')
      expect(sb.link('/a', '/b')).to.equal(0)
      expect(sb.unlink('/a')).to.equal(0)
      const b = get(sb, '/b')
      expect(b.nlink).to.equal(1)
      expect(pool.free).to.equal(pool.total - 1)
      const fh = sb.open(b, O_RDONLY) as number
      expect(readText(sb, fh)).to.equal('shared')
      expect(sb.release(fh)).to.equal(0)
      expect(sb.unlink('/b')).to.equal(0)
      expect(pool.free).to.equal(pool.total)
    })
  })

  describe('rename', () => {
    it('moves a file to a new name', () => {
      const f = touch(sb, '/a', 'x')
      expect(sb.mkdir('/d', 0o755)).to.equal(0)
      expect(sb.rename('/a', '/d/b')).to.equal(0)
      expect(sb.lookup('/a')).to.equal(ENOENT)
      expect(sb.lookup('/d/b')).to.equal(f)
      expect(f.nlink).to.equal(1)
      expect(sb.root.nlink).to.equal(3)
    })

    it('replaces a file and frees the old target\'s dpages', () => {
      const pool = sb.pool
      const ds = pool.dpageSize
      const a = touch(sb, '/a', 'new')
      const b = touch(sb, '/b', Buffer.alloc(2 * ds, 7))
      expect(pool.free).to.equal(pool.total - 3)
      expect(sb.rename('/a', '/b')).to.equal(0)
      expect(sb.lookup('/a')).to.equal(ENOENT)
      expect(sb.lookup('/b')).to.equal(a)
      expect(pool.free).to.equal(pool.total - 1)
      expect(sb.inode(b.ino)).to.equal(undefined)
      expect(names(sb, '/')).to.deep.equal(['.', '..', 'b'])
    })

    it('keeps a replaced target that is still open until its last release', () => {
      const pool = sb.pool
      touch(sb, '/a', 'new')
      const fh = create(sb, '/b', 'old')
      const b = get(sb, '/b')
      expect(sb.rename('/a', '/b')).to.equal(0)
      expect(b.nlink).to.equal(0)
      expect(readText(sb, fh)).to.equal('old')
      expect(pool.free).to.equal(pool.total - 2)
      expect(sb.release(fh)).to.equal(0)
      expect(pool.free).to.equal(pool.total - 1)
    })

    it('replaces an empty directory with a directory', () => {
      expect(sb.mkdir('/src', 0o755)).to.equal(0)
      expect(sb.mkdir('/dst', 0o755)).to.equal(0)
      touch(sb, '/src/f')
      const src = get(sb, '/src')
      const dst = get(sb, '/dst')
      expect(sb.root.nlink).to.equal(4)
      expect(sb.rename('/src', '/dst')).to.equal(0)
      expect(sb.lookup('/dst')).to.equal(src)
      expect(sb.lookup('/src')).to.equal(ENOENT)
      expect(sb.lookup('/dst/f')).to.not.satisfy(isErrno)
      expect(sb.root.nlink).to.equal(3)
      expect(dst.nlink).to.equal(0)
      expect(sb.inode(dst.ino)).to.equal(undefined)
    })

    it('replaces an empty directory in another parent and keeps the link counts right', () => {
      expect(sb.mkdir('/p', 0o755)).to.equal(0)
      expect(sb.mkdir('/q', 0o755)).to.equal(0)
      expect(sb.mkdir('/p/a', 0o755)).to.equal(0)
      expect(sb.mkdir('/q/b', 0o755)).to.equal(0)
      const p = get(sb, '/p')
      const q = get(sb, '/q')
      const a = get(sb, '/p/a')
      expect(sb.rename('/p/a', '/q/b')).to.equal(0)
      expect(p.nlink).to.equal(2)
      expect(q.nlink).to.equal(3)
      expect(sb.lookup('/q/b')).to.equal(a)
      expect(a.parent).to.equal(q)
    })

    it('returns ENOTEMPTY over a non-empty directory and changes nothing', () => {
      expect(sb.mkdir('/a', 0o755)).to.equal(0)
      expect(sb.mkdir('/b', 0o755)).to.equal(0)
      touch(sb, '/b/f')
      expect(sb.rename('/a', '/b')).to.equal(ENOTEMPTY)
      expect(sb.lookup('/a')).to.not.satisfy(isErrno)
      expect(sb.lookup('/b/f')).to.not.satisfy(isErrno)
      expect(sb.root.nlink).to.equal(4)
    })

    it('returns EISDIR for a file over a directory and ENOTDIR for a directory over a file', () => {
      expect(sb.mkdir('/d', 0o755)).to.equal(0)
      touch(sb, '/f')
      expect(sb.rename('/f', '/d')).to.equal(EISDIR)
      expect(sb.rename('/d', '/f')).to.equal(ENOTDIR)
      expect(get(sb, '/d').isDir()).to.equal(true)
      expect(get(sb, '/f').isReg()).to.equal(true)
    })

    it('returns EINVAL for moving a directory into its own subtree', () => {
      expect(sb.mkdir('/a', 0o755)).to.equal(0)
      expect(sb.mkdir('/a/b', 0o755)).to.equal(0)
      expect(sb.rename('/a', '/a/b/c')).to.equal(EINVAL)
      expect(sb.rename('/a', '/a/c')).to.equal(EINVAL)
      expect(sb.lookup('/a/b')).to.not.satisfy(isErrno)
      expect(sb.lookup('/a/b/c')).to.equal(ENOENT)
      // a sibling whose name starts the same is not inside
      expect(sb.mkdir('/ab', 0o755)).to.equal(0)
      expect(sb.rename('/a', '/ab/a')).to.equal(0)
    })

    it('is a no-op when both names are links to the same inode', () => {
      const f = touch(sb, '/a', 'x')
      expect(sb.link('/a', '/b')).to.equal(0)
      expect(sb.rename('/a', '/b')).to.equal(0)
      expect(sb.lookup('/a')).to.equal(f)
      expect(sb.lookup('/b')).to.equal(f)
      expect(f.nlink).to.equal(2)
      expect(sb.rename('/a', '/a')).to.equal(0)
      expect(sb.lookup('/a')).to.equal(f)
    })

    it('moves a directory between parents and updates both parents\' links and its parent', () => {
      expect(sb.mkdir('/p', 0o755)).to.equal(0)
      expect(sb.mkdir('/q', 0o755)).to.equal(0)
      expect(sb.mkdir('/p/d', 0o755)).to.equal(0)
      const p = get(sb, '/p')
      const q = get(sb, '/q')
      const d = get(sb, '/p/d')
      expect(p.nlink).to.equal(3)
      expect(sb.rename('/p/d', '/q/d2')).to.equal(0)
      expect(p.nlink).to.equal(2)
      expect(q.nlink).to.equal(3)
      expect(d.parent).to.equal(q)
      expect(d.nlink).to.equal(2)
      // the parent pointer is what the subtree check walks
      expect(sb.rename('/q', '/q/d2/x')).to.equal(EINVAL)
      expect(sb.rename('/p', '/q/d2/x')).to.equal(0)
      expect(sb.root.nlink).to.equal(3)
    })

    it('does not change link counts when a directory is renamed within its parent', () => {
      expect(sb.mkdir('/d', 0o755)).to.equal(0)
      expect(sb.rename('/d', '/e')).to.equal(0)
      expect(sb.root.nlink).to.equal(3)
      expect(get(sb, '/e').nlink).to.equal(2)
    })

    it('returns ENOENT for a missing source and ENOTDIR for a file as a parent', () => {
      touch(sb, '/f')
      expect(sb.rename('/none', '/x')).to.equal(ENOENT)
      expect(sb.rename('/f', '/none/x')).to.equal(ENOENT)
      expect(sb.rename('/f', '/f/x')).to.equal(ENOTDIR)
      expect(sb.lookup('/f')).to.not.satisfy(isErrno)
    })
  })

  describe('link', () => {
    it('adds a name to a file and counts it', () => {
      const f = touch(sb, '/a', 'x')
      expect(sb.mkdir('/d', 0o755)).to.equal(0)
      expect(sb.link('/a', '/d/b')).to.equal(0)
      expect(sb.lookup('/d/b')).to.equal(f)
      expect(sb.getattr(f).nlink).to.equal(2)
      expect(sb.unlink('/a')).to.equal(0)
      expect(f.nlink).to.equal(1)
      expect(sb.inode(f.ino)).to.equal(f)
    })

    it('returns EPERM for a directory, EEXIST for a taken name, ENOENT for a missing source', () => {
      expect(sb.mkdir('/d', 0o755)).to.equal(0)
      const f = touch(sb, '/f')
      touch(sb, '/g')
      expect(sb.link('/d', '/d2')).to.equal(EPERM)
      expect(sb.link('/f', '/g')).to.equal(EEXIST)
      expect(sb.link('/f', '/d')).to.equal(EEXIST)
      expect(sb.link('/none', '/x')).to.equal(ENOENT)
      expect(sb.link('/f', '/none/x')).to.equal(ENOENT)
      expect(f.nlink).to.equal(1)
      expect(get(sb, '/d').nlink).to.equal(2)
    })

    it('does not use an inode of the nr_inodes limit', () => {
      const limited = makeSb({ nrInodes: 2 })
      touch(limited, '/f')
      expect(limited.link('/f', '/g')).to.equal(0)
      expect(limited.create('/h', 0o644, O_RDWR)).to.equal(ENOSPC)
    })
  })

  describe('symlink and readlink', () => {
    it('creates a symlink whose size is the target length and reads it back', () => {
      const target = bytes('some/where/\u00e9') + '\xff'
      expect(sb.symlink(target, '/l')).to.equal(0)
      const l = get(sb, '/l')
      const st = sb.getattr(l)
      expect(st.mode & S_IFMT).to.equal(S_IFLNK)
      expect(st.mode & 0o777).to.equal(0o777)
      expect(st.size).to.equal(Buffer.byteLength('some/where/\u00e9') + 1)
      expect(st.nlink).to.equal(1)
      expect(sb.readlink(l)).to.equal(target)
    })

    it('returns EINVAL for readlink of a file or a directory', () => {
      const f = touch(sb, '/f')
      expect(sb.readlink(f)).to.equal(EINVAL)
      expect(sb.readlink(sb.root)).to.equal(EINVAL)
    })

    it('returns EEXIST for a taken name, ENAMETOOLONG for a target of PATH_MAX bytes', () => {
      touch(sb, '/f')
      expect(sb.symlink('x', '/f')).to.equal(EEXIST)
      expect(sb.symlink('x'.repeat(4096), '/l')).to.equal(ENAMETOOLONG)
      expect(sb.symlink('x'.repeat(4095), '/l')).to.equal(0)
    })

    it('returns EINVAL for truncate of a symlink and EISDIR for a directory', () => {
      expect(sb.symlink('target', '/l')).to.equal(0)
      expect(sb.truncate(get(sb, '/l'), 0)).to.equal(EINVAL)
      expect(sb.truncate(sb.root, 0)).to.equal(EISDIR)
      expect(get(sb, '/l').target).to.equal('target')
    })
  })

  describe('mknod', () => {
    it('creates a regular file when no type is given and refuses directories and symlinks', () => {
      expect(sb.mknod('/f', 0o600, 0)).to.equal(0)
      expect(get(sb, '/f').mode).to.equal(S_IFREG | 0o600)
      expect(sb.mknod('/d', S_IFDIR | 0o755, 0)).to.equal(EINVAL)
      expect(sb.mknod('/l', S_IFLNK | 0o777, 0)).to.equal(EINVAL)
      expect(sb.mknod('/f', 0o600, 0)).to.equal(EEXIST)
      expect(sb.mknod('/fifo', 0o010000 | 0o644, 0)).to.equal(0)
      expect(get(sb, '/fifo').mode & S_IFMT).to.equal(0o010000)
      expect(sb.mknod('/chr', 0o020000 | 0o644, 0x0501)).to.equal(0)
      expect(sb.getattr(get(sb, '/chr')).rdev).to.equal(0x0501)
    })
  })

  describe('attributes', () => {
    it('chmod changes the permission bits and keeps the file type', () => {
      const f = touch(sb, '/f')
      expect(sb.mkdir('/d', 0o755)).to.equal(0)
      const d = get(sb, '/d')
      expect(sb.chmod(f, S_IFDIR | 0o4711)).to.equal(0)
      expect(f.mode).to.equal(S_IFREG | 0o4711)
      expect(sb.chmod(d, 0o700)).to.equal(0)
      expect(d.mode).to.equal(S_IFDIR | 0o700)
      expect(d.isDir()).to.equal(true)
    })

    it('chmod moves ctime but not mtime', () => {
      const f = touch(sb, '/f')
      f.mtime = 1000n
      f.ctime = 1000n
      sb.chmod(f, 0o600)
      expect(f.mtime).to.equal(1000n)
      expect(f.ctime > 1000n).to.equal(true)
    })

    it('chown with 0xffffffff leaves that id unchanged', () => {
      const f = touch(sb, '/f')
      sb.chown(f, 10, 20)
      expect([f.uid, f.gid]).to.deep.equal([10, 20])
      expect(sb.chown(f, 0xffffffff, 30)).to.equal(0)
      expect([f.uid, f.gid]).to.deep.equal([10, 30])
      expect(sb.chown(f, 40, 0xffffffff)).to.equal(0)
      expect([f.uid, f.gid]).to.deep.equal([40, 30])
      f.ctime = 1000n
      expect(sb.chown(f, 0xffffffff, 0xffffffff)).to.equal(0)
      expect([f.uid, f.gid]).to.deep.equal([40, 30])
      expect(f.ctime > 1000n).to.equal(true)
    })

    it('chown clears setuid on a regular file, and setgid only with group execute', () => {
      const f = touch(sb, '/f')
      sb.chmod(f, 0o6755)
      sb.chown(f, 1000, 0xffffffff)
      expect(f.mode).to.equal(S_IFREG | 0o755)
      // setgid without group execute is the mandatory-locking mark; chown leaves it
      sb.chmod(f, 0o6644)
      sb.chown(f, 0xffffffff, 100)
      expect(f.mode).to.equal(S_IFREG | 0o2644)
      // as chown_common() does, an unchanged owner still drops setuid
      sb.chmod(f, 0o4755)
      sb.chown(f, f.uid, f.gid)
      expect(f.mode).to.equal(S_IFREG | 0o755)
    })

    it('chown keeps the set-id bits of a directory', () => {
      expect(sb.mkdir('/d', 0o6755)).to.equal(0)
      const d = get(sb, '/d')
      sb.chown(d, 1000, 1000)
      expect(d.mode).to.equal(S_IFDIR | 0o6755)
      expect(d.mode & S_ISUID).to.equal(S_ISUID)
    })

    it('utimens sets atime and mtime to the nanosecond and moves ctime to now', () => {
      const f = touch(sb, '/f')
      const before = BigInt(Date.now() - 1) * 1000000n
      expect(sb.utimens(f, 981173106123456789n, 654321n)).to.equal(0)
      const st = sb.getattr(f)
      expect(st.atime).to.equal(981173106123456789n)
      expect(st.mtime).to.equal(654321n)
      expect(st.ctime >= before).to.equal(true)
    })

    it('utimens honours UTIME_OMIT and UTIME_NOW for each time on its own', () => {
      const f = touch(sb, '/f')
      sb.utimens(f, 1000n, 2000n)
      expect(sb.utimens(f, UTIME_OMIT, 3000n)).to.equal(0)
      expect(f.atime).to.equal(1000n)
      expect(f.mtime).to.equal(3000n)
      const before = BigInt(Date.now() - 1) * 1000000n
      sb.utimens(f, UTIME_NOW, UTIME_OMIT)
      expect(f.atime >= before).to.equal(true)
      expect(f.mtime).to.equal(3000n)
    })

    it('getattr reports the inode number, blksize of the dpage size and a directory size of a page', () => {
      const f = touch(sb, '/f', 'abc')
      const st = sb.getattr(f)
      expect(st.ino).to.equal(f.ino)
      expect(st.size).to.equal(3)
      expect(st.blksize).to.equal(4096)
      expect(sb.getattr(sb.root).size).to.equal(4096)
      expect(sb.getattr(sb.root).ino).to.equal(1)
    })

    it('creating and removing names moves the parent\'s mtime and ctime', () => {
      expect(sb.mkdir('/d', 0o755)).to.equal(0)
      const d = get(sb, '/d')
      for (const op of [
        () => touch(sb, '/d/f'),
        () => sb.link('/d/f', '/d/g'),
        () => sb.unlink('/d/g'),
        () => sb.rename('/d/f', '/d/h'),
        () => sb.symlink('x', '/d/l'),
        () => sb.mkdir('/d/e', 0o755),
        () => sb.rmdir('/d/e')
      ]) {
        d.mtime = 1n
        d.ctime = 1n
        op()
        expect(d.mtime > 1n).to.equal(true)
        expect(d.ctime > 1n).to.equal(true)
      }
    })
  })

  describe('xattrs', () => {
    it('sets, gets, lists and removes user.* attributes', () => {
      const f = touch(sb, '/f')
      expect(sb.listxattr(f)).to.deep.equal([])
      expect(sb.setxattr(f, 'user.a', Buffer.from('one'), 0)).to.equal(0)
      expect(sb.setxattr(f, 'user.b', Buffer.alloc(0), 0)).to.equal(0)
      expect((sb.getxattr(f, 'user.a') as Buffer).toString()).to.equal('one')
      expect((sb.getxattr(f, 'user.b') as Buffer).length).to.equal(0)
      expect(sb.listxattr(f)).to.have.members(['user.a', 'user.b'])
      expect(sb.setxattr(f, 'user.a', Buffer.from('two'), 0)).to.equal(0)
      expect((sb.getxattr(f, 'user.a') as Buffer).toString()).to.equal('two')
      expect(sb.removexattr(f, 'user.a')).to.equal(0)
      expect(sb.getxattr(f, 'user.a')).to.equal(ENODATA)
      expect(sb.listxattr(f)).to.deep.equal(['user.b'])
    })

    it('keeps its own copy of a value', () => {
      const f = touch(sb, '/f')
      const value = Buffer.from('abc')
      sb.setxattr(f, 'user.a', value, 0)
      value.write('xyz')
      expect((sb.getxattr(f, 'user.a') as Buffer).toString()).to.equal('abc')
    })

    it('works on directories too, per inode', () => {
      expect(sb.mkdir('/d', 0o755)).to.equal(0)
      const d = get(sb, '/d')
      const f = touch(sb, '/f')
      expect(sb.setxattr(d, 'user.x', Buffer.from('1'), 0)).to.equal(0)
      expect(sb.getxattr(f, 'user.x')).to.equal(ENODATA)
      expect(sb.listxattr(d)).to.deep.equal(['user.x'])
    })

    it('returns EOPNOTSUPP outside the user namespace', () => {
      const f = touch(sb, '/f')
      for (const name of ['trusted.a', 'security.a', 'system.posix_acl_access', 'usera', 'a']) {
        expect(sb.setxattr(f, name, Buffer.from('v'), 0), name).to.equal(EOPNOTSUPP)
      }
      expect(sb.listxattr(f)).to.deep.equal([])
    })

    it('returns EEXIST for XATTR_CREATE on an existing name and ENODATA for XATTR_REPLACE on a missing one', () => {
      const f = touch(sb, '/f')
      expect(sb.setxattr(f, 'user.a', Buffer.from('1'), XATTR_REPLACE)).to.equal(ENODATA)
      expect(sb.getxattr(f, 'user.a')).to.equal(ENODATA)
      expect(sb.setxattr(f, 'user.a', Buffer.from('1'), XATTR_CREATE)).to.equal(0)
      expect(sb.setxattr(f, 'user.a', Buffer.from('2'), XATTR_CREATE)).to.equal(EEXIST)
      expect((sb.getxattr(f, 'user.a') as Buffer).toString()).to.equal('1')
      expect(sb.setxattr(f, 'user.a', Buffer.from('3'), XATTR_REPLACE)).to.equal(0)
      expect((sb.getxattr(f, 'user.a') as Buffer).toString()).to.equal('3')
    })

    it('returns ENODATA for getting or removing a missing attribute', () => {
      const f = touch(sb, '/f')
      expect(sb.getxattr(f, 'user.none')).to.equal(ENODATA)
      expect(sb.removexattr(f, 'user.none')).to.equal(ENODATA)
      sb.setxattr(f, 'user.a', Buffer.from('1'), 0)
      expect(sb.removexattr(f, 'user.none')).to.equal(ENODATA)
      expect(sb.removexattr(f, 'user.a')).to.equal(0)
      expect(sb.removexattr(f, 'user.a')).to.equal(ENODATA)
    })
  })

  describe('statfs', () => {
    it('reports the dpage size as block size and pool counts as blocks', () => {
      const pool = sb.pool
      const st = sb.statfs()
      expect(st.bsize).to.equal(pool.dpageSize)
      expect(st.frsize).to.equal(pool.dpageSize)
      expect(st.blocks).to.equal(256)
      expect(st.bfree).to.equal(256)
      expect(st.bavail).to.equal(256)
      expect(st.namemax).to.equal(255)
      touch(sb, '/f', Buffer.alloc(5 * pool.dpageSize + 1, 1))
      const after = sb.statfs()
      expect(after.blocks).to.equal(256)
      expect(after.bfree).to.equal(250)
      expect(after.bavail).to.equal(250)
    })

    it('reports a 2 MiB dpage pool in 2 MiB blocks', () => {
      const layout = layoutPool({ size: 8 << 20, addr: null, align: 2 << 20 }, 1, 21)
      if (!layout.ok) throw new Error(layout.error)
      const big = new Superblock(new DmemPool(layout.value),
        { rootMode: 0o755, rootUid: 0, rootGid: 0, nrInodes: 0, maxAllocTry: 1 })
      const st = big.statfs()
      expect(st.bsize).to.equal(2 << 20)
      expect(st.blocks).to.equal(4)
      touch(big, '/f', 'x')
      expect(big.statfs().bfree).to.equal(3)
      expect(big.getattr(get(big, '/f')).blocks).to.equal((2 << 20) / 512)
    })

    it('reports 0 files and 0 free inodes when nr_inodes is unlimited', () => {
      touch(sb, '/f')
      const st = sb.statfs()
      expect(st.files).to.equal(0)
      expect(st.ffree).to.equal(0)
      expect(st.favail).to.equal(0)
    })

    it('reports nr_inodes as files and what is left as ffree', () => {
      const limited = makeSb({ nrInodes: 10 })
      expect(limited.statfs().files).to.equal(10)
      expect(limited.statfs().ffree).to.equal(9) // the root takes one
      touch(limited, '/f')
      expect(limited.mkdir('/d', 0o755)).to.equal(0)
      expect(limited.symlink('x', '/l')).to.equal(0)
      expect(limited.statfs().ffree).to.equal(6)
      expect(limited.statfs().favail).to.equal(6)
      expect(limited.unlink('/f')).to.equal(0)
      expect(limited.statfs().ffree).to.equal(7)
    })
  })

  describe('nr_inodes limit', () => {
    it('returns ENOSPC for every kind of new inode once the limit is reached', () => {
      const limited = makeSb({ nrInodes: 3 })
      touch(limited, '/a')
      expect(limited.mkdir('/d', 0o755)).to.equal(0)
      expect(limited.inodeCount).to.equal(3)
      expect(limited.create('/b', 0o644, O_RDWR)).to.equal(ENOSPC)
      expect(limited.mkdir('/e', 0o755)).to.equal(ENOSPC)
      expect(limited.symlink('x', '/l')).to.equal(ENOSPC)
      expect(limited.mknod('/n', 0o644, 0)).to.equal(ENOSPC)
      expect(limited.lookup('/b')).to.equal(ENOENT)
      expect(limited.statfs().ffree).to.equal(0)
      // an existing name is still EEXIST, not ENOSPC
      expect(limited.mkdir('/d', 0o755)).to.equal(EEXIST)
    })

    it('gives an inode back when the last name and handle go', () => {
      const limited = makeSb({ nrInodes: 2 })
      const fh = create(limited, '/a')
      expect(limited.create('/b', 0o644, O_RDWR)).to.equal(ENOSPC)
      expect(limited.unlink('/a')).to.equal(0)
      // still open, so still counted
      expect(limited.create('/b', 0o644, O_RDWR)).to.equal(ENOSPC)
      expect(limited.release(fh)).to.equal(0)
      expect(limited.create('/b', 0o644, O_RDWR)).to.be.greaterThan(0)
    })

    it('gives inodes no limit when nr_inodes is 0', () => {
      for (let i = 0; i < 300; i++) touch(sb, `/f${i}`)
      expect(sb.inodeCount).to.equal(301)
    })
  })

  describe('readdir', () => {
    it('lists . and .. then the names, and returns ENOTDIR for a file', () => {
      expect(sb.mkdir('/d', 0o755)).to.equal(0)
      touch(sb, '/d/x')
      touch(sb, '/d/y')
      expect(names(sb, '/d')).to.deep.equal(['.', '..', 'x', 'y'])
      expect(sb.readdir(get(sb, '/d/x'))).to.equal(ENOTDIR)
    })
  })
})
