import { expect } from 'chai'
import * as fs from 'fs'
import { fdLog } from '../../src/fuse/daemon-log'

function errno (code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: write failed`), { code })
}

/** A write(2) stand-in: fails with the queued errors first, then writes at most `chunk` bytes a call. */
function fakeWrite (errors: string[], chunk = Infinity): { write: typeof fs.writeSync, calls: number, out: string } {
  const state = { calls: 0, out: '', write: undefined as unknown as typeof fs.writeSync }
  state.write = ((_fd: number, buf: Buffer, offset: number, length: number) => {
    state.calls++
    const code = errors.shift()
    if (code) throw errno(code)
    const n = Math.min(length, chunk)
    state.out += buf.subarray(offset, offset + n).toString()
    return n
  }) as typeof fs.writeSync
  return state
}

describe('daemon log', function () {
  it('writes whole lines, finishing short writes', function () {
    const w = fakeWrite([], 3)
    fdLog(1, w.write)('dmemfs: mounted /mnt')
    expect(w.out).to.equal('dmemfs: mounted /mnt\n')
  })

  it('a line is a byte string: each char one byte, so a name that is not UTF-8 goes out exactly', function () {
    const bytes: Buffer[] = []
    const write = ((_fd: number, buf: Buffer, offset: number, length: number) => {
      bytes.push(Buffer.from(buf.subarray(offset, offset + length)))
      return length
    }) as typeof fs.writeSync
    fdLog(1, write)('caf\xe9')
    expect(Buffer.concat(bytes)).to.deep.equal(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]))
  })

  for (const code of ['EPIPE', 'EIO', 'EBADF']) {
    it(`${code} never throws and marks the stream dead: later lines are dropped without a write`, function () {
      const w = fakeWrite([code])
      const log = fdLog(1, w.write)
      expect(() => log('first')).to.not.throw()
      expect(() => log('second')).to.not.throw()
      expect(w.calls).to.equal(1)
      expect(w.out).to.equal('')
    })
  }

  it('EAGAIN (a full pipe) drops that line only', function () {
    const w = fakeWrite(['EAGAIN'])
    const log = fdLog(1, w.write)
    log('lost')
    log('kept')
    expect(w.out).to.equal('kept\n')
  })
})
