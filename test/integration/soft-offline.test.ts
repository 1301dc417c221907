// Soft offline and the poisoned list on a real mount: a used dpage's data moves and the file reads the
// same through the mount, before and after; the retired PFN is named nowhere; .dmem/poisoned lists what
// was poisoned.

import { expect } from 'chai'
import { DmemfsMount, stopAll } from './harness'

describe('soft offline and .dmem/poisoned on a mount', function () {
  let m: DmemfsMount

  before(async () => { m = await DmemfsMount.start('size=16M') })
  after(stopAll)

  const pfnsOf = (name: string): string[] =>
    m.ok('cat .dmem/pfns').split('\n').filter(l => l.endsWith(' /' + name)).map(l => l.split(' ')[2])

  it('a used dpage: its data moves, the file reads the same, the old PFN is retired (offline, not poisoned)', () => {
    m.ok('head -c 16384 /dev/urandom > f')
    const sum = m.ok('sha256sum f')
    const [first] = pfnsOf('f')
    const victim = '0x' + (parseInt(first, 16) + 2).toString(16)
    const before = m.stat()
    m.ok(`echo ${victim} > .dmem/soft_offline`)
    expect(m.ok('cat .dmem/soft_offline')).to.match(/state used/).and.match(/new pfn 0x[0-9a-f]+ node 0/)
    expect(m.ok('sha256sum f')).to.equal(sum)
    expect(m.ok('cat .dmem/pfns')).to.not.include(` ${victim} `)
    const after = m.stat()
    expect(after.offline_dpages).to.equal(before.offline_dpages + 1)
    expect(after.poisoned_dpages).to.equal(before.poisoned_dpages)
    expect(after.free_dpages).to.equal(before.free_dpages - 1)
    m.ok('rm f')
    expect(m.stat().free_dpages).to.equal(before.free_dpages + 3)
  })

  it('refuses a poisoned PFN (EINVAL) and, with the pool full, a used one (EBUSY), changing nothing', () => {
    m.ok('echo 0x100800 > .dmem/mce')
    expect(m.sh('echo 0x100800 > .dmem/soft_offline').stderr).to.match(/Invalid argument/)
    expect(m.ok('cat .dmem/soft_offline')).to.match(/already poisoned/)
    m.sh('dd if=/dev/zero of=full bs=1M count=64 status=none')
    const [pfn] = pfnsOf('full')
    expect(m.sh(`echo ${pfn} > .dmem/soft_offline`).stderr).to.match(/Device or resource busy/)
    expect(pfnsOf('full')[0]).to.equal(pfn)
    m.ok('rm full')
  })

  it('.dmem/poisoned lists each poisoned dpage with what it held', () => {
    m.ok('head -c 8192 /dev/urandom > "g h"')
    const [first] = pfnsOf('g\\040h') // .dmem/pfns escapes the space as seq_file does
    m.ok(`echo "${first} must_kill" > .dmem/mce`)
    const lines = m.ok('cat .dmem/poisoned').trim().split('\n')
    expect(lines[0]).to.equal('# pfn dpage node state ino offset time flags path')
    expect(lines.some(l => /^0x100800 0x100800 0 free - - \S+ 0x0 -$/.test(l)), lines.join('\n')).to.equal(true)
    expect(lines.find(l => l.startsWith(first + ' '))).to.match(/ 0 used \d+ 0 \S+ 0x4 \/g\\040h$/)
  })
})

describe('corrected errors on a mount with ce_threshold=2', function () {
  let m: DmemfsMount

  before(async () => { m = await DmemfsMount.start('size=16M,ce_threshold=2') })
  after(stopAll)

  it('the second corrected error on a dpage soft-offlines it; the file keeps its data', () => {
    m.ok('head -c 8192 /dev/urandom > f')
    const sum = m.ok('sha256sum f')
    const pfn = m.ok('cat .dmem/pfns').split('\n').find(l => l.endsWith(' /f'))!.split(' ')[2]
    m.ok(`echo ${pfn} > .dmem/ce`)
    expect(m.ok('cat .dmem/ce')).to.match(/count 1 threshold 2/)
    expect(m.stat().offline_dpages).to.equal(0)
    m.ok(`echo ${pfn} > .dmem/ce`)
    expect(m.ok('cat .dmem/ce')).to.match(/count 2 threshold 2\nthreshold reached: soft offline/)
    expect(m.stat().offline_dpages).to.equal(1)
    expect(m.ok('cat .dmem/ce_counts')).to.include(`${pfn} 0 2`)
    expect(m.ok('sha256sum f')).to.equal(sum)
    expect(m.ok('cat .dmem/pfns')).to.not.include(` ${pfn} `)
  })
})
