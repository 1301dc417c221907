// Injecting as RAS engineers do, on a real mount: a frame named by a byte of a file or an address in a real
// process, soft offline and unpoison --all from the CLI. Every injection goes through the mount's control files.

import { expect } from 'chai'
import * as fs from 'fs'
import { spawn } from 'child_process'
import { BIN, DmemfsMount, sh, sleep, stopAll } from './harness'
import { endChildren, MAP_SCRIPT, pfnAt, startHolder } from './children'

const hex = (n: number): string => '0x' + n.toString(16)

interface Target { how: string, pid?: number, vaddr?: string, path?: string, offset?: number, pfn: string }

describe('dmemfs mce by file and by address', function () {
  let m: DmemfsMount

  beforeEach(async function () {
    m = await DmemfsMount.start('size=16M')
    m.ok('head -c 64K /dev/urandom > data && truncate -s 1M data')
  })

  afterEach(async function () {
    endChildren()
    await stopAll()
  })

  it('--file/--offset poisons the frame backing that byte, and the report echoes the target', function () {
    const pfn = pfnAt(m.path('data'), 20000)
    const r = sh(`${BIN} mce --file ${m.path('data')} --offset 20000`)
    expect(r.status, r.stderr).to.equal(0)
    const lines = r.stdout.split('\n')
    expect(lines[0]).to.equal(`target file ${m.path('data')} offset 20000 pfn ${hex(pfn)}`)
    expect(lines[1]).to.match(new RegExp(`^pfn ${hex(pfn)} .* state used$`))
    expect(m.stat().poisoned_dpages).to.equal(1)
    expect(m.sh('dd if=data of=/dev/null bs=4096 skip=4 count=1 status=none').stderr).to.match(/Input\/output error/)
  })

  it('--json carries a target object; a name that is not UTF-8 is found by its bytes', function () {
    m.ok("head -c 12K /dev/urandom > $'\\xff x'")
    // The frame backing byte 8192, from .dmem/pfns by the file's inode: what the command must find.
    const ino = Number(m.ok("stat -c %i $'\\xff x'").trim())
    const run = m.ok('cat .dmem/pfns').split('\n').map(l => l.split(' ')).find(f => Number(f[0]) === ino && Number(f[1]) <= 8192 &&
      8192 < Number(f[1]) + Number(f[3]) * 4096)!
    const pfn = parseInt(run[2], 16) + (8192 - Number(run[1])) / 4096
    const r = sh(`${BIN} mce --file $'${m.mnt}/\\xff x' --offset 0x2000 --json`)
    expect(r.status, r.stderr).to.equal(0)
    const report = JSON.parse(r.stdout) as { target: Target, pfn: string, file: { offset: number } }
    expect(report.pfn).to.equal(hex(pfn))
    expect(report.target).to.deep.equal({ how: 'file', path: `${m.mnt}/\udcff x`, offset: 8192, pfn: hex(pfn) })
    expect(report.file.offset).to.equal(8192)
    expect(Object.keys(report)[0]).to.equal('target')
  })

  it('a hole, or a byte past the end: one clear line, exit 1, nothing poisoned', function () {
    for (const offset of ['65536', '0x80000', '1048576']) {
      const r = sh(`${BIN} mce --file ${m.path('data')} --offset ${offset}`)
      expect(r.status, offset).to.equal(1)
      expect(r.stderr.trim().split('\n'), offset).to.have.length(1)
      expect(r.stderr, offset).to.match(offset === '1048576' ? /past its end/ : /is in a hole/)
    }
    expect(m.stat().poisoned_dpages).to.equal(0)
  })

  it('--pid/--vaddr resolves through /proc/PID/maps to the file, its offset and PFN, as MADV_HWPOISON would', async function () {
    const mapOffset = 8192
    const holder = await startHolder(m.mnt, MAP_SCRIPT('data', mapOffset, 32768))
    const vaddr = holder.info.addr + 3 * 4096 + 17
    const pfn = pfnAt(m.path('data'), mapOffset + 3 * 4096 + 17)
    const r = sh(`${BIN} mce --pid ${holder.proc.pid} --vaddr ${hex(vaddr)} --json`)
    expect(r.status, r.stderr).to.equal(0)
    const report = JSON.parse(r.stdout) as { target: Target, pfn: string, processes: Array<{ pid: number, vaddr: string }> }
    expect(report.target).to.deep.equal({
      how: 'pid', pid: holder.proc.pid, vaddr: hex(vaddr), path: m.path('data'), offset: mapOffset + 3 * 4096 + 17, pfn: hex(pfn)
    })
    expect(report.pfn).to.equal(hex(pfn))
    const p = report.processes.find(x => x.pid === holder.proc.pid)
    expect(p?.vaddr).to.equal(hex(vaddr - 17))
    const text = sh(`${BIN} mce --pid ${holder.proc.pid} --vaddr ${hex(vaddr)}`)
    expect(text.stdout.split('\n')[0]).to.equal(`target pid ${holder.proc.pid} vaddr ${hex(vaddr)} file ${m.path('data')} offset ${mapOffset + 3 * 4096 + 17} pfn ${hex(pfn)}`)
  })

  it('an address not backed by a dmemfs file, or not mapped at all: one clear line, exit 1, nothing poisoned', async function () {
    const holder = await startHolder(m.mnt, MAP_SCRIPT('data', 0, 4096))
    const maps = fs.readFileSync(`/proc/${holder.proc.pid}/maps`, 'utf8')
    const stack = '0x' + maps.split('\n').find(l => l.endsWith('[stack]'))!.split('-')[0]
    const cases: Array<[string, RegExp]> = [
      [stack, /is not backed by a dmemfs file \(it maps \[stack\]\)/],
      ['0x1000', /is not mapped/]
    ]
    for (const [addr, message] of cases) {
      const r = sh(`${BIN} mce --pid ${holder.proc.pid} --vaddr ${addr}`)
      expect(r.status, addr).to.equal(1)
      expect(r.stderr.trim().split('\n'), addr).to.have.length(1)
      expect(r.stderr, addr).to.match(message)
    }
    expect(m.stat().poisoned_dpages).to.equal(0)
  })

  it('the target flags are bad usage when mixed or half given (exit 2)', function () {
    const cases: Array<[string, RegExp]> = [
      [`--file ${m.path('data')}`, /--file and --offset go together/],
      ['--pid 1', /--pid and --vaddr go together/],
      [`${m.mnt} 0x100000 --file ${m.path('data')} --offset 0`, /takes no MOUNTPOINT or PFN with --file or --pid/],
      [`--file ${m.path('data')} --offset 0 --pid 1 --vaddr 0`, /name the target one way/]
    ]
    for (const [args, why] of cases) {
      const r = sh(`${BIN} mce ${args}`)
      expect(r.status, args).to.equal(2)
      expect(r.stderr.trim().split('\n'), args).to.have.length(1)
      expect(r.stderr, args).to.match(why)
    }
  })

  it('MOUNTPOINT PFN still works, its report headed by the PFN as given', function () {
    const r = sh(`${BIN} mce ${m.mnt} 0x100ff0`)
    expect(r.status, r.stderr).to.equal(0)
    expect(r.stdout.split('\n')[0]).to.equal('target pfn 0x100ff0')
    expect(r.stdout.split('\n')[1]).to.match(/^pfn 0x100ff0 .* state free$/)
  })
})

describe('dmemfs soft-offline and unpoison --all', function () {
  let m: DmemfsMount

  beforeEach(async function () { m = await DmemfsMount.start('size=16M') })
  afterEach(stopAll)

  it('soft-offline --file/--offset migrates the dpage: the file reads the same, the PFN is offline', function () {
    m.ok('head -c 40K /dev/urandom > f')
    const sum = m.ok('sha256sum f')
    const pfn = pfnAt(m.path('f'), 12288)
    const r = sh(`${BIN} soft-offline --file ${m.path('f')} --offset 12288`)
    expect(r.status, r.stderr).to.equal(0)
    expect(r.stdout.split('\n')[0]).to.equal(`target file ${m.path('f')} offset 12288 pfn ${hex(pfn)}`)
    expect(r.stdout).to.match(/state used/).and.match(/new pfn 0x[0-9a-f]+ node 0/)
    expect(m.ok('sha256sum f')).to.equal(sum)
    expect(pfnAt(m.path('f'), 12288)).to.not.equal(pfn)
    expect(m.stat().offline_dpages).to.equal(1)
    expect(m.ok('cat .dmem/offline')).to.equal(`# dpage node\n${hex(pfn)} 0\n`)
  })

  it('soft-offline MOUNTPOINT PFN --json: the report as JSON with its target; a refusal is one line, exit 1', function () {
    const r = sh(`${BIN} soft-offline ${m.mnt} 0x100fff --json`)
    expect(r.status, r.stderr).to.equal(0)
    const report = JSON.parse(r.stdout) as Record<string, unknown>
    expect(report.target).to.deep.equal({ how: 'pfn', pfn: '0x100fff' })
    expect(report).to.include({ pfn: '0x100fff', state: 'free', errno: 0, new_pfn: null })
    const again = sh(`${BIN} soft-offline ${m.mnt} 0x100fff`)
    expect(again.status).to.equal(1)
    expect(again.stderr).to.equal('dmemfs: soft_offline: 0x100fff: dpage already offline\n')
    // The control file speaks JSON to a shell too.
    const py = 'import os; fd = os.open(".dmem/soft_offline", os.O_RDWR); os.write(fd, b"0x100ffe json\\n"); ' +
      'print(os.pread(fd, 65536, 0).decode())'
    expect(JSON.parse(m.ok(`python3 -c '${py}'`))).to.include({ pfn: '0x100ffe', state: 'free' })
    expect(m.stat().offline_dpages).to.equal(2)
  })

  it('unpoison --all: every poisoned dpage no file owns is back in service; those owned are listed, exit 1', function () {
    m.ok('head -c 20K /dev/urandom > "a b"')
    const owned = pfnAt(`'${m.path('a b')}'`, 4096)
    m.ok(`echo ${hex(owned)} > .dmem/mce && echo 0x100ff0 > .dmem/mce && echo 0x100ff1 > .dmem/mce`)
    expect(m.stat().poisoned_dpages).to.equal(3)
    const r = sh(`${BIN} unpoison ${m.mnt} --all`)
    expect(r.status).to.equal(1)
    expect(r.stdout).to.include('Unpoison: Software-unpoisoned free page 0x100ff0\n')
    expect(r.stdout).to.include('Unpoison: Software-unpoisoned free page 0x100ff1\n')
    expect(r.stdout).to.include(`${hex(owned)} stays poisoned: owned by /a\\040b (ino `)
    expect(r.stdout).to.match(/2 of 3 poisoned dpages back in service, 1 still owned by a file\n$/)
    expect(m.stat().poisoned_dpages).to.equal(1)
    m.ok('rm "a b"')
    const after = sh(`${BIN} unpoison ${m.mnt} --all`)
    expect(after.status, after.stdout).to.equal(0)
    expect(m.stat().poisoned_dpages).to.equal(0)
    expect(m.stat().free_dpages).to.equal(m.stat().total_dpages)
  })
})

interface InjectLine {
  event?: number
  pfn?: string
  refused?: string | null
  report?: { state: string }
  summary?: { events: number, poisoned?: number, soft_offlined?: number, refused?: number, signalled: number[], died: number[], dpages_left: number, seed: number, stopped: string }
}

function injectJson (mnt: string, args: string): InjectLine[] {
  const r = sh(`${BIN} inject ${mnt} --json ${args}`)
  if (r.status !== 0) throw new Error(`dmemfs inject exited ${r.status}: ${r.stderr}`)
  return r.stdout.trim().split('\n').map(l => JSON.parse(l) as InjectLine)
}

describe('dmemfs inject: campaigns', function () {
  afterEach(async function () {
    endChildren()
    await stopAll()
  })

  const setup = 'head -c 300K /dev/zero > a && head -c 200K /dev/zero > b && rm a && head -c 64K /dev/zero > c'

  it('the same seed on two identical fresh mounts picks the same PFNs; each is poisoned; another seed differs', async function () {
    const picks: string[][] = []
    for (let i = 0; i < 2; i++) {
      const m = await DmemfsMount.start('size=16M')
      m.ok(setup)
      const lines = injectJson(m.mnt, '--count 12 --interval 0 --seed 1234')
      const events = lines.filter(l => l.event !== undefined)
      expect(events).to.have.length(12)
      picks.push(events.map(e => e.pfn!))
      const poisoned = m.ok('cat .dmem/poisoned')
      for (const pfn of picks[i]) expect(poisoned).to.match(new RegExp(`^${pfn} `, 'm'))
      expect(m.stat().poisoned_dpages).to.equal(12)
      expect(lines[12].summary).to.include({ events: 12, poisoned: 12, seed: 1234, stopped: 'count', dpages_left: 4096 - 12 })
      await m.stop()
    }
    expect(picks[0]).to.deep.equal(picks[1])
    const m = await DmemfsMount.start('size=16M')
    m.ok(setup)
    const other = injectJson(m.mnt, '--count 12 --interval 0 --seed 1235').filter(l => l.event !== undefined).map(e => e.pfn)
    expect(other).to.not.deep.equal(picks[0])
  })

  it('--target free hits exactly the free dpages, never a used, poisoned or offline one, then stops', async function () {
    const m = await DmemfsMount.start('size=64K') // 16 dpages of 4K
    m.ok('head -c 12K /dev/zero > f') // 0x100000-0x100002
    m.ok('echo 0x100005 > .dmem/mce && echo 0x100007 > .dmem/soft_offline')
    const lines = injectJson(m.mnt, '--target free --count 0 --interval 0 --seed 9')
    const hit = lines.filter(l => l.event !== undefined).map(l => parseInt(l.pfn!, 16) - 0x100000).sort((x, y) => x - y)
    expect(hit).to.deep.equal([3, 4, 6, 8, 9, 10, 11, 12, 13, 14, 15])
    expect(lines[lines.length - 1].summary).to.include({ events: 11, dpages_left: 0, stopped: 'no dpages left' })
    expect(m.stat()).to.include({ poisoned_dpages: 12, offline_dpages: 1 })
    const used = injectJson(m.mnt, '--target used --count 0 --interval 0 --seed 9').filter(l => l.event !== undefined)
    expect(used.map(l => l.pfn).sort()).to.deep.equal(['0x100000', '0x100001', '0x100002'])
    expect(used.every(l => l.report!.state === 'used')).to.equal(true)
  })

  it('the summary counts victims signalled and those that died (--file --must-kill --deliver)', async function () {
    const m = await DmemfsMount.start('size=16M')
    m.ok('head -c 8K /dev/urandom > f && head -c 8K /dev/urandom > g')
    const victim = await startHolder(m.mnt, MAP_SCRIPT('f', 0, 8192))
    // Signalled too, but it ignores SIGBUS (sent with kill(2), not a fault): it survives.
    const survivor = await startHolder(m.mnt, 'import signal\nsignal.signal(signal.SIGBUS, signal.SIG_IGN)\n' + MAP_SCRIPT('f', 0, 8192))
    const bystander = await startHolder(m.mnt, MAP_SCRIPT('g', 0, 8192))
    const r = sh(`${BIN} inject ${m.mnt} --file ${m.path('f')} --count 5 --interval 0 --seed 3 --must-kill --deliver`)
    expect(r.status, r.stderr).to.equal(0)
    const lines = r.stdout.trim().split('\n')
    expect(lines[0]).to.equal(`inject: seed 3, target ${m.path('f')}, 5 events every 0 ms, through .dmem/mce must_kill deliver`)
    expect(lines.filter(l => l.startsWith('event '))).to.have.length(2) // f has two dpages
    expect(lines.join('\n')).to.include(`SIGBUS ${victim.proc.pid} (python3) sent`)
    const both = [victim.proc.pid!, survivor.proc.pid!].sort((x, y) => x - y)
    const signalled = lines[lines.length - 4].replace(/: .*/, ': ') + lines[lines.length - 4].replace(/^.*: /, '').split(' ').map(Number).sort((x, y) => x - y).join(' ')
    expect(signalled).to.equal(`victims signalled 2: ${both.join(' ')}`)
    expect(lines.slice(-5).filter((_, i) => i !== 1)).to.deep.equal([
      'summary: 2 events (2 poisoned, 0 refused), stopped: no dpages left',
      `processes died 1: ${victim.proc.pid}`,
      `dpages left 0 (of ${m.path('f')})`,
      'seed 3 (the same seed on the same pool picks the same PFNs)'
    ])
    expect(bystander.proc.exitCode).to.equal(null)
    expect(survivor.proc.exitCode).to.equal(null)
    expect(victim.proc.signalCode ?? 'SIGBUS').to.equal('SIGBUS')
  })

  it('--soft-offline retires the picked dpages through .dmem/soft_offline: the file keeps every byte', async function () {
    const m = await DmemfsMount.start('size=16M')
    m.ok('head -c 40K /dev/urandom > f')
    const sum = m.ok('sha256sum f')
    const lines = injectJson(m.mnt, `--soft-offline --file ${m.path('f')} --count 4 --interval 0 --seed 11`)
    const events = lines.filter(l => l.event !== undefined)
    expect(events.map(e => e.report!.state)).to.deep.equal(['used', 'used', 'used', 'used'])
    expect(new Set(events.map(e => e.pfn)).size).to.equal(4)
    expect(lines[4].summary).to.deep.include({ events: 4, soft_offlined: 4, refused: 0, dpages_left: 10, stopped: 'count' })
    expect(m.ok('sha256sum f')).to.equal(sum)
    expect(m.stat()).to.include({ offline_dpages: 4, poisoned_dpages: 0 })
    const offline = m.ok('cat .dmem/offline')
    for (const e of events) expect(offline).to.match(new RegExp(`^${e.pfn} 0$`, 'm')) // 4K dpages: the frame is the dpage
  })

  it('Ctrl-C (SIGINT) stops it cleanly: the summary counts the events printed, exit 0', async function () {
    const m = await DmemfsMount.start('size=16M')
    const proc = spawn(BIN, ['inject', m.mnt, '--count', '0', '--interval', '150', '--seed', '5'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    proc.stdout.on('data', (d: Buffer) => { out += d.toString() })
    try {
      while ((out.match(/^event /gm) ?? []).length < 3) await sleep(20)
      proc.kill('SIGINT')
      const code = await new Promise<number | null>(resolve => proc.on('exit', c => resolve(c)))
      expect(code).to.equal(0)
    } finally {
      proc.kill('SIGKILL')
    }
    const events = (out.match(/^event /gm) ?? []).length
    expect(out).to.include(`summary: ${events} events (${events} poisoned, 0 refused), stopped: interrupted\n`)
    expect(out).to.match(new RegExp(`dpages left ${4096 - events} \\(any\\)\\n`))
    expect(m.stat().poisoned_dpages).to.equal(events)
  })

  it('bad usage is one line and exit 2; only root may inject', async function () {
    const m = await DmemfsMount.start('size=16M,allow_other')
    m.ok('head -c 4K /dev/zero > f')
    const cases: Array<[string, RegExp]> = [
      ['--target some', /--target is used, free or any, not 'some'/],
      ['--count=-1', /--count needs a whole number from 0 to/],
      ['--count -1', /--count needs a value \(a value starting with '-' is written --count=VALUE\)/],
      ['--seed 4294967296', /--seed needs a whole number from 0 to 4294967295/],
      [`--file ${m.path('f')} --target free`, /--file/],
      ['--soft-offline --must-kill', /--soft-offline signals nobody/],
      ['', /inject needs exactly one MOUNTPOINT/]
    ]
    for (const [args, why] of cases) {
      const r = sh(`${BIN} inject ${args === '' ? '' : m.mnt} ${args}`)
      expect(r.status, args).to.equal(2)
      expect(r.stderr.trim().split('\n'), args).to.have.length(1)
      expect(r.stderr, args).to.match(why)
    }
    const r = sh(`setpriv --reuid=65534 --regid=65534 --clear-groups ${BIN} inject ${m.mnt} --interval 0`)
    expect(r.status).to.equal(1)
    expect(r.stderr).to.match(/^dmemfs: only root may inject/)
    expect(m.stat().poisoned_dpages).to.equal(0)
  })
})

describe('knowing what is poisoned: stat --json, pfn FILE, the map and the SVG', function () {
  let m: DmemfsMount

  before(async function () {
    m = await DmemfsMount.start('size=16M,allow_other')
    m.ok('head -c 40K /dev/urandom > f')
  })
  after(stopAll)

  it('pfn FILE counts the poisoned dpages of each run and names them; --json gives them per run', function () {
    const pfn = pfnAt(m.path('f'), 16384 + 5)
    m.ok(`echo "${hex(pfn)} must_kill" > .dmem/mce`)
    m.ok('echo 0x100ff0 > .dmem/mce') // free, not f's
    const text = sh(`${BIN} pfn ${m.path('f')}`)
    expect(text.status, text.stderr).to.equal(0)
    const lines = text.stdout.split('\n')
    expect(lines[1]).to.equal(' run         offset              pfn     frames  poisoned')
    expect(lines[2]).to.match(/^ {3}0 {14}0 +0x[0-9a-f]+ +10 +1$/)
    expect(lines[3]).to.equal(`poisoned dpage ${hex(pfn)} at offset 16384 (frame ${hex(pfn)} failed)`)
    const runs = JSON.parse(sh(`${BIN} pfn ${m.path('f')} --json`).stdout) as Array<{ poisoned: unknown[] }>
    expect(runs.map(r => r.poisoned)).to.deep.equal([[{ dpage_pfn: hex(pfn), pfn: hex(pfn), offset: 16384 }]])
  })

  it('pfn --map draws the file\'s poisoned dpage as ! (poison in a file) and the free one as X, over F', function () {
    const pfn = pfnAt(m.path('f'), 16384)
    const out = sh(`${BIN} pfn ${m.path('f')} --map --cells 4096`)
    expect(out.status, out.stderr).to.equal(0)
    expect(out.stdout).to.match(/^legend: ! poisoned dpage in a file {3}X poisoned free dpage {3}F holds f/m)
    const grid = out.stdout.split('\n').filter(l => /^ {4} *0x[0-9a-f]+ /.test(l)).map(l => l.trim().split(' ')[1]).join('')
    expect(grid.indexOf('!')).to.equal(pfn - 0x100000)
    expect(grid.lastIndexOf('!')).to.equal(pfn - 0x100000)
    expect(grid.indexOf('X')).to.equal(0xff0)
    expect(grid.split('F')).to.have.length(10) // f's other 9 dpages
  })

  it('the SVG gives the two kinds of poison their own class and colour', function () {
    const svg = sh(`${BIN} stat ${m.mnt} --svg - --cells 4096`).stdout
    const cls = (c: string): string[] => svg.split('\n').filter(l => l.startsWith(`<rect class="cell ${c}"`))
    expect(cls('poisoned-file')).to.have.length(1)
    expect(cls('poisoned-file')[0]).to.include('fill="#5f3dc4"').and.include('1 poisoned (1 in a file)')
    expect(cls('poisoned')).to.have.length(1)
    expect(cls('poisoned')[0]).to.include('fill="#d6336c"')
    expect(svg).to.include('<rect class="legend poisoned-file"')
  })

  it('stat --json lists the poisoned dpages for root; for another user the list is absent and stat still works', function () {
    const root = JSON.parse(sh(`${BIN} stat ${m.mnt} --json`).stdout) as { poisoned: Array<{ pfn: string, state: string, path: string | null, flag_names: string[] }> }
    expect(root.poisoned.map(p => [p.state, p.path, p.flag_names])).to.deep.equal([['used', '/f', ['must_kill']], ['free', null, []]])
    const user = sh(`setpriv --reuid=65534 --regid=65534 --clear-groups ${BIN} stat ${m.mnt} --json`)
    expect(user.status, user.stderr).to.equal(0)
    expect(JSON.parse(user.stdout)).to.deep.include({ poisoned: null, poisoned_absent: 'only root may read .dmem/poisoned' })
  })
})
