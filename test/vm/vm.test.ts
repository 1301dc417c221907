// The seed's own use case (`npm run test:vm`, not part of `npm test`): a virtual machine's memory in dpages.
// A real QEMU (Debian's, TCG) boots a Debian kernel with its 256 MiB of RAM in a file on a real dmemfs of
// 2M dpages; one PFN of that RAM goes through the memory-failure path with must_kill and deliver; the
// report must name QEMU at the address of that page in its guest-RAM mapping, and QEMU must die of the
// SIGBUS (under TCG its handler re-raises it). Assets: scripts/vm-assets.sh, from Debian's packages.

import { expect } from 'chai'
import { spawnSync } from 'child_process'
import * as fs from 'fs'
import * as path from 'path'
import { DmemfsMount, isMounted, ROOT, stopAll, tempDir } from '../integration/harness'
import { pfnRuns } from '../integration/children'
import { describeExit, fetchVmAssets, Guest, GUEST_MIB, mappingOf, MARKER, startGuest, VmAssets } from '../../bench/vm'

const MiB = 1 << 20
const DPAGE = 2 * MiB
const FRAME = 4096
const BOOT_TIMEOUT_MS = 180000
const DEATH_TIMEOUT_MS = 30000

interface ReportProcess {
  pid: number
  comm: string
  vaddr: string | null
  mappings: Array<{ start: string, end: string, vaddr: string }>
  signal: string | null
  si_code: string | null
  sent?: boolean
}

/** Writes `line` to .dmem/mce and reads that write's report back from the same descriptor. */
function mce (mnt: string, line: string): string {
  const fd = fs.openSync(path.join(mnt, '.dmem', 'mce'), 'r+')
  try {
    fs.writeSync(fd, line + '\n')
    const buf = Buffer.alloc(1 << 20)
    let len = 0
    for (let n = -1; n !== 0 && len < buf.length; len += n) n = fs.readSync(fd, buf, len, buf.length - len, len)
    return buf.toString('utf8', 0, len)
  } finally {
    fs.closeSync(fd)
  }
}

/** The guest's System RAM ranges as its /init printed them from /proc/iomem (`iomem 00100000-0ffdefff : System RAM`). */
function guestRam (guest: Guest): Array<{ start: bigint, end: bigint }> {
  return guest.guestLines().map(l => /^iomem ([0-9a-f]+)-([0-9a-f]+) : System RAM$/.exec(l.trim()))
    .filter((m): m is RegExpExecArray => m !== null)
    .map(m => ({ start: BigInt('0x' + m[1]), end: BigInt('0x' + m[2]) }))
}

describe('a virtual machine\'s memory on dmemfs (QEMU, TCG)', function () {
  this.timeout(BOOT_TIMEOUT_MS + DEATH_TIMEOUT_MS + 60000)

  let assets: VmAssets
  let guest: Guest | null = null

  before(function () {
    this.timeout(600000) // the first fetch installs QEMU and downloads a kernel
    assets = fetchVmAssets()
  })

  afterEach(async function () {
    if (guest) await guest.kill()
    guest = null
    await stopAll()
  })

  it('boots with its RAM in 2M dpages; a poisoned PFN of it names QEMU at its guest-RAM address and QEMU dies of SIGBUS', async function () {
    const m = await DmemfsMount.start('pagesize=2M')
    const ram = m.path('vm0')
    guest = startGuest(assets, { memPath: ram })
    const bootMs = await guest.waitFor(MARKER, BOOT_TIMEOUT_MS)

    // The guest sees its 256 MiB, all of it below the PCI hole: guest physical address = offset in the file.
    const seen = guestRam(guest)
    expect(seen, guest.output).to.have.length.of.at.least(1)
    expect(seen[seen.length - 1].end < BigInt(GUEST_MIB * MiB), guest.output).to.equal(true)

    // QEMU maps the whole file shared (share=on): guest writes land in the file's dpages.
    const map = mappingOf(guest.pid, ram)
    expect(map, `no mapping of ${ram} in /proc/${guest.pid}/maps`).to.not.equal(null)
    expect(map!.perms).to.equal('rw-s')
    expect(map!.offset).to.equal(0n)
    expect(map!.end - map!.start).to.equal(BigInt(GUEST_MIB * MiB))

    // What the guest touched lives in whole 2M dpages of the pool.
    const runs = pfnRuns(ram)
    expect(runs, 'dmemfs pfn lists no frames: guest RAM is not in dpages').to.have.length.of.at.least(1)
    for (const r of runs) {
      expect(r.offset % DPAGE, `run at offset ${r.offset}`).to.equal(0)
      expect(parseInt(r.pfn, 16) % (DPAGE / FRAME), `run at pfn ${r.pfn}`).to.equal(0)
      expect(r.frames % (DPAGE / FRAME), `run of ${r.frames} frames`).to.equal(0)
    }
    const frames = runs.reduce((n, r) => n + r.frames, 0)
    const st = m.stat()
    expect(st.dpage_shift).to.equal(21)
    expect(st.total_dpages - st.free_dpages).to.equal(frames / (DPAGE / FRAME))

    // A frame of the guest kernel's memory (it is loaded at 16 MiB), else the first frame the guest used.
    const kernel = runs.find(r => 16 * MiB >= r.offset && 16 * MiB < r.offset + r.frames * FRAME)
    const offset = kernel ? 16 * MiB + 17 * FRAME : runs[0].offset
    const run = kernel ?? runs[0]
    const pfn = parseInt(run.pfn, 16) + (offset - run.offset) / FRAME
    const vaddr = map!.start + BigInt(offset)

    const reply = mce(m.mnt, `0x${pfn.toString(16)} must_kill deliver json`)
    const report = JSON.parse(reply) as { state: string, file: { path: string, offset: number } | null, processes: ReportProcess[] }
    expect(report.state).to.equal('used')
    expect(report.file?.path).to.equal('/vm0')
    expect(report.file?.offset).to.equal(offset)
    const qemu = report.processes.find(p => p.pid === guest!.pid)
    expect(qemu, `the report does not list QEMU (pid ${guest.pid}):\n${reply}`).to.not.equal(undefined)
    expect(qemu!.comm).to.equal('qemu-system-x86')
    expect(qemu!.vaddr).to.equal('0x' + vaddr.toString(16))
    expect(BigInt(qemu!.vaddr!) >= map!.start && BigInt(qemu!.vaddr!) < map!.end).to.equal(true)
    expect(qemu!.mappings.map(x => [x.start, x.end])).to.deep.equal([['0x' + map!.start.toString(16), '0x' + map!.end.toString(16)]])
    expect(qemu!.signal).to.equal('SIGBUS')
    expect(qemu!.si_code).to.equal('BUS_MCEERR_AO')
    expect(qemu!.sent, reply).to.equal(true)

    // The address in guest terms: host vaddr - start of the guest-RAM mapping = guest physical address here.
    const gpa = vaddr - map!.start
    expect(seen.some(r => gpa >= r.start && gpa <= r.end), `guest physical 0x${gpa.toString(16)} is not guest RAM`).to.equal(true)

    // QEMU's SIGBUS handler re-raises a SIGBUS it cannot turn into a guest machine check (any SIGBUS under
    // TCG): it dies of it.
    const end = await guest.waitExit(DEATH_TIMEOUT_MS)
    expect(end, `QEMU still runs ${DEATH_TIMEOUT_MS} ms after the SIGBUS:\n${guest.tail()}`).to.not.equal(null)
    expect(end!.signal, `QEMU ${describeExit(end!)}:\n${guest.tail()}`).to.equal('SIGBUS')

    process.stdout.write(`      guest booted to its marker in ${(bootMs / 1000).toFixed(1)} s, ${frames / 512} dpages of 2M; ` +
      `pfn 0x${pfn.toString(16)} = guest physical 0x${gpa.toString(16)} = QEMU vaddr 0x${vaddr.toString(16)}; QEMU ${describeExit(end!)}\n`)
  })
  it('npm run bench -- --quick --only vm: one boot on each mount, the table with the ratio, JSON, nothing left behind', function () {
    const out = path.join(tempDir(), 'result.json')
    const r = spawnSync(process.execPath, [path.join(ROOT, 'dist', 'bench', 'bench.js'), '--quick', '--only', 'vm', '--out', out], {
      cwd: ROOT, encoding: 'utf8', timeout: 2 * BOOT_TIMEOUT_MS, env: { ...process.env, LD_LIBRARY_PATH: undefined }
    })
    const workDir = /work directory (\S+)/.exec(r.stderr)?.[1] ?? ''
    expect(workDir, r.stderr).to.match(/dmemfs-bench-/)
    expect(r.status, `bench exited ${r.status} (${r.signal ?? ''}):\n${r.stderr}`).to.equal(0)
    expect(r.stdout).to.match(/^\| guest boot to user space .* \| s \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$/m)
    const vm = (JSON.parse(fs.readFileSync(out, 'utf8')) as { vm: { dmemfs: number[], tmpfs: number[] } | null }).vm
    expect(vm, r.stderr).to.not.equal(null)
    for (const xs of [vm!.dmemfs, vm!.tmpfs]) {
      expect(xs).to.have.length(1)
      expect(xs[0]).to.be.above(0).and.below(BOOT_TIMEOUT_MS / 1000)
    }
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).to.not.include(workDir)
    expect(isMounted(workDir)).to.equal(false)
    expect(spawnSync('pgrep', ['-f', workDir]).status, 'a process of the run is left').to.equal(1)
    process.stdout.write(`      boot to the marker: dmemfs ${vm!.dmemfs[0].toFixed(1)} s, tmpfs ${vm!.tmpfs[0].toFixed(1)} s\n`)
  })
})
