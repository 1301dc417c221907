// The benchmark's smoke mode (`npm run bench -- --quick`), run as the user runs it, so that it never rots:
// it must finish, print its tables with every system, write JSON with every figure, and leave no mount,
// daemon or idle process behind.

import { expect } from 'chai'
import { spawnSync } from 'child_process'
import * as fs from 'fs'
import * as path from 'path'
import { ROOT, sh, tempDir } from './harness'
import { mount, System, teardownSync, unmount } from '../../bench/systems'

const BENCH = path.join(ROOT, 'dist', 'bench', 'bench.js')
const SYSTEMS = ['dmemfs', 'dmemfs-ts', 'tuned', 'naive', 'tmpfs']
const COMPARED = [
  'seq_write', 'seq_overwrite', 'seq_read', 'rand_read_1', 'rand_read_4', 'rand_write_1', 'rand_write_4', 'mmap_read',
  'mmap_write', 'create', 'unlink', 'cp_r', 'tar_x'
]
const DMEMFS_ONLY = [
  'mce_report_idle', 'mce_report', 'mce_report_map', 'mce_revoke_map', 'mce_report_loaded', 'mce_loaded_reads', 'pool_mount', 'pool_rss_empty', 'pool_first_write', 'pool_rss_written'
]

interface Result { samples: number[], median: number, min: number, max: number }
interface Report {
  quick: boolean
  figures: Record<string, { results: Record<string, Result>, ratios: Record<string, number | null> | null }>
  targets: Array<{ figure: string, pass: boolean }>
}

// A run's work directory (it prints it) is in the path of each of its mounts and daemons and in the name
// of its idle processes (bench/systems.ts): what still has it after the run was left behind.
function leftoverMounts (id: string): string[] {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map(l => l.split(' ')[4]).filter(m => m?.includes(id))
}

function leftoverProcesses (id: string): number[] {
  return fs.readdirSync('/proc').filter(p => /^\d+$/.test(p)).filter(pid => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(id)
    } catch {
      return false // gone meanwhile
    }
  }).map(Number)
}

describe('npm run bench -- --quick', function () {
  this.timeout(90000)

  before(function () {
    // The benchmark installs fio itself if it is missing; done here so its time is not the smoke run's.
    this.timeout(300000)
    const r = sh(path.join(ROOT, 'scripts', 'install-fio.sh'))
    if (r.status !== 0) throw new Error(`scripts/install-fio.sh failed: ${r.stderr.trim()}`)
  })

  let workDir = ''

  after(function () {
    // Whatever a broken run left: unmounted and killed, so that later tests start clean.
    if (!workDir) return
    const id = path.basename(workDir)
    for (const mnt of leftoverMounts(id)) spawnSync('umount', ['-l', mnt])
    for (const pid of leftoverProcesses(id)) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // gone meanwhile
      }
    }
  })

  it('runs in under a minute, prints every system, writes JSON with every figure, leaves nothing behind', function () {
    const out = path.join(tempDir(), 'result.json')
    const r = spawnSync(process.execPath, [BENCH, '--quick', '--out', out], {
      cwd: ROOT, encoding: 'utf8', timeout: 60000, env: { ...process.env, LD_LIBRARY_PATH: undefined }
    })
    workDir = /work directory (\S+)/.exec(r.stderr)?.[1] ?? ''
    expect(workDir, r.stderr).to.match(/dmemfs-bench-/)
    expect(r.status, `bench exited ${r.status} (${r.signal ?? ''}):\n${r.stderr}`).to.equal(0)

    const header = r.stdout.split('\n').find(l => l.startsWith('| figure') && l.includes('naive') && l.includes('unit'))
    expect(header, r.stdout).to.be.a('string')
    for (const sys of SYSTEMS) expect(header).to.match(new RegExp(`\\| ${sys}\\s+\\|`))
    expect(r.stdout).to.include('dmemfs/dmemfs-ts').and.include('dmemfs/tuned').and.include('dmemfs/naive').and.include('dmemfs/tmpfs')
    expect(r.stdout).to.match(/targets: \d+ of \d+ pass/)
    expect(r.stdout).to.include(`results: ${out}`)

    const report = JSON.parse(fs.readFileSync(out, 'utf8')) as Report
    expect(report.quick).to.equal(true)
    expect(Object.keys(report.figures)).to.have.members([...COMPARED, ...DMEMFS_ONLY])
    const positive = (id: string, sys: string) => {
      const res = report.figures[id].results[sys]
      expect(res, `${id} on ${sys}`).to.be.an('object')
      expect(res.samples, `${id} on ${sys}`).to.have.length.of.at.least(1)
      for (const x of [...res.samples, res.median, res.min, res.max]) expect(x, `${id} on ${sys}`).to.be.a('number').above(0)
    }
    for (const id of COMPARED) {
      for (const sys of SYSTEMS) positive(id, sys)
      expect(Object.keys(report.figures[id].ratios!)).to.have.members(['dmemfs/dmemfs-ts', 'dmemfs/tuned', 'dmemfs/naive', 'dmemfs/tmpfs'])
    }
    for (const id of DMEMFS_ONLY) positive(id, 'dmemfs')
    const core = (report as Report & { core: Array<{ label: string, dmemfsUs: number, copyUs: number }> }).core
    expect(core.map(c => c.label)).to.have.length(2)
    for (const c of core) expect([c.dmemfsUs, c.copyUs]).to.satisfy((xs: number[]) => xs.every(x => x > 0))
    expect(r.stdout).to.include('dmemfs\'s core alone')
    expect(report.targets.length).to.be.above(COMPARED.length)

    const id = path.basename(workDir)
    expect(leftoverMounts(id)).to.deep.equal([])
    expect(leftoverProcesses(id)).to.deep.equal([])
    expect(fs.existsSync(workDir)).to.equal(false)
  })

  it('--only files --nouser-xattr: measures create and unlink alone, with xattrs off on both sides', function () {
    const out = path.join(tempDir(), 'result.json')
    const r = spawnSync(process.execPath, [BENCH, '--quick', '--only', 'files', '--nouser-xattr', '--out', out], {
      cwd: ROOT, encoding: 'utf8', timeout: 60000, env: { ...process.env, LD_LIBRARY_PATH: undefined }
    })
    workDir = /work directory (\S+)/.exec(r.stderr)?.[1] ?? workDir
    expect(r.status, `bench exited ${r.status} (${r.signal ?? ''}):\n${r.stderr}`).to.equal(0)
    expect(r.stdout).to.include('dmemfs -o nouser_xattr and tuned without xattrs')
    const report = JSON.parse(fs.readFileSync(out, 'utf8')) as Report & { only: string[], nouserXattr: boolean }
    expect(Object.keys(report.figures)).to.have.members(['create', 'unlink'])
    expect(report.only).to.deep.equal(['files'])
    expect(report.nouserXattr).to.equal(true)
  })

  it('--only vm without the VM assets: says so in one line and skips the phase', function () {
    const out = path.join(tempDir(), 'result.json')
    const r = spawnSync(process.execPath, [BENCH, '--quick', '--only', 'vm', '--out', out], {
      cwd: ROOT, encoding: 'utf8', timeout: 60000, env: { ...process.env, LD_LIBRARY_PATH: undefined, DMEMFS_VM_CACHE: tempDir() }
    })
    workDir = /work directory (\S+)/.exec(r.stderr)?.[1] ?? workDir
    expect(r.status, `bench exited ${r.status} (${r.signal ?? ''}):\n${r.stderr}`).to.equal(0)
    const said = r.stderr.split('\n').filter(l => l.includes('vm:'))
    expect(said).to.have.length(1)
    expect(said[0]).to.match(/^bench: vm: skipped: .*no VM assets in .*scripts\/vm-assets\.sh/)
    const report = JSON.parse(fs.readFileSync(out, 'utf8')) as Report & { vm: unknown }
    expect(report.vm).to.equal(null)
    expect(Object.keys(report.figures)).to.deep.equal([])
  })

  it('refuses an unknown phase with its usage line', function () {
    const r = spawnSync(process.execPath, [BENCH, '--only', 'nope'], { cwd: ROOT, encoding: 'utf8', timeout: 10000 })
    expect(r.status).to.equal(2)
    expect(r.stderr).to.match(/^usage: npm run bench .*--only seq,files,cp,tar,mce,pool/)
  })
})

// tuned stands for "what any fuse-native filesystem with dmemfs's interface pays": the same options and, as
// with dmemfs, user xattrs unless nouser_xattr (a filesystem with getxattr is asked for security.capability
// before every write). naive, a few dozen lines with fuse-native's defaults, has none.
describe('the benchmark\'s baseline filesystem', function () {
  this.timeout(30000)

  const XATTR_PY = `
import os, sys
f = os.path.join(sys.argv[1], 'x')
open(f, 'w').close()
try:
    os.setxattr(f, 'user.k', b'v')
    print(os.getxattr(f, 'user.k').decode(), *os.listxattr(f))
except OSError as e:
    print('errno', e.errno)
`
  const mounted: System[] = []
  const xattrs = async (name: 'tuned' | 'naive', option = ''): Promise<string> => {
    const sys = await mount(name, option, `${name}-${mounted.length}`)
    mounted.push(sys)
    const r = spawnSync('python3', ['-c', XATTR_PY, sys.mnt], { encoding: 'utf8' })
    expect(r.status, r.stderr).to.equal(0)
    return r.stdout.trim()
  }

  after(async function () {
    for (const sys of mounted) await unmount(sys)
    teardownSync()
  })

  it('tuned has user xattrs as dmemfs does', async function () {
    expect(await xattrs('tuned')).to.equal('v user.k')
  })

  it('tuned has none with nouser_xattr', async function () {
    expect(await xattrs('tuned', 'nouser_xattr')).to.equal('errno 95') // EOPNOTSUPP: libfuse's ENOSYS
  })

  it('naive has none', async function () {
    expect(await xattrs('naive')).to.equal('errno 95')
  })
})
