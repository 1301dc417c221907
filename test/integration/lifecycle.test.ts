// The daemon never leaves a dead mount behind: SIGINT, SIGTERM and SIGHUP (also a terminal that goes away)
// unmount and exit 0; losing standard output and error (a reader that left, as `| head -1`) does not end
// it; a fatal error (an uncaught exception, an unhandled rejection) unmounts, says why in one line and
// exits 1. After each, the mount point is a plain empty directory again and the next mount on it works.

import { expect } from 'chai'
import { ChildProcess, spawn, spawnSync } from 'child_process'
import * as fs from 'fs'
import * as path from 'path'
import { BIN, DmemfsMount, isMounted, sh, sleep, stopAll, tempDir } from './harness'

const POOL = 'size=16M'
const LAST_PFN = '0x100fff' // the 16M pool's last frame, free
// More than this machine's memory: such a daemon cannot start a process (fork fails with ENOMEM), so its
// fatal path must unmount through the child started before the pool.
const BIG_POOL = 'dmem=32G'
const EXIT_WITHIN_MS = 10000

const started = new Set<ChildProcess>()
const used = new Set<string>()

/** The mount point is a plain directory again: not mounted, stat works (no ENOTCONN), empty. */
function expectClean (mnt: string): void {
  expect(isMounted(mnt), `${mnt} still in mountinfo`).to.equal(false)
  expect(fs.statSync(mnt).isDirectory()).to.equal(true)
  expect(fs.readdirSync(mnt)).to.deep.equal([])
}

/** Mounts again on the same point, checks it serves, and unmounts. */
async function expectRemounts (mnt: string): Promise<void> {
  const again = await DmemfsMount.start(POOL, mnt)
  again.ok('echo again > f && cat f')
  expect(again.stat().total_dpages).to.equal(4096)
  expect(await again.stop()).to.equal(0)
  expectClean(mnt)
}

function exitOf (proc: ChildProcess): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve({ code: proc.exitCode, signal: proc.signalCode })
    const timer = setTimeout(() => reject(new Error(`no exit within ${EXIT_WITHIN_MS} ms`)), EXIT_WITHIN_MS)
    proc.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal })
    })
  })
}

/** Collects a child's output; resolves once `text` has appeared on its standard output. */
function waitOutput (proc: ChildProcess, text: string | RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = ''
    let err = ''
    const timer = setTimeout(() => reject(new Error(`'${text}' not seen within 15 s: ${out} ${err}`)), 15000)
    proc.stderr?.on('data', (d: Buffer) => { err += d.toString() })
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      if (typeof text === 'string' ? !out.includes(text) : !text.test(out)) return
      clearTimeout(timer)
      resolve(out)
    })
    proc.on('exit', code => reject(new Error(`exited ${code} before '${text}': ${out} ${err}`)))
  })
}

/** The daemon serving `mnt`, found by its command line (it runs inside a pipeline or a terminal here). */
function daemonPid (mnt: string): number {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue
    let argv: string[]
    try {
      argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0')
    } catch {
      continue
    }
    if (argv.some(a => a.endsWith('cli.js')) && argv.includes('mount') && argv.includes(mnt)) return Number(entry)
  }
  throw new Error(`no daemon for ${mnt}`)
}

/** A process's state, kernel wait channel and children's, for a diagnosis. */
function processState (pid: number): string {
  const one = (p: string): string => {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8')
      const wchan = fs.readFileSync(`/proc/${p}/wchan`, 'utf8')
      const argv = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').join(' ')
      return `${p} ${stat.split(') ')[1].split(' ')[0]} ${wchan} ${argv}`
    } catch {
      return `${p} gone`
    }
  }
  let children: string[] = []
  try {
    children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').filter(Boolean)
  } catch {
    // gone: no children to show
  }
  return [one(String(pid)), ...children.map(one)].join('; ')
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** A log line from the daemon: the memory-failure report is logged as well as returned. */
function makeLogLine (mnt: string): void {
  const r = sh(`${BIN} mce ${mnt} ${LAST_PFN}`)
  expect(r.status, r.stderr).to.equal(0)
}

describe('daemon lifecycle: no dead mount left behind', function () {
  this.timeout(60000)

  afterEach(async function () {
    await stopAll()
    for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL')
    started.clear()
    for (const mnt of used) {
      try {
        process.kill(daemonPid(mnt), 'SIGKILL')
      } catch {
        // no daemon left: the usual case
      }
      if (isMounted(mnt)) spawnSync('umount', ['-l', mnt])
    }
    used.clear()
  })

  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    it(`${signal} unmounts and exits 0; the next mount on the same point works`, async function () {
      const m = await DmemfsMount.start(POOL)
      m.ok('echo hello > f')
      expect(await m.stop(signal)).to.equal(0)
      expect(m.stdout).to.include(`dmemfs: ${signal}, unmounting ${m.mnt}`)
      expect(m.stderr).to.equal('')
      expectClean(m.mnt)
      await expectRemounts(m.mnt)
    })
  }

  it('a terminal that goes away (hangup of its pseudo-terminal) unmounts, exit 0', async function () {
    const mnt = tempDir()
    used.add(mnt)
    // The daemon runs as the session leader on a pseudo-terminal; closing the master side hangs it up.
    const script = `
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(${JSON.stringify(BIN)}, ['dmemfs', 'mount', ${JSON.stringify(mnt)}, '-o', '${POOL}'])
buf = b''
while b'dmemfs: mounted' not in buf:
    buf += os.read(fd, 4096)
print('mounted pid=%d' % pid, flush=True)
sys.stdin.readline()
os.close(fd)
_, status = os.waitpid(pid, 0)
print('exit=%d' % os.waitstatus_to_exitcode(status), flush=True)
`
    const py = spawn('python3', ['-c', script], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, LD_LIBRARY_PATH: undefined } })
    started.add(py)
    const pid = Number(/mounted pid=([0-9]+)/.exec(await waitOutput(py, '\n'))![1])
    expect(isMounted(mnt)).to.equal(true)
    fs.writeFileSync(path.join(mnt, 'f'), 'data')
    // The whole line: a pipe may hand it over in two pieces.
    const out = waitOutput(py, /exit=-?[0-9]+\n/)
    py.stdin!.write('close\n')
    // Should it hang, say where the daemon and its unmounter are.
    const timer = setTimeout(() => console.log(`daemon after 10 s: ${processState(pid)}`), 10000)
    try {
      expect(await out).to.match(/exit=0\n/)
    } finally {
      clearTimeout(timer)
    }
    expect((await exitOf(py)).code).to.equal(0)
    expectClean(mnt)
    await expectRemounts(mnt)
  })

  it('`dmemfs mount M 2>&1 | head -1`: log lines to the lost reader are dropped, the daemon serves on', async function () {
    const mnt = tempDir()
    used.add(mnt)
    const cmd = `${BIN} mount ${mnt} -o ${POOL} 2>&1 | head -1; echo "daemon exit=\${PIPESTATUS[0]}" >&2`
    const bash = spawn('bash', ['-c', cmd], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LD_LIBRARY_PATH: undefined } })
    started.add(bash)
    let stderr = ''
    bash.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
    expect(await waitOutput(bash, '\n')).to.match(/^dmemfs: mounted /)
    const pid = daemonPid(mnt)
    await sleep(200) // head has exited: the pipe has no reader
    for (let i = 0; i < 3; i++) makeLogLine(mnt) // each report is also logged: EPIPE
    expect(sh(`echo x > ${mnt}/.dmem/mce`).status).to.not.equal(0) // a refused request is logged too
    await sleep(300)
    expect(alive(pid), 'the daemon died of a log line').to.equal(true)
    expect(isMounted(mnt)).to.equal(true)
    fs.writeFileSync(path.join(mnt, 'f'), 'still here')
    expect(fs.readFileSync(path.join(mnt, 'f'), 'utf8')).to.equal('still here')
    process.kill(pid, 'SIGTERM')
    expect((await exitOf(bash)).code).to.equal(0)
    expect(stderr).to.equal('daemon exit=0\n')
    expectClean(mnt)
    await expectRemounts(mnt)
  })

  it('standard output and error closed by the reader: same, and SIGINT still unmounts with exit 0', async function () {
    const m = await DmemfsMount.start(POOL)
    m.proc.stdout!.destroy()
    m.proc.stderr!.destroy()
    makeLogLine(m.mnt)
    await sleep(300)
    expect(m.exitCode).to.equal(null)
    expect(m.stat().poisoned_dpages).to.equal(1)
    expect(await m.stop('SIGINT')).to.equal(0)
    expectClean(m.mnt)
    await expectRemounts(m.mnt)
  })

  it('SIGKILL, which no handler sees: the unmounter child still unmounts once the daemon is gone', async function () {
    const m = await DmemfsMount.start(POOL)
    m.proc.kill('SIGKILL')
    await m.waitExit()
    const deadline = Date.now() + 5000
    while (isMounted(m.mnt) && Date.now() < deadline) await sleep(20)
    expectClean(m.mnt)
    await expectRemounts(m.mnt)
  })

  it('an outside unmount ends the daemon with exit 0 and leaves a new mount on the same point alone', async function () {
    const old = await DmemfsMount.start(POOL)
    sh(`umount ${old.mnt}`)
    // Mounted again before the old daemon notices (it looks once a second) and exits.
    const next = await DmemfsMount.start(POOL, old.mnt)
    expect(await old.waitExit()).to.equal(0)
    expect(old.stdout).to.include(`dmemfs: ${old.mnt} was unmounted`)
    await sleep(300)
    expect(isMounted(next.mnt)).to.equal(true)
    next.ok('echo still > f && cat f')
    expect(await next.stop()).to.equal(0)
    expectClean(next.mnt)
  })

  it('a signal while a large pool is still being allocated ends the daemon at once; nothing is mounted', async function () {
    const mnt = tempDir()
    used.add(mnt)
    // Seconds of allocation (a Buffer a GiB), synchronous: no handler could run before its end.
    const proc = spawn(BIN, ['mount', mnt, '-o', 'dmem=2T,pagesize=2M'],
      { stdio: 'ignore', env: { ...process.env, LD_LIBRARY_PATH: undefined } })
    started.add(proc)
    await sleep(700)
    const sent = Date.now()
    proc.kill('SIGINT')
    const { signal } = await exitOf(proc)
    expect(Date.now() - sent, 'waited for the allocation').to.be.below(1500)
    expect(signal).to.equal('SIGINT')
    await sleep(100) // the unmounter child's `umount -l` of nothing
    expectClean(mnt)
  })

  describe('fatal errors', function () {
    let preload: string
    let trigger: string

    beforeEach(function () {
      const dir = tempDir()
      preload = path.join(dir, 'crash.js')
      trigger = path.join(dir, 'trigger')
      // Loaded into the daemon by NODE_OPTIONS: throws (or rejects) from a timer once the test says so.
      fs.writeFileSync(preload, `
const fs = require('fs')
const timer = setInterval(() => {
  if (!fs.existsSync(${JSON.stringify(trigger)})) return
  clearInterval(timer)
  if (fs.readFileSync(${JSON.stringify(trigger)}, 'utf8') === 'reject') Promise.reject(new Error('crash test rejection'))
  else throw new RangeError('crash test exception')
}, 20)
timer.unref()
`)
    })

    const cases = [
      { how: 'throw', what: 'uncaught exception', message: 'RangeError: crash test exception' },
      { how: 'reject', what: 'unhandled rejection', message: 'Error: crash test rejection' }
    ]
    for (const { how, what, message } of cases) {
      it(`an ${what} in a daemon too big to fork unmounts, says why in one line, exits 1`, async function () {
        const m = await DmemfsMount.start(BIG_POOL, tempDir(), { env: { NODE_OPTIONS: `--require ${preload}` } })
        m.ok('echo data > f')
        fs.writeFileSync(trigger, how)
        expect(await m.waitExit()).to.equal(1)
        const lines = m.stderr.trim().split('\n')
        expect(lines, m.stderr).to.have.length(1)
        expect(lines[0], lines[0]).to.match(new RegExp(`^dmemfs: fatal ${what}: ${message} \\(at .*crash\\.js:\\d+:\\d+\\); unmounting ${m.mnt}$`))
        expectClean(m.mnt)
        await expectRemounts(m.mnt)
      })
    }
  })
})
