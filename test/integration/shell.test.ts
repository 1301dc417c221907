// Ordinary shell work on a real dmemfs mount.

import { expect } from 'chai'
import * as fs from 'fs'
import { DmemfsMount, ok, sh, stopAll, tempDir } from './harness'

describe('shell work on a mounted dmemfs', function () {
  let m: DmemfsMount

  before(async function () {
    m = await DmemfsMount.start('size=256M')
  })

  after(stopAll)

  it('echo, cat, >> and cp, mv, rm', function () {
    m.ok('echo hello > a && echo world >> a')
    expect(m.ok('cat a')).to.equal('hello\nworld\n')
    m.ok('cp a b && mv b c')
    expect(m.ok('cat c')).to.equal('hello\nworld\n')
    expect(fs.existsSync(m.path('b'))).to.equal(false)
    m.ok('rm a c')
    expect(m.ok('ls')).to.equal('')
  })

  it('mkdir, rmdir, touch, find, ls -a shows the control directory', function () {
    m.ok('mkdir -p d1/d2/d3 && touch d1/f d1/d2/g')
    expect(m.ok('find d1 | sort').trim().split('\n')).to.deep.equal(['d1', 'd1/d2', 'd1/d2/d3', 'd1/d2/g', 'd1/f'])
    expect(m.ok('stat -c %h d1')).to.equal('3\n')
    const r = m.sh('rmdir d1')
    expect(r.status).to.not.equal(0)
    expect(r.stderr).to.match(/not empty/i)
    m.ok('rm -r d1')
    expect(m.ok('ls -a').split('\n')).to.include('.dmem')
  })

  it('truncate, dd, stat and du count allocated dpages', function () {
    m.ok('truncate -s 10M sparse')
    expect(m.ok('stat -c %s sparse')).to.equal('10485760\n')
    expect(m.ok('du -k sparse')).to.match(/^0\t/)
    m.ok('dd if=/dev/urandom of=sparse bs=4096 count=1 seek=100 conv=notrunc status=none')
    expect(m.ok('stat -c %b sparse')).to.equal('8\n')
    expect(m.ok('du -k sparse')).to.match(/^4\t/)
    // The hole before the written dpage reads as zeros.
    m.ok('cmp -n 409600 sparse /dev/zero')
    m.ok('truncate -s 5000 sparse')
    expect(m.ok('stat -c %s,%b sparse')).to.equal('5000,0\n')
    m.ok('rm sparse')
  })

  it('a large file spanning many dpages reads back byte for byte', function () {
    const src = tempDir()
    ok(`dd if=/dev/urandom of=${src}/big bs=1M count=9 status=none && head -c 12345 /dev/urandom >> ${src}/big`)
    m.ok(`cp ${src}/big big && cmp big ${src}/big`)
    expect(m.ok('stat -c %s big')).to.equal(`${9 * 1048576 + 12345}\n`)
    m.ok('rm big')
  })

  it('ln, ln -s, chmod', function () {
    m.ok('echo x > t && ln t t2 && ln -s t ts && chmod 0640 t')
    expect(m.ok('stat -c "%h %a" t t2')).to.equal('2 640\n2 640\n')
    expect(m.ok('readlink ts && cat ts')).to.equal('t\nx\n')
    expect(m.ok('stat -c %i t')).to.equal(m.ok('stat -c %i t2'))
    m.ok('rm t t2 ts')
  })

  it('tar round trip of a tree', function () {
    m.ok('mkdir -p src/a/b && for i in $(seq 1 50); do echo "file $i" > src/a/f$i; done && ' +
      'dd if=/dev/urandom of=src/a/b/bin bs=64K count=3 status=none && ln -s f1 src/a/link')
    m.ok('tar cf tree.tar src && mkdir out && tar xf tree.tar -C out && diff -r src out/src')
    expect(m.ok('readlink out/src/a/link')).to.equal('f1\n')
    m.ok('rm -rf src out tree.tar')
  })

  it('many files in one directory', function () {
    m.ok('mkdir many && cd many && for i in $(seq 1 2000); do : > f$i; done')
    expect(m.ok('ls many | wc -l')).to.equal('2000\n')
    m.ok('rm -rf many')
  })

  it('mmap: a shared mapping writes through to the file', function () {
    m.ok('head -c 8192 /dev/zero > mapped')
    m.ok('python3 -c "import mmap,os; f=open(\'mapped\',\'r+b\'); mm=mmap.mmap(f.fileno(), 8192); ' +
      'mm[4096:4101]=b\'hello\'; mm.flush(); mm.close(); f.close()"')
    expect(m.ok('dd if=mapped bs=1 skip=4096 count=5 status=none')).to.equal('hello')
    m.ok('rm mapped')
  })

  it('unlink of an open file: data stays reachable until the last close, no .fuse_hidden name', function () {
    const free = m.stat().free_dpages
    const script = [
      'import os, sys',
      "fd = os.open('held', os.O_RDWR | os.O_CREAT, 0o644)",
      "os.write(fd, b'x' * 20000)",
      "os.unlink('held')",
      "sys.stdout.write(' '.join(sorted(os.listdir('.'))) + '|')",
      "os.pwrite(fd, b'after', 0)",
      "sys.stdout.write(os.pread(fd, 8, 0).decode() + '|' + str(os.fstat(fd).st_size) + '|' + str(os.fstat(fd).st_nlink))",
      "sys.stdout.flush()",
      "sys.stdin.read()",
      'os.close(fd)'
    ].join('\n')
    // The child reads its stdin (a fifo) to stay alive until the shell has looked at the directory.
    const out = m.sh(`fifo=$(mktemp -u) && mkfifo $fifo && { python3 -c "${script}" < $fifo & pid=$!; } && ` +
      'exec 4>$fifo && sleep 1 && ls -a && exec 4>&- && wait $pid && rm $fifo')
    expect(out.status, out.stderr).to.equal(0)
    expect(out.stdout).to.not.match(/fuse_hidden/)
    expect(out.stdout).to.include('afterxxx|20000|0')
    expect(m.stat().free_dpages).to.equal(free)
  })

  it('df shows the pool', function () {
    const st = m.stat()
    const [size, avail] = m.ok('df -B4096 --output=size,avail . | tail -1').trim().split(/\s+/).map(Number)
    expect(size).to.equal(st.total_dpages)
    expect(avail).to.equal(st.free_dpages)
    expect(size).to.equal(65536)
  })

  it('the control directory cannot be removed, renamed or written into', function () {
    expect(m.sh('rmdir .dmem').status).to.not.equal(0)
    expect(m.sh('mv .dmem x').status).to.not.equal(0)
    expect(m.sh('touch .dmem/new').status).to.not.equal(0)
    expect(m.sh('rm .dmem/stat').status).to.not.equal(0)
    expect(m.ok('ls .dmem')).to.include('stat')
  })
})

describe('permissions and open files across renames', function () {
  let m: DmemfsMount

  before(async function () {
    m = await DmemfsMount.start('size=16M,allow_other,mode=0777')
  })

  after(stopAll)

  const asNobody = (cmd: string) => m.sh(`setpriv --reuid=65534 --regid=65534 --clear-groups sh -c '${cmd}'`)

  it('the kernel checks permissions (default_permissions) for other users', function () {
    m.ok('echo secret > private && chmod 0600 private && echo open > public && chmod 0644 public')
    expect(asNobody('cat public').stdout).to.equal('open\n')
    expect(asNobody('cat private').stderr).to.match(/Permission denied/)
    expect(asNobody('echo x >> public').stderr).to.match(/Permission denied/)
    expect(asNobody('chmod 0777 public').stderr).to.match(/Operation not permitted/)
    m.ok('rm private public')
  })

  it('rename over a file that is still open keeps the old data readable through the descriptor', function () {
    m.ok('echo old > target && echo new > source')
    const out = m.ok('exec 3< target && mv source target && cat <&3 && cat target && ls -a && exec 3<&-')
    expect(out).to.match(/^old\nnew\n/)
    expect(out).to.not.match(/fuse_hidden/)
    m.ok('rm target')
  })
})

describe('extended attributes', function () {
  after(stopAll)

  const py = (code: string) => `python3 -c "import os; ${code}"`

  it('user xattrs work by default', async function () {
    const m = await DmemfsMount.start('size=4M')
    m.ok('touch f')
    m.ok(py("os.setxattr('f', 'user.colour', b'blue')"))
    expect(m.ok(py("print(os.getxattr('f', 'user.colour').decode(), os.listxattr('f'))"))).to.equal("blue ['user.colour']\n")
    expect(m.sh(py("os.setxattr('f', 'trusted.x', b'1')")).stderr).to.match(/Operation not supported/)
  })

  it('nouser_xattr turns them off: the kernel gets ENOSYS and stops asking', async function () {
    const m = await DmemfsMount.start('size=4M,nouser_xattr')
    m.ok('touch f')
    expect(m.sh(py("os.setxattr('f', 'user.colour', b'blue')")).stderr).to.match(/Operation not supported/)
  })
})
