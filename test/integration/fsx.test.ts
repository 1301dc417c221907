// A random-operation tester (fsx.py, in the manner of fsx) through a real mount: writes, reads, truncates,
// fallocate of every mode dmemfs serves, and reads and writes through a shared mapping, each checked
// against a model of the file's bytes; then every dpage goes back to the pool.

import { expect } from 'chai'
import * as path from 'path'
import { DmemfsMount, ROOT, stopAll } from './harness'

const FSX = path.join(ROOT, 'test', 'integration', 'fsx.py')

describe('random operations with mmap, truncate, fallocate and punched holes (fsx)', function () {
  this.timeout(120000)
  after(stopAll)

  for (const [options, seconds] of [['size=64M', 15], ['size=64M,pagesize=2M', 8]] as const) {
    it(`-o ${options}: every byte as the model says, for ${seconds} s of random operations`, async function () {
      const m = await DmemfsMount.start(options)
      const total = m.stat().free_dpages
      const out = m.ok(`python3 ${FSX} f 1000000 ${seconds} 7`)
      expect(out).to.match(/^ok \d+$/m)
      expect(Number(/^ok (\d+)$/m.exec(out)![1])).to.be.above(1000)
      m.ok('rm f')
      expect(m.stat().free_dpages).to.equal(total)
      await m.stop()
    })
  }
})
