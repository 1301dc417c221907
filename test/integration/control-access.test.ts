// The control files on a real mount owned by another user (uid=, mode=0777, allow_other): injection and
// PFNs stay root's, checked per request; stat and map are for everyone; read-only files and meaningless
// truncations are refused as debugfs would, never silently.

import { expect } from 'chai'
import * as fs from 'fs'
import { DmemfsMount, stopAll, tempDir } from './harness'

const NOBODY = 65534

describe('control files on a mount another user owns', function () {
  let m: DmemfsMount
  const asNobody = (cmd: string) => m.sh(`setpriv --reuid=${NOBODY} --regid=${NOBODY} --clear-groups bash -c '${cmd}'`)

  before(async () => {
    const mnt = tempDir()
    fs.chmodSync(mnt, 0o755)
    m = await DmemfsMount.start(`size=16M,uid=${NOBODY},gid=${NOBODY},mode=0777,allow_other`, mnt)
    m.ok('head -c 8192 /dev/urandom > data')
  })
  after(stopAll)

  it('the mount owner cannot inject, unpoison, trace or read PFNs; nothing changes', () => {
    const before = m.stat()
    for (const name of ['mce', 'unpoison', 'tracing_on', 'trace']) {
      const r = asNobody(`echo 0x100000 > .dmem/${name}`)
      expect(r.status, name).to.not.equal(0)
      expect(r.stderr, name).to.match(/Permission denied/)
    }
    for (const name of ['pfns', 'mce', 'trace', 'trace_pipe']) {
      expect(asNobody(`cat .dmem/${name}`).stderr, name).to.match(/Permission denied/)
    }
    expect(m.stat()).to.deep.equal(before)
    expect(m.stat().poisoned_dpages).to.equal(0)
  })

  it('a descriptor of .dmem/mce that root opened is refused to the mount owner on write', () => {
    const r = m.sh(`exec 5> .dmem/mce; setpriv --reuid=${NOBODY} --regid=${NOBODY} --clear-groups bash -c 'echo 0x100000 >&5'`)
    expect(r.status).to.not.equal(0)
    expect(r.stderr).to.match(/Permission denied/)
    expect(m.stat().poisoned_dpages).to.equal(0)
  })

  it('everyone reads stat and map; control files belong to root, the root directory to its owner', () => {
    expect(asNobody('cat .dmem/stat').stdout).to.match(/^free_dpages: \d+$/m)
    expect(asNobody('cat .dmem/map').stdout).to.match(/^region 0 node 0 /m)
    expect(m.ok('stat -c "%u:%g %a %n" . .dmem .dmem/mce .dmem/pfns .dmem/stat').trim().split('\n')).to.deep.equal([
      `${NOBODY}:${NOBODY} 777 .`, '0:0 755 .dmem', '0:0 600 .dmem/mce', '0:0 400 .dmem/pfns', '0:0 444 .dmem/stat'
    ])
  })

  it('root: read-only files refuse writing, meaningless truncations are EINVAL, echo > mce works', () => {
    expect(m.sh('echo x > .dmem/stat').stderr).to.match(/Permission denied/)
    expect(m.sh('echo x > .dmem/pfns').stderr).to.match(/Permission denied/)
    expect(m.sh('truncate -s 0 .dmem/mce').stderr).to.match(/Invalid argument/)
    expect(m.sh('truncate -s 5 .dmem/mce').stderr).to.match(/Invalid argument/)
    expect(m.sh('truncate -s 0 .dmem/stat').stderr).to.match(/Permission denied/)
    expect(m.sh('echo " 0x100000" > .dmem/mce').stderr).to.match(/Invalid argument/)
    expect(m.ok('cat .dmem/mce')).to.match(/leading blank/)
    expect(m.stat().poisoned_dpages).to.equal(0)
    m.ok('echo 0x100000 > .dmem/mce')
    expect(m.stat().poisoned_dpages).to.equal(1)
  })
})
