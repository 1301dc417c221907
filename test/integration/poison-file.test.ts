// Poison kept across mounts: -o poison_file=PATH records the poisoned PFNs as they change; mounting the same
// pool again re-applies them before any allocation; a file of another pool layout (or no poison file at
// all) is refused with one clear line, and nothing is mounted.

import { expect } from 'chai'
import { spawnSync } from 'child_process'
import * as fs from 'fs'
import * as path from 'path'
import { BIN, DmemfsMount, isMounted, sh, sleep, stopAll, tempDir } from './harness'
import { pfnAt, pfnRuns as runs } from './children'

const MAGIC = '# dmemfs poison file v1'
const LAYOUT_16M = 'layout dpage_shift=12 regions=0:0x100000000+4096' // size=16M: 4096 dpages of 4K from 4 GiB
const LAST_PFN = 0x100fff // the pool's last frame: free until the pool fills

function hex (n: number): string {
  return '0x' + n.toString(16)
}

function mce (m: DmemfsMount, pfn: number): { state: string, result: string } {
  const r = sh(`${BIN} mce ${m.mnt} ${hex(pfn)} --json`)
  if (r.status !== 0) throw new Error(`dmemfs mce failed: ${r.stderr}`)
  return JSON.parse(r.stdout) as { state: string, result: string }
}

const tried: string[] = []

/** A mount that is expected to fail: run in the foreground, given 15 s before it is stopped. */
function mountFails (options: string): { status: number | null, stderr: string, mnt: string } {
  const mnt = tempDir()
  tried.push(mnt)
  const env = { ...process.env, LD_LIBRARY_PATH: undefined }
  const r = spawnSync(BIN, ['mount', mnt, '-o', options], { encoding: 'utf8', timeout: 15000, env })
  return { status: r.status, stderr: r.stderr ?? '', mnt }
}

describe('poison file', function () {
  let pf: string

  beforeEach(function () {
    pf = path.join(tempDir(), 'pf')
  })

  afterEach(async function () {
    await stopAll()
    for (const mnt of tried.splice(0)) if (isMounted(mnt)) spawnSync('umount', ['-l', mnt])
  })

  it('records poisoned PFNs and re-applies them at the next mount of the same pool; unpoison is written back', async function () {
    const opts = `size=16M,poison_file=${pf}`
    const m1 = await DmemfsMount.start(opts)
    m1.ok('head -c 8192 /dev/urandom > f')
    const used = pfnAt(m1.path('f'), 4096)
    expect(mce(m1, LAST_PFN).state).to.equal('free')
    expect(mce(m1, used).state).to.equal('used')
    const recorded = [MAGIC, LAYOUT_16M, hex(used), hex(LAST_PFN), ''].join('\n')
    expect(fs.readFileSync(pf, 'utf8')).to.equal(recorded)
    expect(fs.existsSync(pf + '.tmp')).to.equal(false)

    // A dpage a file still owns stays poisoned: nothing to write back.
    const refused = sh(`${BIN} unpoison ${m1.mnt} ${hex(used)}`)
    expect(refused.status).to.equal(1)
    expect(fs.readFileSync(pf, 'utf8')).to.equal(recorded)
    const st1 = m1.stat()
    expect(st1.poisoned_dpages).to.equal(2)
    expect(await m1.stop()).to.equal(0)
    expect(fs.readFileSync(pf, 'utf8')).to.equal(recorded)

    // The same pool again, on another mount point.
    const m2 = await DmemfsMount.start(opts)
    const st2 = m2.stat()
    expect(st2.total_dpages).to.equal(4096)
    expect(st2.poisoned_dpages).to.equal(2)
    expect(st2['node0.poisoned_dpages']).to.equal(2)
    expect(st2.free_dpages).to.equal(st2.total_dpages - 2)
    const again = mce(m2, used)
    expect(again.state).to.equal('already-poisoned')
    expect(again.result).to.equal(`Memory failure: ${hex(used)}: already hardware poisoned`)
    expect(mce(m2, LAST_PFN).state).to.equal('already-poisoned')
    expect(sh(`${BIN} mce ${m2.mnt} ${hex(LAST_PFN)}`).stdout).to.match(/already hardware poisoned/)
    // Applied before any allocation: filling the pool never hands out either dpage.
    m2.sh('dd if=/dev/zero of=fill bs=1M count=20 status=none')
    expect(fs.statSync(m2.path('fill')).size).to.equal((st2.total_dpages - 2) * 4096)
    const frames = runs(m2.path('fill')).flatMap(r => Array.from({ length: r.frames }, (_, i) => parseInt(r.pfn, 16) + i))
    expect(frames).to.have.length(4094)
    expect(frames).to.not.include(used)
    expect(frames).to.not.include(LAST_PFN)
    m2.ok('rm fill')

    // Both dpages are unowned now; unpoisoning one is written back.
    const r = sh(`${BIN} unpoison ${m2.mnt} ${hex(LAST_PFN)}`)
    expect(r.status, r.stderr).to.equal(0)
    expect(r.stdout).to.match(/Software-unpoisoned free page/)
    expect(fs.readFileSync(pf, 'utf8')).to.equal([MAGIC, LAYOUT_16M, hex(used), ''].join('\n'))
    expect(m2.stat().poisoned_dpages).to.equal(1)
    expect(await m2.stop()).to.equal(0)

    const m3 = await DmemfsMount.start(opts)
    const st3 = m3.stat()
    expect(st3.poisoned_dpages).to.equal(1)
    expect(st3.free_dpages).to.equal(st3.total_dpages - 1)
  })

  it('without poison_file nothing is kept', async function () {
    const m1 = await DmemfsMount.start('size=16M')
    mce(m1, LAST_PFN)
    await m1.stop()
    const m2 = await DmemfsMount.start('size=16M')
    expect(m2.stat().poisoned_dpages).to.equal(0)
  })

  it('a poison file of another pool layout is refused with one line naming it; nothing is mounted', async function () {
    const m = await DmemfsMount.start(`size=16M,poison_file=${pf}`)
    mce(m, LAST_PFN)
    expect(await m.stop()).to.equal(0)
    const recorded = fs.readFileSync(pf, 'utf8')

    for (const other of ['size=32M', 'size=16M,pagesize=2M', 'dmem=16M:4K,nodes=2', 'dmem=16M@0x200000000:4K']) {
      const r = mountFails(`${other},poison_file=${pf}`)
      expect(r.status, other).to.equal(1)
      const lines = r.stderr.trim().split('\n')
      expect(lines, r.stderr).to.have.length(1)
      expect(lines[0]).to.include(pf)
      expect(lines[0]).to.include('another pool layout')
      expect(lines[0]).to.match(/^dmemfs: poison file /)
      expect(isMounted(r.mnt), other).to.equal(false)
      expect(fs.readdirSync(r.mnt)).to.deep.equal([])
    }
    // The file is left as it was, and still good for its own pool.
    expect(fs.readFileSync(pf, 'utf8')).to.equal(recorded)
    const again = await DmemfsMount.start(`size=16M,poison_file=${pf}`)
    expect(again.stat().poisoned_dpages).to.equal(1)
  })

  it('a file that is not a poison file is refused too', function () {
    fs.writeFileSync(pf, 'hello\n')
    const r = mountFails(`size=16M,poison_file=${pf}`)
    expect(r.status).to.equal(1)
    expect(r.stderr.trim().split('\n')).to.have.length(1)
    expect(r.stderr).to.include(`poison file ${pf} is not a dmemfs poison file`)
    expect(isMounted(r.mnt)).to.equal(false)
    expect(fs.readFileSync(pf, 'utf8')).to.equal('hello\n')
  })

  it('a poison file in a missing directory is refused at mount with one line; no directory is created', function () {
    const deep = path.join(path.dirname(pf), 'a', 'b', 'pf')
    const r = mountFails(`size=16M,poison_file=${deep}`)
    expect(r.status).to.equal(1)
    const lines = r.stderr.trim().split('\n')
    expect(lines, r.stderr).to.have.length(1)
    expect(lines[0]).to.equal(`dmemfs: poison file directory ${path.dirname(deep)} does not exist ` +
      '(it is not created: make it, or choose another poison_file)')
    expect(isMounted(r.mnt)).to.equal(false)
    expect(fs.existsSync(path.join(path.dirname(pf), 'a'))).to.equal(false)
  })

  it('a poison file in a directory that cannot be written (a read-only filesystem) is refused at mount', function () {
    const ro = tempDir()
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', ro])
    expect(mounted.status, String(mounted.stderr)).to.equal(0)
    try {
      const r = mountFails(`size=16M,poison_file=${ro}/pf`)
      expect(r.status).to.equal(1)
      expect(r.stderr.trim().split('\n'), r.stderr).to.have.length(1)
      expect(r.stderr).to.equal(`dmemfs: cannot write poison file ${ro}/pf: directory ${ro}: EROFS\n`)
      expect(isMounted(r.mnt)).to.equal(false)
    } finally {
      spawnSync('umount', [ro])
    }
  })

  it('a save that fails later (the directory removed) logs one line each; nothing is re-created, the pool goes on', async function () {
    const dir = path.join(path.dirname(pf), 'kept')
    fs.mkdirSync(dir)
    const file = path.join(dir, 'pf')
    const m = await DmemfsMount.start(`size=16M,poison_file=${file}`)
    fs.rmSync(dir, { recursive: true })
    expect(mce(m, LAST_PFN).state).to.equal('free')
    expect(mce(m, LAST_PFN - 1).state).to.equal('free')
    await sleep(100)
    const failures = m.stdout.split('\n').filter(l => l.includes('cannot save poison'))
    expect(failures, m.stdout).to.have.length(2)
    for (const line of failures) expect(line).to.match(new RegExp(`^dmemfs: cannot save poison to ${file}: ENOENT: `))
    expect(fs.existsSync(dir)).to.equal(false)
    expect(m.stat().poisoned_dpages).to.equal(2)
    expect(await m.stop()).to.equal(0)
  })

  it('the documented default, /var/lib/dmemfs/poison, has its directory made at mount', async function () {
    const dir = '/var/lib/dmemfs'
    const file = path.join(dir, 'poison')
    // A real poison file of this machine is put aside (it may be of another pool) and put back.
    const aside = path.join(tempDir(), 'poison')
    const saved = fs.existsSync(file)
    if (saved) fs.copyFileSync(file, aside)
    const existed = fs.existsSync(dir)
    try {
      if (existed) fs.rmSync(file, { force: true })
      if (existed && fs.readdirSync(dir).length === 0) fs.rmdirSync(dir) // show that mounting makes it
      const m = await DmemfsMount.start('size=16M,poison_file')
      expect(fs.statSync(dir).isDirectory()).to.equal(true)
      expect(await m.stop()).to.equal(0)
    } finally {
      if (saved) fs.copyFileSync(aside, file)
      else if (!existed) fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
