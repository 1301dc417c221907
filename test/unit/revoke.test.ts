// Unit tests of the revocation's edges without a mount: which paths it tries, in which order, and what it
// reports; and, through the FUSE adapter, that a file with a poisoned dpage is opened direct_io and that
// `.dmem/mce` answers only once revocation and delivery are done, leaving out the writer when asked.

import { expect } from 'chai'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { spawn } from 'child_process'
import { ControlDir } from '../../src/control/control'
import { FuseAdapter } from '../../src/fuse/operations'
import { Revocation, RevokeTarget } from '../../src/mce/memory-failure'
import { invocationOf } from '../../src/mce/procfs'
import { revokeFile, revokePaths } from '../../src/mce/revoke'
import { MiB } from '../../src/pool/layout'
import { createFile, fakeEnv, makeSb, O_RDWR, pfnOfIndex } from './mce-fixtures'

const FOPEN_DIRECT_IO = 1
const VA = 0x7f0000000000

describe('revocation', () => {
  const target: RevokeTarget = {
    path: '/dir/f',
    holders: [
      { pid: 10, fds: [3, 5], mappings: [] },
      { pid: 11, fds: [], mappings: [{ start: VA, end: VA + 0x2000, pgoff: 0, perms: 'rw-s' }] }
    ]
  }

  it('tries the file\'s name first, then each holder\'s descriptors and mappings', () => {
    expect(revokePaths('/mnt', target)).to.deep.equal([
      '/mnt/dir/f', '/proc/10/fd/3', '/proc/10/fd/5', `/proc/11/map_files/${VA.toString(16)}-${(VA + 0x2000).toString(16)}`
    ])
    expect(revokePaths('/mnt', { ...target, path: null })[0]).to.equal('/proc/10/fd/3')
  })

  it('stops at the first path that opens, and says what failed before it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmemfs-revoke-'))
    try {
      fs.writeFileSync(path.join(dir, 'f'), 'x')
      const ok = await revokeFile(dir, { path: '/f', holders: [] })
      expect(ok.via).to.equal(path.join(dir, 'f'))
      expect(ok.failed).to.deep.equal([])
      // An unlinked file reached through a live descriptor of this very process.
      const fd = fs.openSync(path.join(dir, 'f'), 'r')
      try {
        const r = await revokeFile(dir, { path: '/gone', holders: [{ pid: process.pid, fds: [fd], mappings: [] }] })
        expect(r.via).to.equal(`/proc/${process.pid}/fd/${fd}`)
        expect(r.failed).to.deep.equal([{ via: `${dir}/gone`, error: 'ENOENT' }])
      } finally {
        fs.closeSync(fd)
      }
      const none: Revocation = await revokeFile(dir, { path: null, holders: [{ pid: 999999999, fds: [3], mappings: [] }] })
      expect(none.via).to.equal(null)
      expect(none.failed).to.deep.equal([{ via: '/proc/999999999/fd/3', error: 'ENOENT' }])
      expect(none.ms).to.be.a('number')
    } finally {
      fs.rmSync(dir, { recursive: true })
    }
  })
})

describe('the FUSE adapter after a memory failure', () => {
  it('opens a file with a poisoned dpage direct_io, from then on; other files and earlier opens as before', async () => {
    const sb = makeSb({ size: MiB, nodes: 1, shift: 12 })
    const f = createFile(sb, '/f', 8192)
    createFile(sb, '/g', 8192)
    const dir = new ControlDir(sb, fakeEnv())
    const ops = new FuseAdapter(sb, dir).operations()
    const opened: Array<[string, number | undefined]> = []
    const open = (p: string) => ops.open!(p, O_RDWR, (err, fh, flags) => { expect(err).to.equal(0); opened.push([p, flags]) })
    open('/f')
    const reply = await dir.files.get('mce')!.write!(`${pfnOfIndex(sb, f, 1)}\n`)
    expect(reply.errno).to.equal(0)
    open('/f')
    open('/g')
    expect(opened).to.deep.equal([['/f', 0], ['/f', FOPEN_DIRECT_IO], ['/g', 0]])
  })

  it('answers a write to .dmem/mce once revocation and delivery are done, and leaves out the writer when asked', async () => {
    const sb = makeSb({ size: MiB, nodes: 1, shift: 12 })
    const f = createFile(sb, '/f', 8192)
    const holders = [
      { pid: 50, comm: 'cli', fds: [5], mappings: [] },
      { pid: 51, comm: 'bash', fds: [5], mappings: [] }
    ]
    const env = fakeEnv({ holders })
    env.processOf = tid => ({ pid: tid === 5001 ? 50 : tid, comm: 'x' }) // thread 5001 of the CLI
    let releaseRevoke = (): void => {}
    env.revoke = () => new Promise(resolve => { releaseRevoke = () => resolve({ via: '/f', ms: 3, failed: [] }) })
    const ctx = { uid: 0, gid: 0, pid: 5001, umask: 0 }
    const ops = new FuseAdapter(sb, new ControlDir(sb, env), () => {}, () => ctx).operations()
    let fh = -1
    ops.open!('/.dmem/mce', O_RDWR, (err, h) => { expect(err).to.equal(0); fh = h! })
    const text = Buffer.from(`${pfnOfIndex(sb, f, 0)} exclude_writer\n`)
    let answered: number | null = null
    ops.write!('/.dmem/mce', fh, text, text.length, 0, n => { answered = n })
    await new Promise(resolve => setImmediate(resolve))
    expect(answered, 'no answer while the revocation runs').to.equal(null)
    releaseRevoke()
    await new Promise(resolve => setImmediate(resolve))
    expect(answered).to.equal(text.length)
    const buf = Buffer.alloc(4096)
    let n = 0
    ops.read!('/.dmem/mce', fh, buf, buf.length, 0, got => { n = got })
    const report = buf.toString('utf8', 0, n)
    expect(report).to.match(/^process 51 \(bash\) not-collected fd 5 /m)
    expect(report).to.not.match(/^process 50 /m)
    expect(report).to.include('revoked page cache and mappings by an open of /f (3.0 ms)')
  })
})

describe('the invocation to leave out of a report', () => {
  it('is the process and each parent whose command line ends with its arguments, as npx titles itself', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmemfs-invocation-'))
    const child = path.join(dir, 'cli.js')
    fs.writeFileSync(child, `console.log(process.pid); setTimeout(() => {}, 30000)`)
    // npm sets its title to `npm exec dmemfs ARGS`, which overwrites its command line.
    const launcher = spawn(process.execPath, ['-e', `
process.title = 'npm exec dmemfs mce mnt 0x100200 --must-kill'
require('child_process').spawn(process.execPath, [${JSON.stringify(child)}, 'mce', 'mnt', '0x100200', '--must-kill'], { stdio: 'inherit' })
`], { stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      const cli = Number(await new Promise<string>(resolve => launcher.stdout!.once('data', (d: Buffer) => resolve(d.toString()))))
      expect(fs.readFileSync(`/proc/${launcher.pid}/cmdline`, 'utf8')).to.match(/^npm exec dmemfs mce mnt 0x100200 --must-kill\0/)
      // The walk stops at the launcher's parent, this test, which runs no such command.
      expect(invocationOf(cli)).to.deep.equal([cli, launcher.pid])
      expect(invocationOf(999999999)).to.deep.equal([])
      process.kill(cli, 'SIGKILL')
    } finally {
      launcher.kill('SIGKILL')
      fs.rmSync(dir, { recursive: true })
    }
  })
})
