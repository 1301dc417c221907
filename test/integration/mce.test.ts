// The memory-failure path on a real mount, with real child processes holding files open and mapped.

import { expect } from 'chai'
import * as fs from 'fs'
import { BIN, DmemfsMount, isMounted, sh, stopAll } from './harness'
import { endChildren, MAP_SCRIPT, OPEN_SCRIPT, pfnAt, startHolder } from './children'

interface JsonProcess {
  pid: number
  comm: string
  fds: number[]
  mappings: Array<{ start: string, end: string, pgoff: string, vaddr: string }>
  vaddr: string | null
  signal: string | null
  si_code: string | null
  si_addr_lsb: number | null
  sent: boolean | null
  way: string | null
  collected: boolean
  reason: string
}

interface JsonReport {
  state: string
  file: { path: string, ino: number, pgoff: string, offset: number } | null
  processes: JsonProcess[]
}

function mce (m: DmemfsMount, pfn: number, ...flags: string[]): JsonReport {
  const r = sh(`${BIN} mce ${m.mnt} 0x${pfn.toString(16)} --json ${flags.join(' ')}`)
  if (r.status !== 0) throw new Error(`dmemfs mce failed: ${r.stderr}`)
  return JSON.parse(r.stdout) as JsonReport
}

for (const pagesize of ['4K', '2M']) {
  describe(`memory failure on a used dpage (pagesize=${pagesize})`, function () {
    const dpage = pagesize === '4K' ? 4096 : 2 * 1024 * 1024
    let m: DmemfsMount

    beforeEach(async function () {
      m = await DmemfsMount.start(`pagesize=${pagesize},size=64M`)
      m.ok('head -c 6M /dev/urandom > data && head -c 6M /dev/urandom > other')
    })

    afterEach(async function () {
      endChildren()
      await stopAll()
    })

    it('names exactly the processes holding the file, their fds, and the mapped virtual address', async function () {
      const mapOffset = dpage + 8192 // the mapping starts inside the file: vma_pgoff is not 0
      const opener = await startHolder(m.mnt, OPEN_SCRIPT('data'))
      const mapper = await startHolder(m.mnt, MAP_SCRIPT('data', mapOffset, 3 * 1024 * 1024))
      const bystander = await startHolder(m.mnt, OPEN_SCRIPT('other'))
      const target = mapOffset + 5 * 4096 + 123 // a byte inside the mapped range
      const pfn = pfnAt(m.path('data'), target)
      const report = mce(m, pfn, '--must-kill')
      const ino = fs.statSync(m.path('data')).ino

      expect(report.state).to.equal('used')
      expect(report.file).to.deep.include({ path: '/data', ino, offset: Math.floor(target / 4096) * 4096 })
      expect(parseInt(report.file!.pgoff, 16)).to.equal(Math.floor(target / 4096))
      const pids = report.processes.map(p => p.pid).sort()
      expect(pids).to.deep.equal([opener.proc.pid, mapper.proc.pid].sort())
      expect(pids).to.not.include(bystander.proc.pid)

      const o = report.processes.find(p => p.pid === opener.proc.pid)!
      expect(o.comm).to.equal('python3')
      expect(o.fds).to.deep.equal([opener.info.fd])
      expect(o.mappings).to.deep.equal([])
      // The kernel collects mappings only: a descriptor holder is listed, not collected, never signalled.
      expect(o.signal).to.equal(null)
      expect(o.collected).to.equal(false)
      expect(o.reason).to.match(/EIO on its next read or write/)

      const p = report.processes.find(x => x.pid === mapper.proc.pid)!
      expect(p.fds).to.include(mapper.info.fd)
      expect(p.mappings).to.have.length(1)
      const expected = mapper.info.addr + (Math.floor(target / 4096) - mapOffset / 4096) * 4096
      expect(parseInt(p.mappings[0].start, 16)).to.equal(mapper.info.addr)
      expect(parseInt(p.mappings[0].pgoff, 16)).to.equal(mapOffset / 4096)
      expect(parseInt(p.vaddr!, 16)).to.equal(expected)
      expect(p.signal).to.equal('SIGBUS')
      expect(p.si_code).to.equal('BUS_MCEERR_AO')
      expect(p.si_addr_lsb).to.equal(12)
      expect(p.sent).to.equal(null)
    })

    it('action_required gives BUS_MCEERR_AR; without must_kill nobody is signalled', async function () {
      const mapper = await startHolder(m.mnt, MAP_SCRIPT('data', 0, 6 * 1024 * 1024))
      const ar = mce(m, pfnAt(m.path('data'), 0), '--must-kill', '--action-required')
      expect(ar.processes.find(p => p.pid === mapper.proc.pid)!.si_code).to.equal('BUS_MCEERR_AR')
      const quiet = mce(m, pfnAt(m.path('data'), 4 * 1024 * 1024))
      const q = quiet.processes.find(p => p.pid === mapper.proc.pid)!
      expect(q.signal).to.equal(null)
      expect(sh(`cat ${m.path('.dmem/mce')}`).stdout).to.match(/will get SIGBUS BUS_MCEERR_AR on touching the mapping/)
    })

    it('reads of the poisoned dpage fail with EIO, the rest of the file reads fine', function () {
      m.ok('cp data /tmp/dmemfs-orig-$$ && echo /tmp/dmemfs-orig-$$ > origname')
      const orig = m.ok('cat origname').trim()
      const bad = 2 * dpage + 4096
      mce(m, pfnAt(m.path('data'), bad))
      const r = m.sh('cat data > /dev/null')
      expect(r.status).to.not.equal(0)
      expect(r.stderr).to.match(/Input\/output error/)
      const first = Math.floor(bad / dpage) * dpage
      // Everything before the poisoned dpage and after it still reads, byte for byte.
      m.ok(`cmp -n ${first} data ${orig}`)
      m.ok(`cmp -i ${first + dpage} data ${orig}`)
      expect(m.sh(`dd if=data of=/dev/null bs=4096 skip=${first / 4096} count=1 status=none`).status).to.not.equal(0)
      fs.rmSync(orig)
    })

    it('truncate and unlink never return the poisoned dpage; unpoison does', function () {
      const pfn = pfnAt(m.path('data'), 5 * 1024 * 1024)
      mce(m, pfn)
      m.ok('truncate -s 0 data')
      let st = m.stat()
      expect(st.poisoned_dpages).to.equal(1)
      const otherDpages = Math.ceil(6 * 1024 * 1024 / dpage)
      expect(st.free_dpages).to.equal(st.total_dpages - otherDpages - 1)
      m.ok('rm data other')
      st = m.stat()
      expect(st.free_dpages).to.equal(st.total_dpages - 1)
      const r = sh(`${BIN} unpoison ${m.mnt} 0x${pfn.toString(16)}`)
      expect(r.status, r.stderr).to.equal(0)
      expect(r.stdout).to.match(/unpoisoned/)
      st = m.stat()
      expect(st.free_dpages).to.equal(st.total_dpages)
      expect(st.poisoned_dpages).to.equal(0)
    })
  })
}

describe('memory failure: free dpages, repeats, bad input, delivery', function () {
  let m: DmemfsMount

  beforeEach(async function () {
    m = await DmemfsMount.start('size=16M')
  })

  afterEach(async function () {
    endChildren()
    await stopAll()
  })

  const lastPfn = () => 0x100000 + 4096 - 1 // size=16M from 4 GiB: 4096 frames

  it('a free dpage is taken out of service for good; a repeat changes nothing', function () {
    const before = m.stat()
    m.ok(`echo 0x${lastPfn().toString(16)} > .dmem/mce`)
    expect(m.ok('cat .dmem/mce')).to.match(/state free\n[^]*result MCE: free dpage, mark 0x100fff disabled in dmem/)
    const after = m.stat()
    expect(after.free_dpages).to.equal(before.free_dpages - 1)
    expect(after['node0.free_dpages']).to.equal(before['node0.free_dpages'] - 1)
    expect(after.poisoned_dpages).to.equal(1)
    m.ok(`echo ${lastPfn()} > .dmem/mce`) // decimal, same frame
    expect(m.ok('cat .dmem/mce')).to.match(/already hardware poisoned/)
    expect(m.stat()).to.deep.equal(after)
    // The pool never hands it out: filling the pool stops one dpage short.
    m.sh('dd if=/dev/zero of=fill bs=1M count=20 status=none')
    expect(Number(m.ok('stat -c %s fill'))).to.equal((before.total_dpages - 1) * 4096)
  })

  it('bad input fails with EINVAL, says why, and changes nothing', function () {
    m.ok('echo keep > keep')
    const before = m.stat()
    const inputs: Array<[string, RegExp]> = [
      ["printf 'hello'", /not a number/],
      ["printf '0x100000 zz'", /unknown flag 'zz'/],
      ["printf '0x100000zz'", /not a number/],
      ["printf '\\n'", /empty/],
      ["printf '99999999999999999999999'", /out of range/],
      ["printf '0x1'", /not a dmem pfn/],
      ["printf '0x%s' $(printf 'f%.0s' $(seq 1 300))", /too long/],
      ["printf '\\x00\\x01\\xff'", /not text/],
      ["printf '0x100000 flags=0x80'", /unknown bits/],
      ['head -c 64 /dev/urandom', /not text|not a number/]
    ]
    for (const [cmd, why] of inputs) {
      const r = m.sh(`${cmd} > .dmem/mce`)
      expect(r.status, cmd).to.not.equal(0)
      expect(r.stderr, cmd).to.match(/Invalid argument/)
      expect(m.ok('cat .dmem/mce'), cmd).to.match(why)
    }
    expect(isMounted(m.mnt)).to.equal(true)
    expect(m.stat()).to.deep.equal(before)
    expect(m.ok('cat keep')).to.equal('keep\n')
    // A PFN that is no number is bad usage (2); a number that is no dmem PFN is the daemon's refusal (1).
    const cases: Array<[string, number, RegExp]> = [
      [`mce ${m.mnt} nonsense`, 2, /not a number/],
      [`mce ${m.mnt} zz`, 2, /not a number/],
      [`mce ${m.mnt} 0x100000zz --must-kill`, 2, /not a number/],
      [`unpoison ${m.mnt} zz`, 2, /not a number/],
      [`mce ${m.mnt} 0x1`, 1, /0x1: not a dmem pfn/]
    ]
    for (const [args, status, why] of cases) {
      const cli = sh(`${BIN} ${args}`)
      expect(cli.status, args).to.equal(status)
      expect(cli.stderr.trim().split('\n'), args).to.have.length(1)
      expect(cli.stderr, args).to.match(why)
    }
    expect(m.stat()).to.deep.equal(before)
  })

  it('dmemfs mce never names itself: a descriptor it inherited from the shell is the shell\'s', function () {
    m.ok('head -c 64K /dev/urandom > held')
    const pfn = pfnAt(m.path('held'), 8192)
    // The shell holds the file on fd 5 and runs dmemfs mce, which inherits fd 5.
    // (The final `exit` keeps bash from replacing itself with the last command.)
    const r = m.sh(`exec 5< held; echo "shell $$"; ${BIN} mce ${m.mnt} 0x${pfn.toString(16)} --must-kill --json; exit $?`)
    expect(r.status, r.stderr).to.equal(0)
    const shell = Number(/^shell (\d+)$/m.exec(r.stdout)![1])
    const report = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as JsonReport
    expect(report.processes.map(p => [p.pid, p.comm, p.fds])).to.deep.equal([[shell, 'bash', [5]]])
  })

  it('the descriptor that wrote reads back that write\'s report', function () {
    const fd = fs.openSync(m.path('.dmem/mce'), 'r+')
    try {
      fs.writeSync(fd, `0x${(lastPfn() - 1).toString(16)}\n`)
      const buf = Buffer.alloc(4096)
      const n = fs.readSync(fd, buf, 0, buf.length, null)
      expect(buf.toString('utf8', 0, n)).to.match(/^pfn 0x100ffe .*state free/)
    } finally {
      fs.closeSync(fd)
    }
  })

  it('deliver really signals a mapping child, which dies of SIGBUS', async function () {
    m.ok('head -c 65536 /dev/urandom > victim')
    const mapper = await startHolder(m.mnt, MAP_SCRIPT('victim', 0, 65536))
    const died = new Promise<NodeJS.Signals | null>(resolve => mapper.proc.on('exit', (_code, signal) => resolve(signal)))
    const report = mce(m, pfnAt(m.path('victim'), 8192), '--must-kill', '--deliver')
    const p = report.processes.find(x => x.pid === mapper.proc.pid)!
    expect(p.signal).to.equal('SIGBUS')
    expect(p.sent).to.equal(true)
    expect(p.way).to.equal('ptrace')
    expect(await died).to.equal('SIGBUS')
    expect(m.ok('cat .dmem/mce')).to.match(/sent way ptrace/).and.not.match(/SI_USER/)
    expect(isMounted(m.mnt)).to.equal(true)
  })

  it('finds holders that got the file by fork, whether the opener lives on or has exited', async function () {
    m.ok('head -c 8192 /dev/urandom > shared')
    // The opener forks a child that inherits the descriptor; both stay. Then a second opener forks a child
    // and exits, leaving the child (reparented) as the only holder.
    const family = await startHolder(m.mnt, `
import os, sys
fd = os.open('shared', os.O_RDONLY)
pid = os.fork()
if pid == 0:
    sys.stdin.read()
    os._exit(0)
print('fd=%d child=%d' % (fd, pid))`)
    const orphaned = await startHolder(m.mnt, `
import os, sys, time
fd = os.open('shared', os.O_RDONLY)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    os.setsid()
    os.write(w, b'%d' % os.getpid())
    time.sleep(30)
    os._exit(0)
os.close(w)
print('fd=%d child=%s' % (fd, os.read(r, 32).decode()))`)
    const orphan = orphaned.info.child
    orphaned.proc.kill('SIGKILL')
    await new Promise(resolve => orphaned.proc.once('exit', resolve))
    try {
      const report = mce(m, pfnAt(m.path('shared'), 0))
      const pids = report.processes.map(p => p.pid).sort((a, b) => a - b)
      expect(pids).to.deep.equal([family.proc.pid!, family.info.child, orphan].sort((a, b) => a - b))
    } finally {
      process.kill(orphan, 'SIGKILL')
      process.kill(family.info.child, 'SIGKILL')
    }
  })

  it('unpoison of a dpage a file still owns is refused and it stays poisoned', function () {
    m.ok('head -c 8192 /dev/urandom > f')
    const pfn = pfnAt(m.path('f'), 0)
    mce(m, pfn)
    const r = sh(`${BIN} unpoison ${m.mnt} 0x${pfn.toString(16)}`)
    expect(r.status).to.equal(1)
    expect(r.stderr).to.match(/still owned by \/f/)
    expect(m.stat().poisoned_dpages).to.equal(1)
  })

  it('.dmem/pfns lists the runs backing each file', function () {
    m.ok('head -c 12288 /dev/urandom > a && mkdir d && head -c 4096 /dev/urandom > d/b')
    const lines = m.ok('cat .dmem/pfns').trim().split('\n')
    expect(lines[0]).to.equal('# ino offset pfn frames path')
    const ino = fs.statSync(m.path('a')).ino
    expect(lines.some(l => new RegExp(`^${ino} 0 0x[0-9a-f]+ 3 /a$`).test(l))).to.equal(true)
    expect(lines.some(l => / 1 \/d\/b$/.test(l))).to.equal(true)
    const text = sh(`${BIN} pfn ${m.path('a')}`)
    expect(text.stdout).to.match(/1 run, 3 frames/)
  })
})
