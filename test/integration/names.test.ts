// A Linux name is bytes (issue 10): names that are not UTF-8 stay distinct and round-trip exactly through
// every operation, the control files and the CLI; a rename to a `.fuse_hidden…` name is a rename; xattr
// replies of any size reach the caller or answer ERANGE.

import { spawnSync } from 'child_process'
import { expect } from 'chai'
import { BIN, DmemfsMount, ok, stopAll, tempDir } from './harness'

/** Runs a python3 script in `cwd`; its stdout, or an error with its stderr. */
function py (cwd: string, script: string): string {
  const r = spawnSync('python3', ['-c', script], { cwd, encoding: 'utf8', timeout: 60000 })
  if (r.status !== 0) throw new Error(`python3 exited ${r.status}: ${r.stderr}`)
  return r.stdout
}

/** Runs a command with bash in `cwd`; its stdout as bytes. */
function shBytes (cmd: string, cwd: string): { status: number, stdout: Buffer, stderr: string } {
  const r = spawnSync('bash', ['-c', cmd], { cwd, timeout: 60000 })
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr.toString() }
}

// Names mixing invalid UTF-8 with valid multi-byte UTF-8 (as Python bytes literals).
const MIXED = [
  "b'caf\\xc3\\xa9\\xff'", // valid é, then a byte that is never UTF-8
  "b'caf\\xe9'", // latin-1 é
  "b'caf\\xe8'",
  "b'\\xe2\\x82\\xac\\xe2\\x82'", // € then a cut sequence
  "b'\\xed\\xa0\\x80x'", // an encoded surrogate
  "b'\\xc0\\xaf'", // an overlong '/'
  "b'\\xf4\\x90\\x80\\x80'", // above U+10FFFF
  "b'\\xf0\\x9f\\x98\\x80\\x80'", // an emoji and a stray continuation byte
  "b'\\xef\\xbf\\xbd'" // U+FFFD itself, what names used to collapse into
]

describe('names are bytes', function () {
  let m: DmemfsMount

  before(async function () {
    m = await DmemfsMount.start('size=64M')
  })

  after(stopAll)

  it('one file per byte 0x01-0xff but "/" (and "." alone): listdir gives the exact names, each its own data', function () {
    const out = py(m.mnt, `
import os
os.mkdir(b'every')
names = [bytes([b]) for b in range(1, 256) if b not in (0x2f, 0x2e)] + [b'..x', b'.\\xff']
for n in names:
    with open(b'every/' + n, 'wb') as f: f.write(n.hex().encode())
got = os.listdir(b'every')
assert sorted(got) == sorted(names), (len(got), sorted(set(names) - set(got))[:5])
for n in names:
    with open(b'every/' + n, 'rb') as f: assert f.read() == n.hex().encode(), n
print(len(got))
`)
    expect(out).to.equal('255\n')
  })

  it('names mixing invalid UTF-8 with valid multi-byte UTF-8 stay distinct through create, open, rename, link and unlink', function () {
    const out = py(m.mnt, `
import os
os.mkdir(b'mixed')
os.chdir(b'mixed')
names = [${MIXED.join(', ')}]
for n in names:
    with open(n, 'wb') as f: f.write(n)
assert sorted(os.listdir(b'.')) == sorted(names), os.listdir(b'.')
for n in names:
    with open(n, 'rb') as f: assert f.read() == n, n
    os.rename(n, n + b'\\xfe')
    os.link(n + b'\\xfe', b'\\xfd' + n)
    assert os.stat(n + b'\\xfe').st_nlink == 2
    os.unlink(n + b'\\xfe')
    with open(b'\\xfd' + n, 'rb') as f: assert f.read() == n, n
assert sorted(os.listdir(b'.')) == sorted(b'\\xfd' + n for n in names), os.listdir(b'.')
os.mkdir(b'\\xff\\xfe')
os.rename(b'\\xfd' + names[0], b'\\xff\\xfe/' + names[1])
assert os.listdir(b'\\xff\\xfe') == [names[1]]
print('ok')
`)
    expect(out).to.equal('ok\n')
  })

  it("tar x of an archive holding $'caf\\xe9' and $'caf\\xe8' leaves two files with their own data; cp -r copies such a tree", function () {
    const src = tempDir()
    ok("mkdir t && printf one > t/$'caf\\xe9' && printf two > t/$'caf\\xe8' && mkdir t/$'d\\xff' && " +
      "printf three > t/$'d\\xff'/$'\\xc3\\xa9\\xe9' && tar cf t.tar t", src)
    m.ok(`mkdir x && tar xf ${src}/t.tar -C x`)
    expect(m.ok("cat x/t/$'caf\\xe9'; echo; cat x/t/$'caf\\xe8'; echo; cat x/t/$'d\\xff'/$'\\xc3\\xa9\\xe9'")).to.equal('one\ntwo\nthree')
    expect(m.ok('ls x/t | wc -l')).to.equal('3\n')
    m.ok(`diff -r ${src}/t x/t`)
    m.ok(`cp -r ${src}/t c1 && diff -r ${src}/t c1`)
    m.ok(`cp -r c1 c2 && diff -r ${src}/t c2`)
    m.ok(`cp -r c2 ${src}/back && diff -r ${src}/t ${src}/back`)
  })

  it('symlink targets keep their bytes (readlink, and following them)', function () {
    const out = py(m.mnt, `
import os
os.mkdir(b'links')
os.chdir(b'links')
with open(b'caf\\xe9', 'wb') as f: f.write(b'e9')
with open(b'caf\\xe8', 'wb') as f: f.write(b'e8')
for t in [b'caf\\xe9', b'caf\\xe8', b'../links/caf\\xe9', b'dangling\\xff\\xc3\\xa9\\n\\\\x']:
    os.symlink(t, b'l-' + t.replace(b'/', b'_'))
    assert os.readlink(b'l-' + t.replace(b'/', b'_')) == t
    assert os.lstat(b'l-' + t.replace(b'/', b'_')).st_size == len(t)
with open(b'l-caf\\xe9', 'rb') as f: assert f.read() == b'e9'
with open(b'l-caf\\xe8', 'rb') as f: assert f.read() == b'e8'
print('ok')
`)
    expect(out).to.equal('ok\n')
  })

  it('xattr names that differ only in bytes that are not UTF-8 are distinct', function () {
    const out = py(m.mnt, `
import os
open('xa', 'w').close()
names = [b'user.caf\\xe9', b'user.caf\\xe8', b'user.caf\\xc3\\xa9', b'user.\\xff']
for i, n in enumerate(names):
    os.setxattr(b'xa', n, b'v%d' % i)
for i, n in enumerate(names):
    assert os.getxattr(b'xa', n) == b'v%d' % i, n
assert sorted(os.listxattr(b'xa')) == sorted(n.decode('utf-8', 'surrogateescape') for n in names), os.listxattr(b'xa')
os.removexattr(b'xa', names[0])
assert os.getxattr(b'xa', names[1]) == b'v1'
print('ok')
`)
    expect(out).to.equal('ok\n')
  })

  it('NAME_MAX is 255 bytes, whatever the bytes', function () {
    const out = py(m.mnt, `
import os, errno
for n in [b'\\xff' * 255, b'\\xc3\\xa9' * 127 + b'x', b'\\xe2\\x82\\xac' * 85]:
    open(n, 'w').close(); os.unlink(n)
for n in [b'\\xff' * 256, b'\\xc3\\xa9' * 128]:
    try:
        open(n, 'w')
        raise SystemExit('created a name of %d bytes' % len(n))
    except OSError as e:
        assert e.errno == errno.ENAMETOOLONG, e
print('ok')
`)
    expect(out).to.equal('ok\n')
  })

  it('a name with a newline and other bytes is one line of .dmem/pfns (seq_file escapes) and exact in the JSON report', function () {
    const out = py(m.mnt, `
import os, json
name = b'new\\nline \\\\x\\t\\xff\\xc3\\xa9'
with open(name, 'wb') as f: f.write(b'z' * 4096)
ino = os.stat(name).st_ino
with open('.dmem/pfns', 'rb') as f: lines = f.read().split(b'\\n')
mine = [l for l in lines if l.split(b' ')[0] == str(ino).encode()]
assert len(mine) == 1, lines
assert mine[0].endswith(b' /new\\\\012line\\\\040\\\\134x\\\\011\\xff\\xc3\\xa9'), mine[0]
pfn = mine[0].split(b' ')[2].decode()
fd = os.open('.dmem/mce', os.O_RDWR)
os.write(fd, (pfn + ' json\\n').encode())
report = json.loads(os.read(fd, 1 << 20))
os.close(fd)
assert os.fsencode(report['file']['path']) == b'/' + name, report['file']
with open('.dmem/mce', 'rb') as f: text = f.read()
file_lines = [l for l in text.split(b'\\n') if l.startswith(b'file ')]
assert file_lines == [b'file /new\\\\012line\\\\040\\\\134x\\\\011\\xff\\xc3\\xa9 ino %d pgoff 0x0 offset 0' % ino], text
os.unlink(name)
print(pfn)
`)
    const pfn = out.trim()
    expect(pfn).to.match(/^0x[0-9a-f]+$/)
    // The CLI's report, as text and as JSON, carries the same bytes (one fresh file for each failure).
    const name = "$'new\\nline \\\\x\\t\\xff\\xc3\\xa9'"
    const pfnOfName = (): string => {
      m.ok(`rm -f ${name} && printf data > ${name}`)
      const pfns = shBytes('cat .dmem/pfns', m.mnt).stdout.toString('latin1').split('\n')
      const line = pfns.find(l => l.endsWith(' /new\\012line\\040\\134x\\011\xff\xc3\xa9'))
      expect(line, pfns.join('\n')).to.be.a('string')
      return line!.split(' ')[2]
    }
    const cli = shBytes(`${BIN} mce . ${pfnOfName()}`, m.mnt)
    expect(cli.status, cli.stderr).to.equal(0)
    expect(cli.stdout.toString('latin1')).to.include('\nfile /new\\012line\\040\\134x\\011\xff\xc3\xa9 ino ')
    const json = shBytes(`${BIN} mce . ${pfnOfName()} --json | python3 -c "import json, os, sys; ` +
      `sys.stdout.buffer.write(os.fsencode(json.load(sys.stdin)['file']['path']))"`, m.mnt)
    expect(json.status, json.stderr).to.equal(0)
    expect(json.stdout.toString('latin1')).to.equal('/new\nline \\x\t\xff\xc3\xa9')
  })

  it('dmemfs pfn finds a file whose name is not UTF-8 and prints its name exactly', function () {
    m.ok("head -c 8192 /dev/zero > $'caf\\xe9' && head -c 4096 /dev/zero > $'caf\\xe8'")
    const r = shBytes(`${BIN} pfn $'caf\\xe9'`, m.mnt)
    expect(r.status, r.stderr).to.equal(0)
    expect(r.stdout.toString('latin1')).to.match(/^caf\xe9: 1 run, 2 frames of 4K \(size 8192 bytes\)\n/)
    const r2 = shBytes(`${BIN} pfn $'caf\\xe8' --json`, m.mnt)
    expect(r2.status, r2.stderr).to.equal(0)
    const runs = JSON.parse(r2.stdout.toString()) as Array<{ frames: number }>
    expect(runs.map(x => x.frames)).to.deep.equal([1])
  })
})

describe('a rename to a .fuse_hidden name is a rename', function () {
  let m: DmemfsMount

  before(async function () {
    m = await DmemfsMount.start('size=16M')
  })

  after(stopAll)

  it('mv doc .fuse_hidden0000abcd00000001 keeps the data and the free count; ls -a shows it', function () {
    m.ok('echo important > doc')
    const free = m.stat().free_dpages
    m.ok('mv doc .fuse_hidden0000abcd00000001')
    expect(m.stat().free_dpages).to.equal(free)
    expect(m.ok('ls -a').split('\n')).to.include('.fuse_hidden0000abcd00000001')
    expect(m.ok('cat .fuse_hidden0000abcd00000001')).to.equal('important\n')
    m.ok('mv .fuse_hidden0000abcd00000001 doc2')
    expect(m.ok('cat doc2')).to.equal('important\n')
    m.ok('rm doc2')
  })

  it('mv of an open file to such a name keeps it after the close', function () {
    m.ok('echo kept > open-doc')
    const free = m.stat().free_dpages
    const out = m.ok('exec 3< open-doc && mv open-doc .fuse_hidden0000000200000001 && cat <&3 && exec 3<&- && ' +
      'cat .fuse_hidden0000000200000001 && ls -a')
    expect(out).to.match(/^kept\nkept\n/)
    expect(out.split('\n')).to.include('.fuse_hidden0000000200000001')
    expect(m.stat().free_dpages).to.equal(free)
    m.ok('rm .fuse_hidden0000000200000001')
  })

  it("libfuse's own hide still hides: unlink of an open file in a directory, then rmdir of it", function () {
    const free = m.stat().free_dpages
    const out = m.ok('mkdir dir && echo held > dir/f && exec 3< dir/f && rm dir/f && ls -a dir && cat <&3 && ' +
      'rmdir dir && exec 3<&- && ls -a')
    expect(out).to.not.match(/fuse_hidden/)
    expect(out).to.match(/^\.\n\.\.\nheld\n/)
    expect(out.split('\n')).to.not.include('dir')
    expect(m.stat().free_dpages).to.equal(free)
  })
})

describe('xattr replies of any size', function () {
  let m: DmemfsMount

  before(async function () {
    m = await DmemfsMount.start('size=16M')
  })

  after(stopAll)

  it('os.getxattr of values up to 64 KiB and os.listxattr of many names round-trip', function () {
    const out = py(m.mnt, `
import os
open('v', 'w').close()
for size in [0, 1, 127, 128, 129, 200, 4096, 65535, 65536]:
    value = os.urandom(size)
    os.setxattr('v', 'user.v%d' % size, value)
    assert os.getxattr('v', 'user.v%d' % size) == value, size
open('l', 'w').close()
names = ['user.name-%03d-%s' % (i, 'x' * 40) for i in range(300)]
for n in names:
    os.setxattr('l', n, b'1')
assert sorted(os.listxattr('l')) == names
print('ok')
`)
    expect(out).to.equal('ok\n')
  })

  it('a size probe gets the size; a buffer too small gets ERANGE (getxattr and listxattr)', function () {
    const out = py(m.mnt, `
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
libc.getxattr.restype = ctypes.c_ssize_t
libc.listxattr.restype = ctypes.c_ssize_t
open('r', 'w').close()
os.setxattr('r', 'user.big', b'b' * 1000)
os.setxattr('r', 'user.other', b'o')
assert libc.getxattr(b'r', b'user.big', None, 0) == 1000
buf = ctypes.create_string_buffer(999)
assert libc.getxattr(b'r', b'user.big', buf, 999) == -1 and ctypes.get_errno() == errno.ERANGE
buf = ctypes.create_string_buffer(1000)
assert libc.getxattr(b'r', b'user.big', buf, 1000) == 1000 and buf.raw == b'b' * 1000
need = len(b'user.big\\0user.other\\0')
assert libc.listxattr(b'r', None, 0) == need, libc.listxattr(b'r', None, 0)
buf = ctypes.create_string_buffer(need - 1)
assert libc.listxattr(b'r', buf, need - 1) == -1 and ctypes.get_errno() == errno.ERANGE
buf = ctypes.create_string_buffer(need)
assert libc.listxattr(b'r', buf, need) == need
assert sorted(buf.raw.split(b'\\0')[:-1]) == [b'user.big', b'user.other']
print('ok')
`)
    expect(out).to.equal('ok\n')
  })

  it('setfattr and getfattr -d', function () {
    const big = 'q'.repeat(3000)
    m.ok(`touch g && setfattr -n user.small -v tiny g && setfattr -n user.big -v ${big} g && ` +
      "for i in $(seq 1 30); do setfattr -n user.attr$i -v value$i g; done")
    const dump = m.ok('getfattr -d g')
    expect(dump).to.include('user.small="tiny"\n')
    expect(dump).to.include(`user.big="${big}"\n`)
    for (let i = 1; i <= 30; i++) expect(dump).to.include(`user.attr${i}="value${i}"\n`)
    expect(m.ok('getfattr --only-values -n user.big g')).to.equal(big)
    m.ok('setfattr -x user.big g')
    const gone = m.sh('getfattr -n user.big g')
    expect(gone.status).to.not.equal(0)
    expect(gone.stderr).to.match(/No such attribute/)
  })
})
