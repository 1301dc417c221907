// fallocate(2) through a real mount: util-linux's fallocate, Python's posix_fallocate, punched holes,
// ENOSPC with nothing taken, and the modes dmemfs does not serve.

import { expect } from 'chai'
import { DmemfsMount, stopAll } from './harness'

describe('fallocate on a mount', function () {
  let m: DmemfsMount

  before(async () => { m = await DmemfsMount.start('size=16M') })
  after(stopAll)

  it('mode 0 takes dpages and sets the size; KEEP_SIZE takes them past the end', () => {
    const free = m.stat().free_dpages
    m.ok('fallocate -l 1M a')
    expect(m.ok('stat -c "%s %b" a').trim()).to.equal('1048576 2048')
    expect(m.stat().free_dpages).to.equal(free - 256)
    m.ok('echo hi > b; fallocate -n -l 64K b')
    expect(m.ok('stat -c "%s %b" b').trim()).to.equal('3 128')
    expect(m.ok('cat b')).to.equal('hi\n')
    m.ok('python3 -c "import os; fd = os.open(\'c\', os.O_CREAT | os.O_RDWR); os.posix_fallocate(fd, 0, 8192)"')
    expect(m.ok('stat -c "%s %b" c').trim()).to.equal('8192 16')
    m.ok('rm a b c')
    expect(m.stat().free_dpages).to.equal(free)
  })

  it('punching a hole frees whole dpages and zeroes the partial ones; the rest keeps its data', () => {
    m.ok('head -c 65536 /dev/urandom > d; cp d /tmp/dmemfs-fallocate-d')
    const free = m.stat().free_dpages
    m.ok('fallocate -p -o 6144 -l 20480 d')
    expect(m.stat().free_dpages).to.equal(free + 4)
    expect(m.ok('stat -c %s d').trim()).to.equal('65536')
    m.ok('python3 -c "b = bytearray(open(\'/tmp/dmemfs-fallocate-d\', \'rb\').read()); b[6144:26624] = bytes(20480); ' +
      'assert open(\'d\', \'rb\').read() == bytes(b)"; rm -f /tmp/dmemfs-fallocate-d d')
  })

  it('a range the pool cannot hold is ENOSPC and takes nothing; other modes EOPNOTSUPP', () => {
    const free = m.stat().free_dpages
    const r = m.sh('fallocate -l 64M big')
    expect(r.status).to.not.equal(0)
    expect(r.stderr).to.match(/No space left on device/)
    expect(m.stat().free_dpages).to.equal(free)
    m.ok('echo x > e')
    expect(m.sh('fallocate -z -l 4096 e').stderr).to.match(/Operation not supported/)
    expect(m.sh('fallocate -c -l 4096 e').stderr).to.match(/Operation not supported/)
    m.ok('rm -f big e')
  })
})
