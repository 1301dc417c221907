// The `dmemfs` command: mount options, mount points, signals, unmount, page sizes, nodes and a full pool.

import { expect } from 'chai'
import * as fs from 'fs'
import { BIN, DmemfsMount, isMounted, sh, stopAll, tempDir } from './harness'

describe('dmemfs CLI', function () {
  afterEach(stopAll)

  describe('bad mount options', function () {
    const cases: Array<[string, RegExp]> = [
      ['pagesize=3K', /pagesize=3K.*unknown pagesize/],
      ['dmem=100M', /dmem=100M.*multiple of align/],
      ['dmem=1G@0', /dmem=1G@0.*address must not be 0/],
      ['dmem=1G:3M', /dmem=1G:3M.*power of two/],
      ['max_alloc_try_dpages=0', /max_alloc_try_dpages=0/],
      ['nodes=0', /nodes=0/],
      ['bogus=1', /unknown mount option 'bogus'/],
      ['size=64M,dmem=1G', /give one/],
      ['mode=999', /mode=999/],
      ['pagesize=1G,size=4M', /no whole 1G dpage/]
    ]
    for (const [opt, message] of cases) {
      it(`-o ${opt}: one clear line, exit 2, nothing mounted`, function () {
        const mnt = tempDir()
        const r = sh(`${BIN} mount ${mnt} -o ${opt}`)
        expect(r.status).to.equal(2)
        expect(r.stderr.trim().split('\n')).to.have.length(1)
        expect(r.stderr).to.match(message)
        expect(isMounted(mnt)).to.equal(false)
      })
    }
  })

  describe('mount points', function () {
    it('a missing directory is a clear error', function () {
      const r = sh(`${BIN} mount /nonexistent/dmemfs-mnt`)
      expect(r.status).to.equal(1)
      expect(r.stderr).to.match(/does not exist/)
    })

    it('a non-empty directory is a clear error', function () {
      const mnt = tempDir()
      fs.writeFileSync(`${mnt}/x`, 'x')
      const r = sh(`${BIN} mount ${mnt}`)
      expect(r.status).to.equal(1)
      expect(r.stderr).to.match(/not empty/)
      expect(isMounted(mnt)).to.equal(false)
    })

    it('a live dmemfs cannot be mounted over', async function () {
      const m = await DmemfsMount.start('size=4M')
      const r = sh(`${BIN} mount ${m.mnt}`)
      expect(r.status).to.equal(1)
      expect(r.stderr).to.match(/already mounted/)
      expect(m.ok('cat .dmem/stat')).to.include('total_dpages: 1024')
    })

    it('a stale mount left by a dead daemon is cleared and mounted over', async function () {
      const dead = await DmemfsMount.start('size=4M')
      // Its unmounter child would unmount once the daemon is gone: it dies first, as if killed with it.
      const children = fs.readFileSync(`/proc/${dead.proc.pid}/task/${dead.proc.pid}/children`, 'utf8').trim().split(' ')
      for (const pid of children) process.kill(Number(pid), 'SIGKILL')
      dead.proc.kill('SIGKILL')
      await dead.waitExit()
      expect(sh(`ls ${dead.mnt}`).stderr).to.match(/Transport endpoint is not connected/)
      const m = await DmemfsMount.start('size=8M', dead.mnt)
      expect(m.stat().total_dpages).to.equal(2048)
    })
  })

  describe('life cycle', function () {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      it(`${signal} unmounts cleanly and exits 0`, async function () {
        const m = await DmemfsMount.start('size=4M')
        m.ok('echo data > f')
        expect(await m.stop(signal)).to.equal(0)
        expect(isMounted(m.mnt)).to.equal(false)
        expect(fs.readdirSync(m.mnt)).to.deep.equal([])
      })
    }

    it('Ctrl-C (SIGINT to the whole process group) unmounts cleanly and exits 0', async function () {
      const m = await DmemfsMount.start('size=4M', tempDir(), { detached: true })
      process.kill(-m.proc.pid!, 'SIGINT')
      expect(await m.stop()).to.equal(0)
      expect(isMounted(m.mnt)).to.equal(false)
    })

    it('dmemfs umount unmounts and the daemon exits 0', async function () {
      const m = await DmemfsMount.start('size=4M')
      const r = sh(`${BIN} umount ${m.mnt}`)
      expect(r.status, r.stderr).to.equal(0)
      expect(isMounted(m.mnt)).to.equal(false)
      expect(await m.waitExit()).to.equal(0)
    })

    it('dmemfs umount of something that is not a dmemfs is refused', function () {
      const r = sh(`${BIN} umount ${tempDir()}`)
      expect(r.status).to.equal(1)
      expect(r.stderr).to.match(/not mounted/)
    })

    it('--help for the command and each subcommand', function () {
      expect(sh(`${BIN} --help`).stdout).to.match(/usage: dmemfs COMMAND/)
      expect(sh(`${BIN} mount --help`).stdout).to.match(/pagesize=4K\|2M\|1G/)
      expect(sh(`${BIN} umount --help`).stdout).to.match(/usage: dmemfs umount/)
      const r = sh(`${BIN} frobnicate`)
      expect(r.status).to.equal(2)
      expect(r.stderr).to.match(/unknown command/)
    })

    it('the mounted line counts dpages in the singular when there is one', async function () {
      const m = await DmemfsMount.start('pagesize=1G,dmem=1G')
      expect(m.stdout).to.match(/\(pool 1G, 1 dpage of 1G from phys 0x100000000; native data path \w+/)
    })
  })

  describe('help', function () {
    // Every option the parser takes (src/options.ts), as a user writes it.
    const MOUNT_OPTIONS = ['pagesize=', 'dmem=', 'size=', 'nodes=', 'max_alloc_try_dpages=', 'mode=', 'uid=', 'gid=',
      'nr_inodes=', 'allow_other', 'early_kill=', 'ce_threshold=', 'native=', 'poison_file', 'trace', 'user_xattr', 'nouser_xattr', 'prefault']

    it('mount --help lists every mount option with its meaning, and each one listed mounts', async function () {
      const help = sh(`${BIN} mount --help`)
      expect(help.status).to.equal(0)
      const listed = help.stdout.split('\n').filter(l => /^ {2}[a-z_]+(=|\[=| {2})/.test(l)).map(l => l.trim().split(/[= [|]/)[0])
      expect(listed.sort()).to.deep.equal(MOUNT_OPTIONS.map(o => o.replace('=', '')).sort())
      for (const line of help.stdout.split('\n').filter(l => /^ {2}[a-z_]+/.test(l) && !l.startsWith('  -o'))) {
        expect(line.trim().split(/ {2,}/), line).to.have.length(2) // the option, then what it means
      }
    })

    it('the top-level help shows every flag of every command, as each command\'s own help has it', function () {
      const main = sh(`${BIN} --help`)
      expect(main.status).to.equal(0)
      const commands = ['mount', 'umount', 'mce', 'soft-offline', 'inject', 'stat', 'pfn', 'unpoison', 'help']
      for (const cmd of commands) {
        const own = sh(`${BIN} ${cmd} --help`)
        expect(own.status, cmd).to.equal(0)
        const usage = /^usage: dmemfs (.*)$/m.exec(own.stdout)![1]
        expect(main.stdout.split('\n'), cmd).to.include(`  ${usage}`)
        const flags = usage.match(/(?<=\[)--?[a-z-]+/g) ?? [] // a flag is in brackets: soft-offline is no flag
        for (const flag of flags) expect(own.stdout, `${cmd} ${flag}`).to.match(new RegExp(`^ {2}${flag}\\b.* {2}\\S`, 'm'))
        expect(sh(`${BIN} help ${cmd}`).stdout, cmd).to.equal(own.stdout)
      }
      expect(main.stdout).to.include('  pfn FILE [--json] [--map] [--cells N]')
    })

    it('mounting as a user other than root fails with one line saying root is needed', function () {
      const mnt = tempDir()
      fs.chmodSync(mnt, 0o777)
      const r = sh(`setpriv --reuid=65534 --regid=65534 --clear-groups ${BIN} mount ${mnt}`)
      expect(r.status).to.equal(1)
      expect(r.stderr).to.equal('dmemfs: cannot open /dev/fuse (EACCES): mounting dmemfs needs root\n')
      expect(isMounted(mnt)).to.equal(false)
    })

    it('bad usage is one line on stderr and exit 2: an unknown command, flag or help topic', function () {
      const cases: Array<[string, RegExp]> = [
        ['help bogus', /unknown command 'bogus'/],
        ['help mount umount', /at most one COMMAND/],
        ['', /no command given/],
        ['umount --force x', /unknown flag '--force'/],
        ['mount -o', /-o needs a value/],
        ['stat x --json=1', /--json takes no value/],
        ['mce x 0x100000 --must-kil', /unknown flag '--must-kil'/],
        ['unpoison x', /unpoison needs MOUNTPOINT and PFN/]
      ]
      for (const [args, message] of cases) {
        const r = sh(`${BIN} ${args}`)
        expect(r.status, args).to.equal(2)
        expect(r.stderr.trim().split('\n'), args).to.have.length(1)
        expect(r.stderr, args).to.match(message)
        expect(r.stdout, args).to.equal('')
      }
    })
  })

  describe('pool shapes', function () {
    const sizes: Array<[string, string, number]> = [['4K', 'size=16M', 12], ['2M', 'size=16M', 21], ['1G', 'dmem=2G', 30]]
    for (const [pagesize, pool, shift] of sizes) {
      it(`pagesize=${pagesize}: files live in ${pagesize} dpages`, async function () {
        const m = await DmemfsMount.start(`pagesize=${pagesize},${pool}`)
        const before = m.stat()
        expect(before.dpage_shift).to.equal(shift)
        m.ok('head -c 5000 /dev/urandom > f && cp f g && cmp f g')
        const after = m.stat()
        const perFile = Math.ceil(5000 / 2 ** shift)
        expect(before.free_dpages - after.free_dpages).to.equal(2 * perFile)
        expect(m.ok('stat -c %b f')).to.equal(`${perFile * 2 ** shift / 512}\n`)
        expect(m.ok('stat -f -c %S .')).to.equal(`${2 ** shift}\n`)
      })
    }

    it('two nodes: each reserves the pool size at its own physical range', async function () {
      const m = await DmemfsMount.start('dmem=64M:2M,nodes=2')
      const st = m.stat()
      expect(st.total_dpages).to.equal(2 * 16384)
      expect(st['node0.total_dpages']).to.equal(16384)
      expect(st['node1.total_dpages']).to.equal(16384)
      m.ok('for i in 1 2 3 4; do head -c 8192 /dev/zero > f$i; done')
      const after = m.stat()
      expect(after['node0.free_dpages']).to.be.below(16384)
      expect(after['node1.free_dpages']).to.be.below(16384)
      expect(after.free_dpages).to.equal(st.free_dpages - 8)
    })

    it('a full pool gives ENOSPC, loses nothing, and rm returns every dpage', async function () {
      const m = await DmemfsMount.start('size=1M')
      m.ok('echo keep > keep')
      const r = m.sh('dd if=/dev/zero of=fill bs=64K count=32 status=none')
      expect(r.status).to.not.equal(0)
      expect(r.stderr).to.match(/No space left on device/)
      expect(m.stat().free_dpages).to.equal(0)
      expect(m.ok('cat keep')).to.equal('keep\n')
      expect(m.sh('echo more >> keep').status).to.equal(0) // the last dpage of keep has room
      expect(m.sh('echo x > new').status).to.not.equal(0)
      m.ok('rm -rf ./*')
      const st = m.stat()
      expect(st.free_dpages).to.equal(st.total_dpages)
    })
  })
})

