// What the patched fuse-native (patches/) brings, seen on a real mount: nanosecond times, touch -a/-m,
// preserved mtimes, the caller's identity for new files and open handles, and loading without help.

import { expect } from 'chai'
import { spawn } from 'child_process'
import * as fs from 'fs'
import * as path from 'path'
import { BIN, DmemfsMount, ROOT, sh, stopAll, tempDir } from './harness'

describe('fuse-native fixes on a real mount', function () {
  let m: DmemfsMount

  before(async function () {
    m = await DmemfsMount.start('size=64M,allow_other,mode=1777')
  })

  after(stopAll)

  const stat = (fmt: string, file: string) => m.ok(`stat -c '${fmt}' ${file}`).trim()

  it('touch -d sets the modification time to the nanosecond', function () {
    m.ok("touch -d '2001-02-03 04:05:06.123456789 UTC' t")
    expect(stat('%y', 't')).to.equal('2001-02-03 04:05:06.123456789 +0000')
    expect(stat('%x', 't')).to.equal('2001-02-03 04:05:06.123456789 +0000')
  })

  it('touch -a changes only the access time, touch -m only the modification time', function () {
    m.ok("touch -d '2001-02-03 04:05:06 UTC' am")
    m.ok("touch -a -d '2010-01-01 00:00:00.5 UTC' am")
    expect(stat('%x|%y', 'am')).to.equal('2010-01-01 00:00:00.500000000 +0000|2001-02-03 04:05:06.000000000 +0000')
    m.ok("touch -m -d '2011-01-01 00:00:00.25 UTC' am")
    expect(stat('%x|%y', 'am')).to.equal('2010-01-01 00:00:00.500000000 +0000|2011-01-01 00:00:00.250000000 +0000')
  })

  it('cp -p and tar x preserve modification times', function () {
    m.ok("mkdir -p src && echo a > src/a && touch -d '2005-05-05 05:05:05.555555555 UTC' src/a")
    m.ok('cp -p src/a copied')
    expect(stat('%y', 'copied')).to.equal('2005-05-05 05:05:05.555555555 +0000')
    const tmp = tempDir()
    m.ok(`tar cf ${tmp}/t.tar src && mkdir out && tar xf ${tmp}/t.tar -C out`)
    expect(stat('%Y', 'out/src/a')).to.equal(stat('%Y', 'src/a'))
  })

  it('a file or directory created by another user is owned by that user', function () {
    const r = m.sh("setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'echo hi > by-nobody && mkdir dir-nobody'")
    expect(r.status, r.stderr).to.equal(0)
    expect(stat('%u:%g', 'by-nobody')).to.equal('65534:65534')
    expect(stat('%u:%g', 'dir-nobody')).to.equal('65534:65534')
    m.ok('echo root > by-root')
    expect(stat('%u:%g', 'by-root')).to.equal('0:0')
  })

  it('the memory-failure report names the opener of each handle', async function () {
    m.ok('head -c 8192 /dev/urandom > held')
    const child = spawn('python3', ['-c', "import os,sys\nfd=os.open('held', os.O_RDONLY)\nprint('ok', flush=True)\nsys.stdin.read()"],
      { cwd: m.mnt, stdio: ['pipe', 'pipe', 'inherit'] })
    try {
      await new Promise(resolve => child.stdout!.once('data', resolve))
      const runs = JSON.parse(sh(`${BIN} pfn ${m.path('held')} --json`).stdout) as Array<{ pfn: string }>
      const r = sh(`${BIN} mce ${m.mnt} ${runs[0].pfn} --json`)
      const report = JSON.parse(r.stdout) as { handles: Array<{ opener: number }>, processes: Array<{ pid: number, opener: boolean }> }
      expect(report.handles.map(h => h.opener)).to.deep.equal([child.pid])
      expect(report.processes.find(p => p.pid === child.pid)!.opener).to.equal(true)
      expect(fs.readFileSync(m.path('.dmem/mce'), 'utf8')).to.match(new RegExp(`handle \\d+ opener ${child.pid} \\(python3\\) \\(tracked via open handles\\)`))
    } finally {
      child.kill('SIGKILL')
    }
  })

  it('the daemon loads fuse-native without LD_LIBRARY_PATH', function () {
    expect(fs.existsSync(path.join(ROOT, '.lib')), 'postinstall fell back to the prebuilt binding').to.equal(false)
    const environ = fs.readFileSync(`/proc/${m.proc.pid}/environ`, 'utf8').split('\0')
    expect(environ.some(v => v.startsWith('LD_LIBRARY_PATH='))).to.equal(false)
  })
})
