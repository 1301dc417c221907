// Injecting as RAS engineers do, on a real mount: a frame named by a byte of a file or an address in a real
// process, soft offline and unpoison --all from the CLI. Every injection goes through the mount's control files.

import { expect } from 'chai'
import * as fs from 'fs'
import { BIN, DmemfsMount, sh, stopAll } from './harness'
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
    const pfn = pfnAt(m.path('data'), 0) // any: only to compare with below
    expect(pfn).to.be.a('number')
    const r = sh(`${BIN} mce --file $'${m.mnt}/\\xff x' --offset 0x2000 --json`)
    expect(r.status, r.stderr).to.equal(0)
    const report = JSON.parse(r.stdout) as { target: Target, pfn: string, file: { offset: number } }
    expect(report.target).to.deep.equal({ how: 'file', path: `${m.mnt}/\udcff x`, offset: 8192, pfn: report.pfn })
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
    for (const args of [`--file ${m.path('data')}`, '--pid 1', `${m.mnt} 0x100000 --file ${m.path('data')} --offset 0`,
      `--file ${m.path('data')} --offset 0 --pid 1 --vaddr 0`]) {
      const r = sh(`${BIN} mce ${args}`)
      expect(r.status, args).to.equal(2)
      expect(r.stderr.trim().split('\n'), args).to.have.length(1)
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
