// A pool this machine cannot hold is refused at once with one line naming the limit, and nothing is
// mounted; a large pool it can hold (address space, not memory) still mounts.

import { expect } from 'chai'
import { spawnSync } from 'child_process'
import * as fs from 'fs'
import { BIN, DmemfsMount, isMounted, stopAll, tempDir } from './harness'

describe('pool limits', function () {
  this.timeout(60000)
  const tried: string[] = []

  afterEach(async function () {
    await stopAll()
    for (const mnt of tried.splice(0)) if (isMounted(mnt)) spawnSync('umount', ['-l', mnt])
  })

  for (const { options, limit } of [
    // Past the bookkeeping this machine's memory holds (or, on one with over 146G free, past a table's length).
    { options: 'dmem=64T', limit: /(needs 146G of memory for its bookkeeping .* available \(MemAvailable\)|more dpages than one table holds)/ },
    { options: 'dmem=64T,pagesize=1G', limit: /needs 65539 memory mappings .*\(vm.max_map_count \d+\)$/ }
  ]) {
    it(`dmemfs mount -o ${options} fails within seconds with one line naming the limit, exit 2, nothing mounted`, function () {
      const mnt = tempDir()
      tried.push(mnt)
      const env = { ...process.env, LD_LIBRARY_PATH: undefined }
      const start = Date.now()
      const r = spawnSync(BIN, ['mount', mnt, '-o', options], { encoding: 'utf8', timeout: 20000, env })
      const took = Date.now() - start
      expect(r.status, `signal ${r.signal}, ${took} ms`).to.equal(2)
      expect(took).to.be.below(5000)
      const lines = r.stderr.trim().split('\n')
      expect(lines, r.stderr).to.have.length(1)
      expect(lines[0]).to.match(/^dmemfs: pool too large for this machine: a pool of 64T /)
      expect(lines[0]).to.match(limit)
      expect(r.stdout).to.equal('')
      expect(isMounted(mnt)).to.equal(false)
      expect(fs.readdirSync(mnt)).to.deep.equal([])
    })
  }

  it('dmem=64G of 4K dpages (more than this machine has) still mounts and serves', async function () {
    const m = await DmemfsMount.start('dmem=64G')
    expect(m.stat().total_dpages).to.equal(16777216)
    m.ok('echo hello > f && cat f')
    expect(await m.stop()).to.equal(0)
  })
})
