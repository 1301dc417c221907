// A memory failure that programs feel, on a real mount with real processes: the kernel's cached copies of
// the file are revoked before `.dmem/mce` answers (a process that read the page through its mapping before
// the failure gets SIGBUS when it touches it again, EIO from read, and its other pages, bytes written
// through the mapping included, keep their data); the kernel's victims (mappings only; descriptor holders
// and the calling shell are listed, not signalled; the CLI is never listed); and no refused write is ever
// read back. The probe is a small C program with an SA_SIGINFO SIGBUS handler, compiled here.

import { expect } from 'chai'
import { ChildProcess, spawn, spawnSync } from 'child_process'
import * as fs from 'fs'
import * as path from 'path'
import { BIN, DmemfsMount, ROOT, sh, stopAll, tempDir } from './harness'
import { endChildren, OPEN_SCRIPT, pfnAt, startHolder } from './children'

const PAGE = 4096
const EIO = 5
const BUS_ADRERR = 2
const SI_USER = 0
const BUS_MCEERR_AR = 4
const BUS_MCEERR_AO = 5

interface JsonProcess {
  pid: number
  fds: number[]
  collected: boolean
  signal: string | null
  si_code: string | null
  si_addr_lsb: number | null
  vaddr: string | null
  sent: boolean | null
  way: string | null
  send_error?: string
  reason: string
  on_touch: { seed: string, simulated: string } | null
}

interface JsonReport {
  state: string
  processes: JsonProcess[]
  revocation: { via: string | null, ms: number, failed: Array<{ via: string, error: string }> } | null
  note?: string
}

function mce (m: DmemfsMount, pfn: number, ...flags: string[]): JsonReport {
  const r = sh(`${BIN} mce ${m.mnt} 0x${pfn.toString(16)} --json ${flags.join(' ')}`)
  if (r.status !== 0) throw new Error(`dmemfs mce failed: ${r.stderr}`)
  return JSON.parse(r.stdout) as JsonReport
}

let probeBin = ''

/** The SIGBUS probe (test/integration/sigbus-probe.c) mapping a file; answers one line per command. */
class Probe {
  private out = ''
  private readonly exited: Promise<void>
  private constructor (readonly proc: ChildProcess) {
    proc.stdout!.on('data', (d: Buffer) => { this.out += d.toString() })
    this.exited = new Promise(resolve => proc.on('exit', () => resolve()))
  }

  static async start (file: string, offset: number, length: number): Promise<Probe> {
    const proc = spawn(probeBin, [file, String(offset), String(length)], { stdio: ['pipe', 'pipe', 'inherit'] })
    probes.add(proc)
    proc.on('exit', () => probes.delete(proc))
    const p = new Probe(proc)
    await p.waitFor(/^ready /m)
    return p
  }

  get addr (): number {
    return Number(/^ready fd=\d+ addr=(\d+)/m.exec(this.out)![1])
  }

  /** Sends a command and returns the lines it printed up to its answer (SIGBUS lines first). */
  async ask (cmd: string): Promise<string[]> {
    const from = this.out.length
    this.proc.stdin!.write(cmd + '\n')
    await this.waitFor(/^(touched|poked|fault|read|unknown) /m, from)
    return this.out.slice(from).trim().split('\n')
  }

  async waitFor (re: RegExp, from = 0, ms = 5000): Promise<string> {
    const deadline = Date.now() + ms
    for (;;) {
      const m = re.exec(this.out.slice(from))
      if (m) return m[0]
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) throw new Error(`probe exited: ${this.out}`)
      if (Date.now() > deadline) throw new Error(`probe did not print ${re}: ${this.out}`)
      await new Promise(resolve => setTimeout(resolve, 10))
    }
  }

  sigbusLines (): string[] {
    return this.out.split('\n').filter(l => l.startsWith('sigbus '))
  }

  async stop (): Promise<void> {
    this.proc.stdin!.end('exit\n')
    await this.exited
  }
}

const probes = new Set<ChildProcess>()

function sigbus (code: number, addr: number, lsb = 0): string {
  return `sigbus code=${code} addr=0x${addr.toString(16)} lsb=${lsb}`
}

let tracerBin = ''

describe('memory failure: revocation and the kernel\'s victims', function () {
  this.timeout(60000)
  let m: DmemfsMount

  before(function () {
    const dir = tempDir('dmemfs-probe-')
    probeBin = path.join(dir, 'sigbus-probe')
    const cc = spawnSync('cc', ['-O1', '-Wall', '-o', probeBin, path.join(ROOT, 'test', 'integration', 'sigbus-probe.c')],
      { encoding: 'utf8' })
    if (cc.status !== 0) throw new Error(`cc failed: ${cc.stderr}`)
    // Another tracer, as strace or a debugger would be (the siginfo tests' own).
    tracerBin = path.join(dir, 'tracer')
    const ct = spawnSync('cc', ['-O1', '-o', tracerBin, path.join(ROOT, 'test', 'integration', 'sigbus', 'tracer.c')],
      { encoding: 'utf8' })
    if (ct.status !== 0) throw new Error(`cc failed: ${ct.stderr}`)
  })

  beforeEach(async function () {
    m = await DmemfsMount.start('size=64M')
    m.ok('head -c 1M /dev/urandom > data')
  })

  afterEach(async function () {
    for (const p of probes) p.kill('SIGKILL')
    endChildren()
    await stopAll()
  })

  it('a page mapped and read before the failure: SIGBUS on the next touch, EIO from read; other pages keep their data', async function () {
    const orig = fs.readFileSync(m.path('data'))
    const probe = await Probe.start(m.path('data'), 0, 1 << 20)
    expect(await probe.ask('touch 8192')).to.deep.equal([`touched 8192 value=${orig[8192]}`])
    // Dirty pages of the mapping, on both sides of the page about to fail: written back, not lost.
    expect(await probe.ask('poke 4096 65')).to.deep.equal(['poked 4096'])
    expect(await probe.ask('poke 20000 66')).to.deep.equal(['poked 20000'])
    // A dirty poisoned page is lost, as in the kernel: its write-back fails, and it is dropped all the same.
    expect(await probe.ask('poke 8200 67')).to.deep.equal(['poked 8200'])
    // Dirty too, and next to it: written back in the same request as the poisoned page.
    expect(await probe.ask('poke 12300 68')).to.deep.equal(['poked 12300'])

    const report = mce(m, pfnAt(m.path('data'), 8192))
    expect(report.revocation!.via).to.equal(m.path('data'))
    // The first open met the poisoned page's failed write-back; the second went through.
    expect(report.revocation!.failed).to.deep.equal([{ via: m.path('data'), error: 'EIO' }])
    const p = report.processes.find(x => x.pid === probe.proc.pid)!
    expect(p).to.include({ collected: true, signal: null, sent: null })
    expect(p.on_touch).to.deep.equal({ seed: 'BUS_MCEERR_AR', simulated: 'BUS_ADRERR' })
    expect(parseInt(p.vaddr!, 16)).to.equal(probe.addr + 8192)

    // The page was read before the failure: only a revoked mapping faults again.
    expect(await probe.ask('touch 8192')).to.deep.equal([sigbus(BUS_ADRERR, probe.addr + 8192), 'fault 8192'])
    expect(await probe.ask('read 8192')).to.deep.equal([`read 8192 errno=${EIO}`])
    expect(await probe.ask('touch 8200')).to.deep.equal([sigbus(BUS_ADRERR, probe.addr + 8200), 'fault 8200'])
    expect(await probe.ask('touch 100')).to.deep.equal([`touched 100 value=${orig[100]}`])
    expect(await probe.ask('touch 4096')).to.deep.equal(['touched 4096 value=65'])
    expect(await probe.ask('touch 20000')).to.deep.equal(['touched 20000 value=66'])
    expect(await probe.ask('touch 12300')).to.deep.equal(['touched 12300 value=68'])
    // The bytes written through the mapping reached the daemon: a fresh open reads them.
    const fd = fs.openSync(m.path('data'), 'r')
    try {
      const b = Buffer.alloc(PAGE)
      fs.readSync(fd, b, 0, PAGE, 4096)
      expect(b[0]).to.equal(65)
      expect(b.subarray(1).equals(orig.subarray(4097, 8192))).to.equal(true)
      fs.readSync(fd, b, 0, PAGE, 16384)
      expect(b[20000 - 16384]).to.equal(66)
      fs.readSync(fd, b, 0, PAGE, 12288)
      expect(b[12300 - 12288]).to.equal(68)
    } finally {
      fs.closeSync(fd)
    }
    await probe.stop()
  })

  it('the pages after a poisoned one fault in with their data: a read cut short by poison is no end of file', async function () {
    const orig = fs.readFileSync(m.path('data'))
    const probe = await Probe.start(m.path('data'), 0, 1 << 20)
    mce(m, pfnAt(m.path('data'), 40 * PAGE))
    // The fault's read-around covers the poisoned page from below; a short read there would make the
    // kernel shrink the file to it, and every page after it would fault with SIGBUS.
    for (const page of [41, 42, 200, 255]) {
      expect(await probe.ask(`touch ${page * PAGE}`)).to.deep.equal([`touched ${page * PAGE} value=${orig[page * PAGE]}`])
    }
    expect(await probe.ask(`touch ${40 * PAGE}`)).to.deep.equal([sigbus(BUS_ADRERR, probe.addr + 40 * PAGE), `fault ${40 * PAGE}`])
    expect(await probe.ask(`touch ${39 * PAGE}`)).to.deep.equal([`touched ${39 * PAGE} value=${orig[39 * PAGE]}`])
    await probe.stop()
  })

  it('must_kill deliver: the mapper\'s handler sees the report\'s si_code, si_addr and si_addr_lsb (ptrace); a descriptor holder and the calling shell are listed, alive, not signalled; npx and the CLI are not listed', async function () {
    const probe = await Probe.start(m.path('data'), 0, 1 << 20)
    const reader = await startHolder(m.mnt, OPEN_SCRIPT('data'))
    const pfn = pfnAt(m.path('data'), 3 * PAGE)
    // As in the README's worked example: the shell holds the file on fd 5 and runs the CLI through npx;
    // both npm's process and the CLI inherit that descriptor.
    const script = `exec 5< data
cd ${ROOT}
npx dmemfs mce ${m.mnt} 0x${pfn.toString(16)} --must-kill --deliver --json > ${m.path('report.json')} &
cli=$!
wait $cli
echo "shell=$$ cli=$cli status=$?"`
    const r = m.sh(script)
    expect(r.status, r.stderr).to.equal(0)
    const ids = /shell=(\d+) cli=(\d+) status=0/.exec(r.stdout)
    expect(ids, r.stdout).to.not.equal(null)
    const [shell, cli] = [Number(ids![1]), Number(ids![2])]
    const report = JSON.parse(fs.readFileSync(m.path('report.json'), 'utf8')) as JsonReport
    // Exactly the holders: neither npx (the job the shell started) nor the CLI it ran.
    const pids = report.processes.map(p => p.pid)
    expect(pids).to.not.include(cli)
    expect([...pids].sort()).to.deep.equal([shell, reader.proc.pid!, probe.proc.pid!].sort())

    const s = report.processes.find(p => p.pid === shell)!
    expect(s).to.include({ collected: false, signal: null, sent: null, way: null })
    expect(s.fds).to.deep.equal([5])
    expect(s.reason).to.match(/EIO on its next read or write/)
    const o = report.processes.find(p => p.pid === reader.proc.pid)!
    expect(o).to.include({ collected: false, signal: null, sent: null })

    const p = report.processes.find(x => x.pid === probe.proc.pid)!
    expect(p).to.include({ collected: true, signal: 'SIGBUS', si_code: 'BUS_MCEERR_AO', sent: true, way: 'ptrace' })
    expect(parseInt(p.vaddr!, 16)).to.equal(probe.addr + 3 * PAGE)
    expect(report.note ?? '').to.not.match(/SI_USER/)
    // The kernel's siginfo, exactly as the report gives it.
    await probe.waitFor(/^sigbus /m)
    expect(probe.sigbusLines()).to.deep.equal([sigbus(BUS_MCEERR_AO, parseInt(p.vaddr!, 16), p.si_addr_lsb!)])
    expect(p.si_addr_lsb).to.equal(12)
    // Everyone lives on: the probe handled its signal, the reader and the shell got none.
    expect(await probe.ask('touch 0')).to.match(/touched 0/)
    expect(reader.proc.exitCode).to.equal(null)
    expect(reader.proc.signalCode).to.equal(null)
    await probe.stop()
  })

  it('action_required: the handler sees BUS_MCEERR_AR at the report\'s address', async function () {
    const probe = await Probe.start(m.path('data'), 0, 1 << 20)
    const report = mce(m, pfnAt(m.path('data'), 5 * PAGE), '--must-kill', '--action-required', '--deliver')
    const p = report.processes.find(x => x.pid === probe.proc.pid)!
    expect(p).to.include({ collected: true, si_code: 'BUS_MCEERR_AR', sent: true, way: 'ptrace' })
    await probe.waitFor(/^sigbus /m)
    expect(probe.sigbusLines()).to.deep.equal([sigbus(BUS_MCEERR_AR, probe.addr + 5 * PAGE, 12)])
    await probe.stop()
  })

  it('a mapper another tracer holds gets a plain SIGBUS by kill(2) (SI_USER), and the report says so and why', async function () {
    const probe = await Probe.start(m.path('data'), 0, 1 << 20)
    const tracer = spawn(tracerBin, [String(probe.proc.pid)], { stdio: ['ignore', 'pipe', 'inherit'] })
    probes.add(tracer)
    tracer.on('exit', () => probes.delete(tracer))
    await new Promise<void>(resolve => tracer.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('traced')) resolve() }))
    const report = mce(m, pfnAt(m.path('data'), 2 * PAGE), '--must-kill', '--deliver')
    const p = report.processes.find(x => x.pid === probe.proc.pid)!
    expect(p).to.include({ collected: true, si_code: 'BUS_MCEERR_AO', sent: true, way: 'kill' })
    expect(p.send_error).to.match(/already traced/)
    expect(report.note).to.match(/SI_USER/)
    await probe.waitFor(/^sigbus /m)
    expect(probe.sigbusLines()[0]).to.match(new RegExp(`^sigbus code=${SI_USER} `))
    expect(m.ok('cat .dmem/mce')).to.match(/sent way kill \(.*already traced.*\)/)
    await probe.stop()
  })

  it('early_kill=0: a mapper not collected early gets no signal, and touching the page later BUS_ADRERR, as the report says', async function () {
    await stopAll()
    m = await DmemfsMount.start('size=64M,early_kill=0')
    m.ok('head -c 1M /dev/urandom > data')
    const probe = await Probe.start(m.path('data'), 0, 1 << 20)
    expect(await probe.ask('touch 12288')).to.match(/touched 12288/)
    const report = mce(m, pfnAt(m.path('data'), 12288), '--must-kill', '--deliver')
    const p = report.processes.find(x => x.pid === probe.proc.pid)!
    expect(p).to.include({ collected: false, signal: null, sent: null, way: null })
    expect(p.reason).to.match(/^not collected early .*SIGBUS BUS_MCEERR_AR on touching .*SIGBUS BUS_ADRERR from this simulation/)
    expect(p.on_touch).to.deep.equal({ seed: 'BUS_MCEERR_AR', simulated: 'BUS_ADRERR' })
    expect(await probe.ask('touch 12288')).to.deep.equal([sigbus(BUS_ADRERR, parseInt(p.vaddr!, 16)), 'fault 12288'])
    expect(probe.sigbusLines()).to.have.length(1) // nothing was delivered before the touch
    await probe.stop()
  })

  it('revokes an unlinked file through a holder: its mapping faults on the poisoned page', async function () {
    const pfn = pfnAt(m.path('data'), 5 * PAGE)
    const probe = await Probe.start(m.path('data'), 0, 1 << 20)
    expect(await probe.ask('touch 20480')).to.match(/touched 20480/)
    m.ok('rm data')
    const report = mce(m, pfn)
    expect(report.revocation!.via).to.match(new RegExp(`^/proc/${probe.proc.pid}/(fd|map_files)/`))
    expect(await probe.ask('touch 20480')).to.deep.equal([sigbus(BUS_ADRERR, probe.addr + 20480), 'fault 20480'])
    expect(await probe.ask('touch 0')).to.match(/touched 0/)
    await probe.stop()
  })

  it('a writer rewriting the file while a dpage is poisoned: 10,000 reads never see the poisoned range\'s bytes', async function () {
    const BAD = 8 * PAGE
    m.ok('head -c 65536 /dev/zero > small')
    mce(m, pfnAt(m.path('small'), BAD))
    // The writer rewrites the whole file, the poisoned page with 0xab, through fresh descriptors.
    const writer = spawn('python3', ['-c', `
import os, sys
page = b'\\xab' * 4096
sys.stdout.write('ready\\n'); sys.stdout.flush()
while True:
    fd = os.open('small', os.O_WRONLY)
    for off in range(0, 65536, 4096):
        try:
            os.pwrite(fd, page, off)
        except OSError:
            pass
    os.close(fd)
`], { cwd: m.mnt, stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      await new Promise(resolve => writer.stdout!.once('data', resolve))
      // Fresh opens and one long-lived descriptor, alternately; each read asks for the poisoned page.
      const r = spawnSync('python3', ['-c', `
import os, time
held = os.open('small', os.O_RDONLY)
eio = leaked = other = 0
deadline = time.time() + 40
for i in range(10000):
    if time.time() > deadline:
        break
    fd = held if i % 2 else os.open('small', os.O_RDONLY)
    try:
        data = os.pread(fd, 4096, ${BAD})
        if b'\\xab' in data:
            leaked += 1
        else:
            other += 1
    except OSError as e:
        if e.errno == ${EIO}:
            eio += 1
        else:
            raise
    if fd != held:
        os.close(fd)
print(eio, leaked, other)
`], { cwd: m.mnt, encoding: 'utf8', timeout: 50000 })
      expect(r.status, r.stderr).to.equal(0)
      const [eio, leaked, other] = r.stdout.trim().split(' ').map(Number)
      expect(eio + leaked + other, 'reads done within the time bound').to.equal(10000)
      expect(leaked, 'reads that returned bytes the daemon refused').to.equal(0)
      expect(other, 'reads of the poisoned page that did not fail').to.equal(0)
      // The writer's other pages did land.
      const b = Buffer.alloc(BAD)
      const fd = fs.openSync(m.path('small'), 'r')
      try {
        expect(fs.readSync(fd, b, 0, BAD, 0)).to.equal(BAD)
      } finally {
        fs.closeSync(fd)
      }
      expect(b.every(x => x === 0xab), 'healthy pages rewritten').to.equal(true)
    } finally {
      writer.kill('SIGKILL')
    }
  })

  it('descriptors opened and read before the failure: the cached page is gone, refused writes never read back', function () {
    m.ok('head -c 65536 /dev/zero > small')
    const pfn = pfnAt(m.path('small'), 8 * PAGE)
    const r = spawnSync('python3', ['-c', `
import os, subprocess
w = os.open('small', os.O_WRONLY)
r = os.open('small', os.O_RDONLY)
os.pread(r, 65536, 0)  # all of it in the page cache
subprocess.check_call(['${BIN}', 'mce', '.', '0x${pfn.toString(16)}'], stdout=subprocess.DEVNULL)
refused = eio = leaked = other = 0
for i in range(1000):
    try:  # the first read finds the page cached before the failure, unless it was revoked
        data = os.pread(r, 4096, ${8 * PAGE})
        if b'\\xab' in data:
            leaked += 1
        else:
            other += 1
    except OSError:
        eio += 1
    try:
        os.pwrite(w, b'\\xab' * 4096, ${8 * PAGE})
    except OSError:
        refused += 1
print(refused, eio, leaked, other)
`], { cwd: m.mnt, encoding: 'utf8', timeout: 50000 })
    expect(r.status, r.stderr).to.equal(0)
    const [refused, eio, leaked, other] = r.stdout.trim().split(' ').map(Number)
    expect({ refused, eio, leaked, other }).to.deep.equal({ refused: 1000, eio: 1000, leaked: 0, other: 0 })
  })

  it('after the failure every open is direct_io: a new shared mapping is refused (ENODEV), a private one works', function () {
    const pfn = pfnAt(m.path('data'), 8 * PAGE)
    const map = (flags: string) => m.sh(`python3 -c "
import mmap, os
fd = os.open('data', os.O_RDWR)
m = mmap.mmap(fd, 65536, mmap.${flags}, mmap.PROT_READ)
print(m[0])"`)
    expect(map('MAP_SHARED').status).to.equal(0)
    mce(m, pfn)
    const shared = map('MAP_SHARED')
    expect(shared.status).to.not.equal(0)
    expect(shared.stderr).to.match(/No such device/)
    expect(map('MAP_PRIVATE').status, 'private').to.equal(0)
  })
})
