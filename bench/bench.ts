// The benchmark (`npm run bench`, issue 6): dmemfs against the baseline fuse-native filesystem mounted
// `naive` and `tuned` (bench/baseline.ts) and against tmpfs, all mounted at once on temporary directories,
// each figure measured on every system in turn (the order rotating from one repetition to the next).
// Prints Markdown tables with medians, min–max, ratios and the issue's targets, and writes the raw samples
// as JSON to bench-results/. `--quick` is a smoke run of a few seconds; `--reps N` repeats every compared
// figure, the pool figures and the guest boots N times (default 7, 5 and 5: single runs on a small VM vary
// by tens of per cent, now and then by half);
// `--nouser-xattr` runs dmemfs with -o nouser_xattr and tuned without xattrs (what xattrs cost);
// `--only seq,files,cp,tar,mce,pool,core,vm` runs only those phases; `--out FILE` names the JSON file.
// `vm` boots a QEMU guest with its RAM on dmemfs and on tmpfs (bench/vm.ts); it needs the assets of
// scripts/vm-assets.sh in .cache/vm/ and is skipped, in one line, without them; a --quick run leaves it out
// unless --only names it.

import { ChildProcess, spawn, spawnSync } from 'child_process'
import * as crypto from 'crypto'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { readaheadKb } from '../src/fuse/mount'
import { CoreFigure, measureCore } from './core'
import { measureBoot, renderVm, VmFigure, vmAssets } from './vm'
import { Figure, render, renderCore, SYSTEMS, targets, toJson } from './report'
import { mount, ROOT, run, startIdle, stopIdle, System, SystemName, teardownSync, unmount, work } from './systems'

interface Config {
  reps: number // repetitions of every compared figure
  seqMiB: number // the sequential file
  fioSeconds: number // each random-read run
  files: number // create/unlink
  treeFiles: number // cp -r / tar x
  idle: number // idle processes during the MCE report
  mceSamples: number
  mceMapMiB: number // the file a process maps whole for the MCE figure with a large mapping
  mceMapSamples: number
  pool: string // the dmem= of the pool figure
  poolWriteMiB: number
  poolReps: number
  coreMiB: number // the file of the in-process core figures
  coreCalls: number
  vmReps: number // guest boots on each mount
}

const FULL: Config = {
  reps: 7, seqMiB: 256, fioSeconds: 5, files: 5000, treeFiles: 3000, idle: 1000, mceSamples: 15,
  mceMapMiB: 1024, mceMapSamples: 5, pool: '64G', poolWriteMiB: 1024, poolReps: 5, coreMiB: 256, coreCalls: 200000, vmReps: 5
}
const QUICK: Config = {
  reps: 1, seqMiB: 8, fioSeconds: 0.3, files: 200, treeFiles: 100, idle: 20, mceSamples: 3,
  mceMapMiB: 16, mceMapSamples: 2, pool: '256M', poolWriteMiB: 16, poolReps: 1, coreMiB: 16, coreCalls: 5000, vmReps: 1
}

// One process creates, writes and closes every file, then unlinks them all: the filesystem's rate, not
// process spawning's. Prints the seconds of each phase.
const MANY_FILES_PY = `
import json, os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
os.mkdir(d)
data = b'x' * 4096
t0 = time.perf_counter()
for i in range(n):
    fd = os.open(f'{d}/f{i}', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, data)
    os.close(fd)
t1 = time.perf_counter()
for i in range(n):
    os.unlink(f'{d}/f{i}')
t2 = time.perf_counter()
os.rmdir(d)
print(json.dumps({'create': t1 - t0, 'unlink': t2 - t1}))
`

// Maps the file, reads one byte of each page after drop_caches (each a page fault the kernel takes to the
// mount, with its readahead), then writes every byte and msyncs. Prints the seconds of each.
const MMAP_PY = `
import json, mmap, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
size = os.fstat(fd).st_size
mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
t0 = time.perf_counter()
total = 0
for off in range(0, size, 4096):
    total += mm[off]
t1 = time.perf_counter()
chunk = b'Z' * (1 << 20)
for off in range(0, size, 1 << 20):
    mm[off:off + (1 << 20)] = chunk[:min(1 << 20, size - off)]
mm.flush()
t2 = time.perf_counter()
mm.close()
os.close(fd)
print(json.dumps({'read': t1 - t0, 'write': t2 - t1}))
`

// The blocks the loaded MCE figure's readers read, after the 2 x mceSamples the other MCE figures poison.
const MCE_LOADED_BLOCKS = 64

// Four reader processes, 4 KiB O_DIRECT reads of random blocks of [offset, offset + 4 KiB x blocks) until
// stdin closes. stamps holds, per block, the CLOCK_MONOTONIC time at which the benchmark saw the MCE report
// of that block return (0: none yet); a read begun after that time must fail with EIO. Prints the totals.
const MCE_READERS_PY = `
import json, mmap, os, random, struct, sys, threading, time
path, stamps_path, offset, blocks = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def reader(w):
    sfd = os.open(stamps_path, os.O_RDONLY)
    stamps = mmap.mmap(sfd, 8 * blocks, mmap.MAP_SHARED, mmap.PROT_READ)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, 4096)
    rng = random.Random(w)
    reads = eio = 0
    bad = []
    while not stop[0]:
        b = rng.randrange(blocks)
        t0 = time.monotonic_ns()
        try:
            os.preadv(fd, [buf], offset + 4096 * b)
            reads += 1
            poisoned_at = struct.unpack_from('<q', stamps, 8 * b)[0]
            if 0 < poisoned_at < t0:
                bad.append('block %d read at %d, its report returned at %d' % (b, t0, poisoned_at))
        except OSError as e:
            if e.errno != 5:
                raise
            eio += 1
    os.write(w_out[w], json.dumps([reads, eio, bad]).encode())
stop = [False]
w_out = {}
results = []
def run(w):
    r, wfd = os.pipe()
    w_out[w] = wfd
    pid = os.fork()
    if pid == 0:
        os.close(r)
        threading.Thread(target=lambda: (sys.stdin.read(), stop.__setitem__(0, True))).start()
        reader(w)
        os._exit(0)
    os.close(wfd)
    return pid, r
kids = [run(w) for w in range(4)]
sys.stdin.read()
total = [0, 0, []]
for pid, r in kids:
    data = b''
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.waitpid(pid, 0)
    reads, eio, bad = json.loads(data)
    total[0] += reads
    total[1] += eio
    total[2] += bad
print(json.dumps({'reads': total[0], 'eio': total[1], 'poisoned': total[2]}))
`

function figures (cfg: Config): Figure[] {
  const f = (id: string, label: string, unit: string, better: 'higher' | 'lower' = 'higher', only?: 'dmemfs'): Figure =>
    ({ id, label, unit, better, only, samples: {} })
  const written = cfg.poolWriteMiB >= 1024 ? `${cfg.poolWriteMiB / 1024} GiB` : `${cfg.poolWriteMiB} MiB`
  return [
    f('seq_write', `write ${cfg.seqMiB} MiB, new file (dd bs=1M conv=fsync)`, 'MiB/s'),
    f('seq_overwrite', `overwrite ${cfg.seqMiB} MiB (dd bs=1M conv=notrunc,fsync)`, 'MiB/s'),
    f('seq_read', `read ${cfg.seqMiB} MiB after drop_caches (dd bs=1M)`, 'MiB/s'),
    f('rand_read_1', 'random 4 KiB O_DIRECT reads, 1 job (fio)', 'IOPS'),
    f('rand_read_4', 'random 4 KiB O_DIRECT reads, 4 jobs (fio)', 'IOPS'),
    f('rand_write_1', 'random 4 KiB O_DIRECT overwrites, 1 job (fio)', 'IOPS'),
    f('rand_write_4', 'random 4 KiB O_DIRECT overwrites, 4 jobs (fio)', 'IOPS'),
    f('mmap_read', `mmap read of ${cfg.seqMiB} MiB after drop_caches (page faults)`, 'MiB/s'),
    f('mmap_write', `mmap write of ${cfg.seqMiB} MiB + msync (page faults)`, 'MiB/s'),
    f('create', `${cfg.files} x (create + write 4 KiB + close)`, 'files/s'),
    f('unlink', `unlink ${cfg.files} files`, 'files/s'),
    f('cp_r', `cp -r of a ${cfg.treeFiles}-file tree`, 'files/s'),
    f('tar_x', `tar x of a ${cfg.treeFiles}-file tree`, 'files/s'),
    f('mce_report_idle', 'MCE (must_kill deliver: report, revocation, SIGBUS), no extra processes', 'ms', 'lower', 'dmemfs'),
    f('mce_report', `MCE (must_kill deliver), ${cfg.idle} idle processes`, 'ms', 'lower', 'dmemfs'),
    f('mce_report_map', `MCE (must_kill deliver), a process mapping a ${mapSize(cfg)} file, all cached`, 'ms', 'lower', 'dmemfs'),
    f('mce_revoke_map', `  of which the revocation (dropping that file's cache and mapping)`, 'ms', 'lower', 'dmemfs'),
    f('mce_report_loaded', 'MCE (must_kill deliver) while 4 jobs read the file (O_DIRECT)', 'ms', 'lower', 'dmemfs'),
    f('mce_loaded_reads', 'those 4 jobs\' reads meanwhile, none of a poisoned dpage', 'reads/s', 'higher', 'dmemfs'),
    f('pool_mount', `mount, empty dmem=${cfg.pool} pool of 4K dpages`, 'ms', 'lower', 'dmemfs'),
    f('pool_rss_empty', `daemon RSS, empty dmem=${cfg.pool} pool`, 'MiB', 'lower', 'dmemfs'),
    f('pool_first_write', `first write of ${written} into it (dd bs=1M conv=fsync)`, 'MiB/s', 'higher', 'dmemfs'),
    f('pool_rss_written', `daemon RSS after writing ${written}`, 'MiB', 'lower', 'dmemfs')
  ]
}

function mapSize (cfg: Config): string {
  return cfg.mceMapMiB >= 1024 ? `${cfg.mceMapMiB / 1024} GiB` : `${cfg.mceMapMiB} MiB`
}

function progress (line: string): void {
  process.stderr.write(`bench: ${line}\n`)
}

function seconds (fn: () => void): number {
  const t0 = performance.now()
  fn()
  return (performance.now() - t0) / 1000
}

function dropCaches (): void {
  run('sync', [])
  fs.writeFileSync('/proc/sys/vm/drop_caches', '3')
}

function rssMiB (pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (!m) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(m[1]) / 1024
}

function ensureFio (): string {
  const has = () => spawnSync('sh', ['-c', 'command -v fio'], { stdio: 'ignore' }).status === 0
  if (!has()) {
    progress('fio is missing; installing it with scripts/install-fio.sh')
    spawnSync(path.join(ROOT, 'scripts', 'install-fio.sh'), { stdio: 'inherit' })
    if (!has()) throw new Error('fio is missing and could not be installed: run scripts/install-fio.sh as root')
  }
  return run('fio', ['--version']).trim()
}

/** A tree of `count` small files (512 B to 16 KiB, 100 to a directory) and its tarball, made once. */
function makeTree (dir: string, count: number): { tree: string, tarball: string } {
  const tree = path.join(dir, 'tree')
  const blob = crypto.randomBytes(16384)
  let seed = 42
  const rand = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32 }
  for (let k = 0; k < count; k++) {
    const sub = path.join(tree, `d${Math.floor(k / 500)}`, `s${Math.floor(k / 100) % 5}`)
    if (k % 100 === 0) fs.mkdirSync(sub, { recursive: true })
    fs.writeFileSync(path.join(sub, `f${k}`), blob.subarray(0, 512 + Math.floor(rand() * 15872)))
  }
  const tarball = path.join(dir, 'tree.tar')
  run('tar', ['cf', tarball, '-C', dir, 'tree'])
  return { tree, tarball }
}

class Bench {
  readonly figs: Figure[]
  private readonly byId: Map<string, Figure>

  constructor (
    readonly cfg: Config, readonly tree: string, readonly tarball: string, readonly xattrOption: string,
    readonly only: Set<Phase> | null
  ) {
    this.figs = figures(cfg)
    this.byId = new Map(this.figs.map(f => [f.id, f]))
  }

  private add (id: string, sys: SystemName, value: number): void {
    const f = this.byId.get(id)!
    ;(f.samples[sys] ??= []).push(value)
  }

  private seqFile (sys: System): string {
    return path.join(sys.mnt, 'seq.bin')
  }

  seqWrite (sys: System): void {
    const file = this.seqFile(sys)
    const n = this.cfg.seqMiB
    fs.rmSync(file, { force: true })
    const dd = (conv: string) => seconds(() => run('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${n}`, `conv=${conv}`, 'status=none']))
    this.add('seq_write', sys.name, n / dd('fsync'))
    this.add('seq_overwrite', sys.name, n / dd('notrunc,fsync'))
  }

  seqRead (sys: System): void {
    dropCaches()
    const s = seconds(() => run('dd', [`if=${this.seqFile(sys)}`, 'of=/dev/null', 'bs=1M', 'status=none']))
    this.add('seq_read', sys.name, this.cfg.seqMiB / s)
  }

  randRead (sys: System, jobs: 1 | 4): void {
    this.add(jobs === 1 ? 'rand_read_1' : 'rand_read_4', sys.name, this.fio(sys, 'randread', jobs))
  }

  randWrite (sys: System, jobs: 1 | 4): void {
    this.add(jobs === 1 ? 'rand_write_1' : 'rand_write_4', sys.name, this.fio(sys, 'randwrite', jobs))
  }

  /** Mapped, as a VM's RAM: every page a fault the kernel sends through the mount. */
  mmap (sys: System): void {
    dropCaches()
    const out = run('python3', ['-c', MMAP_PY, this.seqFile(sys)])
    const t = JSON.parse(out) as { read: number, write: number }
    this.add('mmap_read', sys.name, this.cfg.seqMiB / t.read)
    this.add('mmap_write', sys.name, this.cfg.seqMiB / t.write)
  }

  private fio (sys: System, rw: 'randread' | 'randwrite', jobs: 1 | 4): number {
    const out = run('fio', [
      `--name=${rw}`, `--filename=${this.seqFile(sys)}`, `--size=${this.cfg.seqMiB}M`, `--rw=${rw}`,
      '--bs=4k', '--direct=1', '--ioengine=psync', `--numjobs=${jobs}`, '--group_reporting', '--time_based',
      `--runtime=${Math.round(this.cfg.fioSeconds * 1000)}ms`, '--output-format=json'
    ])
    const result = JSON.parse(out.slice(out.indexOf('{'))) as { jobs: Array<{ read: { iops: number }, write: { iops: number }, error: number }> }
    const job = result.jobs[0]
    if (job.error) throw new Error(`fio on ${sys.name}: error ${job.error}`)
    return rw === 'randread' ? job.read.iops : job.write.iops
  }

  removeSeq (sys: System): void {
    fs.rmSync(this.seqFile(sys), { force: true })
  }

  manyFiles (sys: System): void {
    const out = run('python3', ['-c', MANY_FILES_PY, path.join(sys.mnt, 'many'), String(this.cfg.files)])
    const t = JSON.parse(out) as { create: number, unlink: number }
    this.add('create', sys.name, this.cfg.files / t.create)
    this.add('unlink', sys.name, this.cfg.files / t.unlink)
  }

  copyTree (sys: System): void {
    const dest = path.join(sys.mnt, 'copy')
    const s = seconds(() => run('cp', ['-r', this.tree, dest]))
    this.add('cp_r', sys.name, this.cfg.treeFiles / s)
    fs.rmSync(dest, { recursive: true })
  }

  untarTree (sys: System): void {
    const dest = path.join(sys.mnt, 'untar')
    fs.mkdirSync(dest)
    const s = seconds(() => run('tar', ['xf', this.tarball, '-C', dest]))
    this.add('tar_x', sys.name, this.cfg.treeFiles / s)
    fs.rmSync(dest, { recursive: true })
  }

  /** Every compared figure once on every system, in the given order. Each measurement runs synchronously;
   *  between two the event loop gets a turn, so that SIGINT or SIGTERM ends the run there. */
  async round (order: System[], rep: number): Promise<void> {
    const each = async (what: string, fn: (sys: System) => void, phase: Phase) => {
      if (!this.runs(phase)) return
      progress(`run ${rep + 1}/${this.cfg.reps}: ${what} (${order.map(s => s.name).join(', ')})`)
      for (const sys of order) {
        await new Promise(resolve => setImmediate(resolve))
        fn(sys)
      }
    }
    await each('sequential write and overwrite', sys => this.seqWrite(sys), 'seq')
    await each('sequential read', sys => this.seqRead(sys), 'seq')
    await each('random reads, 1 job', sys => this.randRead(sys, 1), 'seq')
    await each('random reads, 4 jobs', sys => this.randRead(sys, 4), 'seq')
    await each('random overwrites, 1 job', sys => this.randWrite(sys, 1), 'seq')
    await each('random overwrites, 4 jobs', sys => this.randWrite(sys, 4), 'seq')
    await each('mmap read and write', sys => this.mmap(sys), 'seq')
    for (const sys of order) this.removeSeq(sys)
    await each('create and unlink', sys => this.manyFiles(sys), 'files')
    await each('cp -r', sys => this.copyTree(sys), 'cp')
    await each('tar x', sys => this.untarTree(sys), 'tar')
  }

  runs (phase: Phase): boolean {
    return this.only === null || this.only.has(phase)
  }

  /** The figures measured: all of them, or with --only those of the phases run. */
  measured (): Figure[] {
    return this.figs.filter(f => Object.keys(f.samples).length > 0 || this.only === null)
  }

  /** The memory-failure path as a write to .dmem/mce sees it: PFNs of a file another process maps whole
   *  (and has read, so the kernel caches all of it), one per sample, each written with `must_kill deliver`
   *  and its reply read back: the report, the revocation of the file's cached pages and mapping, and the
   *  SIGBUS (which the mapper handles). Without and then with idle processes, which (like most of a
   *  machine's) have nothing to do with the file; then with a large file mapped, on a pool of its own. */
  async mce (dm: System): Promise<void> {
    const n = this.cfg.mceSamples
    const file = path.join(dm.mnt, 'mce.bin')
    run('dd', ['if=/dev/urandom', `of=${file}`, 'bs=4k', `count=${MCE_LOADED_BLOCKS + 2 * n}`, 'conv=fsync', 'status=none'])
    const mapper = await Mapper.start(file)
    try {
      const pfns = pfnsOf(dm.mnt, fs.statSync(file).ino)
      if (pfns.length < MCE_LOADED_BLOCKS + 2 * n) throw new Error(`.dmem/pfns lists ${pfns.length} frames of ${file}`)
      progress(`MCE, no extra processes (${n} samples)`)
      for (let i = 0; i < n; i++) this.add('mce_report_idle', 'dmemfs', (await mapper.mce(dm.mnt, pfns[i], i)).ms)
      progress(`MCE, ${this.cfg.idle} idle processes (${n} samples)`)
      const group = await startIdle(this.cfg.idle)
      try {
        for (let i = n; i < 2 * n; i++) this.add('mce_report', 'dmemfs', (await mapper.mce(dm.mnt, pfns[i], i)).ms)
      } finally {
        stopIdle(group)
      }
      await this.mceLoaded(dm, file, pfns, mapper)
    } finally {
      await mapper.stop()
      fs.rmSync(file)
    }
    await this.mceMapped()
  }

  /** The same with a process mapping a large file, all of it read first and so cached: the revocation
   *  drops every page of it. Samples are spread over the file; the mapper reads it all again before each. */
  private async mceMapped (): Promise<void> {
    const mib = this.cfg.mceMapMiB
    const sys = await mount('dmemfs', `size=${mib + 64}M`, 'mcemap')
    try {
      const file = path.join(sys.mnt, 'map.bin')
      progress(`MCE, a process mapping a ${mapSize(this.cfg)} file: writing it`)
      run('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${mib}`, 'conv=fsync', 'status=none'])
      const mapper = await Mapper.start(file)
      try {
        const pfns = pfnsOf(sys.mnt, fs.statSync(file).ino)
        const n = this.cfg.mceMapSamples
        for (let i = 0; i < n; i++) {
          progress(`MCE, a process mapping a ${mapSize(this.cfg)} file (${i + 1}/${n})`)
          const page = Math.floor((i + 0.5) * pfns.length / n)
          const r = await mapper.mce(sys.mnt, pfns[page], page)
          this.add('mce_report_map', 'dmemfs', r.ms)
          this.add('mce_revoke_map', 'dmemfs', r.revokeMs)
        }
      } finally {
        await mapper.stop()
      }
    } finally {
      await unmount(sys)
    }
  }

  /** The MCE report while four readers read the file with O_DIRECT as fast as they can: each report's time,
   *  and proof that no read begun after a report returned gave bytes of that report's dpage (the readers
   *  check every read against the times written to a shared file; see MCE_READERS_PY). */
  async mceLoaded (dm: System, file: string, pfns: number[], mapper: Mapper): Promise<void> {
    const n = this.cfg.mceSamples
    progress(`MCE report while 4 jobs read the file (${n} samples)`)
    const offset = 2 * n * 4096 // the readers read the blocks after those poisoned above
    const stamps = path.join(work(), 'mce-stamps')
    fs.writeFileSync(stamps, Buffer.alloc(8 * MCE_LOADED_BLOCKS))
    const readers = spawn('python3', ['-c', MCE_READERS_PY, file, stamps, String(offset), String(MCE_LOADED_BLOCKS)],
      { stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    readers.stdout!.on('data', (d: Buffer) => { out += d.toString() })
    readers.stderr!.on('data', (d: Buffer) => { err += d.toString() })
    const done = new Promise<void>(resolve => readers.once('exit', () => resolve()))
    try {
      await new Promise(resolve => setTimeout(resolve, 300)) // the readers at full speed
      const stampFd = fs.openSync(stamps, 'r+')
      const t0 = performance.now()
      try {
        // Spread over the blocks the readers read, a few apart, so each report poisons one they hit.
        for (let i = 0; i < n; i++) {
          const block = Math.floor((i + 0.5) * MCE_LOADED_BLOCKS / n)
          this.add('mce_report_loaded', 'dmemfs', (await mapper.mce(dm.mnt, pfns[2 * n + block], 2 * n + block)).ms)
          const stamp = Buffer.alloc(8)
          stamp.writeBigInt64LE(process.hrtime.bigint()) // CLOCK_MONOTONIC, as Python's time.monotonic_ns
          fs.writeSync(stampFd, stamp, 0, 8, 8 * block)
          await new Promise(resolve => setTimeout(resolve, 20))
        }
      } finally {
        fs.closeSync(stampFd)
      }
      const seconds = (performance.now() - t0) / 1000
      readers.stdin!.end()
      await done
      const r = JSON.parse(out) as { reads: number, eio: number, poisoned: string[] }
      if (r.poisoned.length > 0) throw new Error(`reads after an MCE report returned gave poisoned bytes: ${r.poisoned.slice(0, 3).join('; ')}`)
      if (r.eio === 0) throw new Error('the readers never met a poisoned dpage: the check checked nothing')
      this.add('mce_loaded_reads', 'dmemfs', r.reads / seconds)
    } catch (e) {
      if (err) progress(`MCE readers: ${err.trim()}`)
      throw e
    } finally {
      readers.kill('SIGKILL')
    }
  }

  /** Mount time and daemon RSS of an empty pool, then the first write into it and the RSS after. */
  async pool (rep: number): Promise<void> {
    progress(`pool dmem=${this.cfg.pool}: mount, write ${this.cfg.poolWriteMiB} MiB (${rep + 1}/${this.cfg.poolReps})`)
    const sys = await mount('dmemfs', [`dmem=${this.cfg.pool}`, this.xattrOption].filter(o => o).join(','), `pool${rep}`)
    try {
      const pid = sys.proc!.pid! // bin/dmemfs execs node: the spawned pid is the daemon's
      this.add('pool_mount', 'dmemfs', sys.mountMs)
      this.add('pool_rss_empty', 'dmemfs', rssMiB(pid))
      const n = this.cfg.poolWriteMiB
      const s = seconds(() => run('dd', ['if=/dev/zero', `of=${path.join(sys.mnt, 'fill.bin')}`, 'bs=1M', `count=${n}`, 'conv=fsync', 'status=none']))
      this.add('pool_first_write', 'dmemfs', n / s)
      this.add('pool_rss_written', 'dmemfs', rssMiB(pid))
    } finally {
      await unmount(sys)
    }
  }
}

/** Every 4 KiB frame backing inode `ino`, in file order, from .dmem/pfns (`ino offset pfn frames path`). */
function pfnsOf (mnt: string, ino: number): number[] {
  const frames: number[] = []
  for (const line of fs.readFileSync(path.join(mnt, '.dmem', 'pfns'), 'utf8').split('\n')) {
    const f = line.split(' ')
    if (f.length < 5 || Number(f[0]) !== ino) continue
    const first = Number(f[2])
    for (let i = 0; i < Number(f[3]); i++) frames.push(first + i)
  }
  return frames
}

// Maps the file whole, handles SIGBUS, and on `touch SKIP...` reads one byte of every page but those
// given (the poisoned ones: touching one would fault again and again), so the kernel caches all of it.
const MAPPER_PY = `
import mmap, os, signal, sys
signal.signal(signal.SIGBUS, lambda *a: sys.stdout.write('sigbus\\n') or sys.stdout.flush())
fd = os.open(sys.argv[1], os.O_RDWR)
size = os.fstat(fd).st_size
m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
for line in sys.stdin:
    skip = set(int(w) for w in line.split()[1:])
    for page in range(size // 4096):
        if page not in skip:
            m[page * 4096]
    sys.stdout.write('touched\\n')
    sys.stdout.flush()
`

const mappers = new Set<ChildProcess>()
process.on('exit', () => { for (const p of mappers) p.kill('SIGKILL') })
const TOUCH_TIMEOUT_MS = 120000

/** The process the MCE figures signal: it maps a file of the mount whole and survives its SIGBUS. */
class Mapper {
  private out = ''
  private readonly poisoned: number[] = []
  private constructor (readonly proc: ChildProcess) {
    proc.stdout!.on('data', (d: Buffer) => { this.out += d.toString() })
  }

  static async start (file: string): Promise<Mapper> {
    const proc = spawn('python3', ['-c', MAPPER_PY, file], { stdio: ['pipe', 'pipe', 'inherit'] })
    mappers.add(proc)
    proc.on('exit', () => mappers.delete(proc))
    const m = new Mapper(proc)
    await m.touch()
    return m
  }

  /** Reads every page but the poisoned ones, so that all of the file is cached and mapped again. */
  private async touch (): Promise<void> {
    const before = this.out.split('touched').length
    this.proc.stdin!.write(['touch', ...this.poisoned].join(' ') + '\n')
    const deadline = Date.now() + TOUCH_TIMEOUT_MS
    while (this.out.split('touched').length === before) {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) throw new Error('the mapping process died')
      if (Date.now() > deadline) throw new Error('the mapping process did not read its file within 2 minutes')
      await new Promise(resolve => setTimeout(resolve, 5))
    }
  }

  /** Poisons `pfn` (file page `page`) with must_kill deliver; the milliseconds from the write to the end
   *  of the reply, and those the report gives the revocation. */
  async mce (mnt: string, pfn: number, page: number): Promise<{ ms: number, revokeMs: number }> {
    await this.touch()
    this.poisoned.push(page)
    const fd = fs.openSync(path.join(mnt, '.dmem', 'mce'), 'r+')
    try {
      const buf = Buffer.alloc(1 << 20)
      const t0 = performance.now()
      fs.writeSync(fd, `0x${pfn.toString(16)} must_kill deliver\n`)
      let len = 0
      for (let n = -1; n !== 0 && len < buf.length; len += n) n = fs.readSync(fd, buf, len, buf.length - len, len)
      const ms = performance.now() - t0
      const reply = buf.toString('utf8', 0, len)
      if (!new RegExp(`^process ${this.proc.pid} .* sent way `, 'm').test(reply)) {
        throw new Error(`the MCE report for 0x${pfn.toString(16)} does not signal the mapper ${this.proc.pid}:\n${reply}`)
      }
      const revoked = /^revoked page cache and mappings by an open of .* \(([\d.]+) ms/m.exec(reply)
      if (!revoked) throw new Error(`the MCE report for 0x${pfn.toString(16)} revoked nothing:\n${reply}`)
      return { ms, revokeMs: Number(revoked[1]) }
    } finally {
      fs.closeSync(fd)
    }
  }

  async stop (): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return
    this.proc.kill('SIGKILL')
    await new Promise(resolve => this.proc.once('exit', resolve))
  }
}

/** Guest boot time with RAM on dmemfs (2M dpages) and on tmpfs, or null with one line if the VM assets
 *  are not there. */
async function measureVm (reps: number): Promise<VmFigure | null> {
  const assets = vmAssets()
  if (typeof assets === 'string') {
    progress(`vm: skipped: ${assets}`)
    return null
  }
  const dmemfs = await mount('dmemfs', 'pagesize=2M', 'vm-dmemfs')
  const tmpfs = await mount('tmpfs', '', 'vm-tmpfs')
  try {
    return await measureBoot(assets, { dmemfs: dmemfs.mnt, tmpfs: tmpfs.mnt }, reps, progress)
  } finally {
    await unmount(dmemfs)
    await unmount(tmpfs)
  }
}

interface Args {
  quick: boolean
  out: string | null
  reps: number | null
  noUserXattr: boolean // dmemfs -o nouser_xattr, and tuned without xattrs
  only: Set<Phase> | null // run only these phases
}

// The phases --only can pick, each a group of figures measured together.
const PHASES = ['seq', 'files', 'cp', 'tar', 'mce', 'pool', 'core', 'vm'] as const
type Phase = typeof PHASES[number]

function parseArgs (argv: string[]): Args {
  let quick = false
  let out: string | null = null
  let reps: number | null = null
  let noUserXattr = false
  let only: Set<Phase> | null = null
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--quick') quick = true
    else if (argv[i] === '--nouser-xattr') noUserXattr = true
    else if (argv[i] === '--only' && (argv[i + 1] ?? '').split(',').every(p => (PHASES as readonly string[]).includes(p))) {
      only = new Set(argv[++i].split(',') as Phase[])
    }
    else if (argv[i] === '--out' && i + 1 < argv.length) out = path.resolve(argv[++i])
    else if (argv[i] === '--reps' && /^[1-9]\d*$/.test(argv[i + 1] ?? '')) reps = Number(argv[++i])
    else {
      process.stderr.write(`usage: npm run bench [-- [--quick] [--reps N] [--nouser-xattr] [--only ${PHASES.join(',')}] [--out FILE.json]]\n`)
      process.exit(2)
    }
  }
  return { quick, out, reps, noUserXattr, only }
}

async function main (): Promise<void> {
  const args = parseArgs(process.argv.slice(2))
  const cfg = { ...(args.quick ? QUICK : FULL) }
  if (args.reps) cfg.reps = cfg.poolReps = cfg.vmReps = args.reps
  // Whatever happens, every daemon, mount and idle process goes; SIGINT/SIGTERM end the run.
  process.on('exit', teardownSync)
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.on(sig, () => {
      progress(`${sig}: unmounting everything`)
      process.exit(code)
    })
  }
  const fio = args.only && !args.only.has('seq') ? 'fio not used' : ensureFio()
  const started = new Date()
  progress(`work directory ${work()}; ${args.quick ? 'quick smoke run' : 'full run'}`)

  // The tree's source lives on a tmpfs of its own, so that drop_caches does not send cp and tar to the disk.
  const data = await mount('tmpfs', '', 'data')
  const { tree, tarball } = makeTree(data.mnt, cfg.treeFiles)
  // -o for dmemfs, and the baseline's argument for tuned: both without xattrs, or both with.
  const xattrOption = args.noUserXattr ? 'nouser_xattr' : ''
  const bench = new Bench(cfg, tree, tarball, xattrOption, args.only)
  const systems: System[] = []
  let core: CoreFigure[] = []
  let vm: VmFigure | null = null
  const readahead: Record<string, number | null> = {}
  try {
    for (const name of SYSTEMS) systems.push(await mount(name, name === 'dmemfs' || name === 'tuned' ? xattrOption : ''))
    // The sequential and mmap reads depend on it: said, so that a run's figures can be read against it.
    for (const sys of systems) readahead[sys.name] = readaheadKb(sys.mnt)
    progress(`readahead windows (KiB): ${systems.map(s => `${s.name} ${readahead[s.name] ?? '?'}`).join(', ')}`)
    for (let rep = 0; rep < cfg.reps; rep++) {
      await bench.round(systems.map((_, i) => systems[(i + rep) % systems.length]), rep)
    }
    if (bench.runs('mce')) await bench.mce(systems[0])
    for (const sys of systems) await unmount(sys)
    systems.length = 0
    if (bench.runs('core')) {
      progress(`dmemfs's core in-process: ${cfg.coreCalls} reads and writes`)
      core = measureCore(cfg.coreMiB, cfg.coreCalls)
    }
    for (let rep = 0; rep < cfg.poolReps && bench.runs('pool'); rep++) await bench.pool(rep)
    // A quick run is a smoke run of seconds: guest boots (tens of seconds each) only when asked for.
    if (args.quick ? args.only?.has('vm') : bench.runs('vm')) vm = await measureVm(cfg.vmReps)
  } finally {
    for (const sys of systems) await unmount(sys)
    await unmount(data)
  }

  const figs = bench.measured()
  const ts = targets(figs, { writtenMiB: cfg.poolWriteMiB })
  const meta = {
    date: started.toISOString(),
    quick: args.quick,
    nouserXattr: args.noUserXattr,
    only: args.only ? [...args.only] : null,
    config: cfg,
    host: { kernel: os.release(), cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? '', memMiB: Math.round(os.totalmem() / 2 ** 20) },
    node: process.version,
    fio,
    readaheadKb: readahead
  }
  const out = args.out ?? path.join(ROOT, 'bench-results', `${started.toISOString().replace(/[:.]/g, '-')}.json`)
  fs.mkdirSync(path.dirname(out), { recursive: true })
  fs.writeFileSync(out, JSON.stringify({ ...(toJson(figs, ts, meta) as object), core, vm }, null, 2) + '\n')

  const passed = ts.filter(t => t.pass).length
  process.stdout.write([
    `dmemfs benchmark, ${started.toISOString()}: ${os.cpus().length} CPUs, Linux ${os.release()}, node ${process.version}, ${fio}` +
      (args.noUserXattr ? ', dmemfs -o nouser_xattr and tuned without xattrs' : '') +
      (args.quick ? ' (quick smoke run: sizes too small for the targets to mean anything)' : ''),
    '',
    ...[render(figs, ts), core.length ? renderCore(core) : '', vm ? renderVm(vm) : ''].filter(part => part).join('\n\n').split('\n'),
    '',
    `targets: ${passed} of ${ts.length} pass`,
    `results: ${out.startsWith(process.cwd() + path.sep) ? path.relative(process.cwd(), out) : out}`,
    ''
  ].join('\n'))
}

main().then(() => process.exit(0), (err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
