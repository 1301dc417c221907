// Unit tests of what the memory-failure control files accept: a PFN as kstrtoull(buf, 0) reads it, the
// request words after it, and the limits on what counts as input at all.

import { expect } from 'chai'
import {
  flagNames, MAX_INPUT, MF_ACTION_REQUIRED, MF_COUNT_INCREASED, MF_MUST_KILL, MF_NO_RETRY, MF_SOFT_OFFLINE,
  MF_SW_SIMULATED, MF_UNPOISON, MceRequest, parseKernelU64, parseMceRequest, parsePfn, pfnNumber
} from '../../src/mce/input'
import { defaultMountOptions } from '../../src/options'
import { layoutPool, PAGE_SIZE, ParseResult } from '../../src/pool/layout'

const U64_MAX = (1n << 64n) - 1n

function u64 (text: string): bigint {
  const r = parseKernelU64(text)
  if (!r.ok) throw new Error(`parseKernelU64(${JSON.stringify(text)}): ${r.error}`)
  return r.value
}

function request (text: string): MceRequest {
  const r = parseMceRequest(text)
  if (!r.ok) throw new Error(`parseMceRequest(${JSON.stringify(text)}): ${r.error}`)
  return r.value
}

function pfn (text: string): number {
  const r = parsePfn(text)
  if (!r.ok) throw new Error(`parsePfn(${JSON.stringify(text)}): ${r.error}`)
  return r.value
}

function errorOf<T> (r: ParseResult<T>): string {
  if (r.ok) throw new Error(`accepted, value ${String(r.value)}`)
  expect(r.error).to.be.a('string').and.not.equal('')
  return r.error
}

describe('mce input', () => {
  it('the example PFN in the bad-input messages lies in the default pool', () => {
    const defaults = defaultMountOptions()
    const layout = layoutPool(defaults.dmem, defaults.nodes, defaults.dpageShift)
    if (!layout.ok) throw new Error(layout.error)
    const inPool = (pfn: number): boolean =>
      layout.value.regions.some(r => pfn >= r.phys / PAGE_SIZE && pfn < (r.phys + r.dpages * layout.value.dpageSize) / PAGE_SIZE)
    const messages = [errorOf(parseMceRequest('   ')), errorOf(parseMceRequest('\x01')), errorOf(parsePfn('')), errorOf(parsePfn('\n'))]
    for (const message of messages) {
      const example = /e\.g\. (0x[0-9a-f]+)/.exec(message)
      expect(example, message).to.not.equal(null)
      expect(inPool(parseInt(example![1], 16)), message).to.equal(true)
    }
  })

  describe('MF_ flags', () => {
    it('have the values of include/linux/mm.h enum mf_flags', () => {
      expect([MF_COUNT_INCREASED, MF_ACTION_REQUIRED, MF_MUST_KILL, MF_SOFT_OFFLINE, MF_UNPOISON,
        MF_SW_SIMULATED, MF_NO_RETRY]).to.deep.equal([1, 2, 4, 8, 16, 32, 64])
    })

    it('are named in bit order', () => {
      expect(flagNames(0)).to.deep.equal([])
      expect(flagNames(MF_MUST_KILL | MF_ACTION_REQUIRED)).to.deep.equal(['action_required', 'must_kill'])
      expect(flagNames(0x7f)).to.deep.equal([
        'count_increased', 'action_required', 'must_kill', 'soft_offline', 'unpoison', 'sw_simulated', 'no_retry'
      ])
    })
  })

  describe('parseKernelU64 (kstrtoull base 0)', () => {
    it('reads decimal', () => {
      expect(u64('0')).to.equal(0n)
      expect(u64('7')).to.equal(7n)
      expect(u64('1310720')).to.equal(1310720n)
    })

    it('reads 0x and 0X hex, in either case of digits', () => {
      expect(u64('0x140000')).to.equal(0x140000n)
      expect(u64('0X140000')).to.equal(0x140000n)
      expect(u64('0xAbCdEf')).to.equal(0xabcdefn)
      expect(u64('0x0')).to.equal(0n)
    })

    it('reads a leading 0 as octal', () => {
      expect(u64('010')).to.equal(8n)
      expect(u64('0777')).to.equal(0o777n)
      expect(u64('00')).to.equal(0n)
    })

    it('accepts one leading +', () => {
      expect(u64('+12')).to.equal(12n)
      expect(u64('+0x10')).to.equal(16n)
      expect(u64('+010')).to.equal(8n)
      errorOf(parseKernelU64('++12'))
      errorOf(parseKernelU64('+'))
    })

    it('accepts one trailing newline, not two', () => {
      expect(u64('12\n')).to.equal(12n)
      expect(u64('0x10\n')).to.equal(16n)
      errorOf(parseKernelU64('12\n\n'))
      errorOf(parseKernelU64('\n12'))
      errorOf(parseKernelU64('1\n2'))
    })

    it('rejects empty and whitespace-only input', () => {
      expect(errorOf(parseKernelU64(''))).to.match(/empty/)
      expect(errorOf(parseKernelU64('\n'))).to.match(/empty/)
      errorOf(parseKernelU64(' '))
      errorOf(parseKernelU64('\t'))
      errorOf(parseKernelU64(' \n'))
    })

    it('rejects a prefix without digits and digits outside the base', () => {
      expect(errorOf(parseKernelU64('0x'))).to.match(/not a number/)
      errorOf(parseKernelU64('0X\n'))
      expect(errorOf(parseKernelU64('08'))).to.match(/not a number/)
      errorOf(parseKernelU64('019'))
      errorOf(parseKernelU64('0xg'))
      errorOf(parseKernelU64('x10'))
    })

    it('rejects negative numbers', () => {
      errorOf(parseKernelU64('-1'))
      errorOf(parseKernelU64('-0x10'))
      errorOf(parseKernelU64('-0'))
    })

    it('rejects surrounding whitespace and trailing junk', () => {
      errorOf(parseKernelU64('12abc'))
      errorOf(parseKernelU64('0x10 zz'))
      errorOf(parseKernelU64('12 '))
      errorOf(parseKernelU64(' 12'))
      errorOf(parseKernelU64('12\r\n'))
      errorOf(parseKernelU64('1.5'))
      errorOf(parseKernelU64('1e3'))
      errorOf(parseKernelU64('0b101'))
    })

    it('accepts 2^64-1 in every base and rejects 2^64 and beyond as out of range', () => {
      expect(u64('18446744073709551615')).to.equal(U64_MAX)
      expect(u64('0xffffffffffffffff')).to.equal(U64_MAX)
      expect(u64('01777777777777777777777')).to.equal(U64_MAX)
      expect(u64('0x0000ffffffffffffffff')).to.equal(U64_MAX)
      for (const text of ['18446744073709551616', '0x10000000000000000', '02000000000000000000000',
        '99999999999999999999999999']) {
        expect(errorOf(parseKernelU64(text)), text).to.match(/out of range/)
      }
    })

    it('rejects binary bytes', () => {
      errorOf(parseKernelU64('\x00'))
      errorOf(parseKernelU64('12\x00'))
      errorOf(parseKernelU64('\xff12'))
    })
  })

  describe('pfnNumber', () => {
    it('is exact up to 2^53-1 and Infinity beyond', () => {
      expect(pfnNumber(0n)).to.equal(0)
      expect(pfnNumber(0x140000n)).to.equal(0x140000)
      expect(pfnNumber(2n ** 53n - 1n)).to.equal(Number.MAX_SAFE_INTEGER)
      expect(pfnNumber(2n ** 53n + 1n)).to.equal(Infinity)
      expect(pfnNumber(U64_MAX)).to.equal(Infinity)
    })
  })

  describe('parseMceRequest', () => {
    it('refuses a blank or tab before the PFN, as kstrtoull does', () => {
      for (const text of [' 0x140000', '\t0x140000', '  0x140000 must_kill\n']) {
        expect(errorOf(parseMceRequest(text)), JSON.stringify(text)).to.match(/leading blank/)
      }
    })

    it('reads a PFN alone, with no flags, no delivery and text output', () => {
      expect(request('0x140000')).to.deep.equal({ pfn: 0x140000, flags: 0, deliver: false, json: false, excludeWriter: false })
      expect(request('1310720\n')).to.deep.equal({ pfn: 1310720, flags: 0, deliver: false, json: false, excludeWriter: false })
      expect(request('05000000').pfn).to.equal(0o5000000)
      expect(request('+0X10').pfn).to.equal(16)
    })

    it('reads the words action_required, must_kill, deliver and json', () => {
      expect(request('0x10 action_required').flags).to.equal(MF_ACTION_REQUIRED)
      expect(request('0x10 must_kill').flags).to.equal(MF_MUST_KILL)
      const all = request('0x10 action_required must_kill deliver json\n')
      expect(all).to.deep.equal({ pfn: 16, flags: MF_ACTION_REQUIRED | MF_MUST_KILL, deliver: true, json: true, excludeWriter: false })
      expect(request('0x10\tmust_kill  deliver')).to.deep.equal({ pfn: 16, flags: MF_MUST_KILL, deliver: true, json: false, excludeWriter: false })
      expect(request('0x10 exclude_writer').excludeWriter).to.equal(true)
      expect(request('0x10 json')).to.deep.equal({ pfn: 16, flags: 0, deliver: false, json: true, excludeWriter: false })
    })

    it('reads flags=N with known bits, in any base, and ORs it with the words', () => {
      expect(request('16 flags=2').flags).to.equal(MF_ACTION_REQUIRED)
      expect(request('16 flags=4').flags).to.equal(MF_MUST_KILL)
      expect(request('16 flags=0x6').flags).to.equal(MF_ACTION_REQUIRED | MF_MUST_KILL)
      expect(request('16 flags=06').flags).to.equal(6)
      expect(request('16 flags=0').flags).to.equal(0)
      expect(request('16 flags=0x7f').flags).to.equal(0x7f)
      expect(request('16 flags=2 must_kill').flags).to.equal(6)
    })

    it('rejects flags=N with unknown bits', () => {
      expect(errorOf(parseMceRequest('16 flags=0x80'))).to.match(/unknown bits/)
      expect(errorOf(parseMceRequest(`16 flags=${1 << 7}`))).to.match(/unknown bits/)
      expect(errorOf(parseMceRequest('16 flags=0x84'))).to.match(/unknown bits/)
      expect(errorOf(parseMceRequest('16 flags=0xffffffffffffffff'))).to.match(/unknown bits/)
    })

    it('rejects flags= values that are not numbers', () => {
      expect(errorOf(parseMceRequest('16 flags='))).to.match(/bad flags/)
      expect(errorOf(parseMceRequest('16 flags=x'))).to.match(/bad flags/)
      expect(errorOf(parseMceRequest('16 flags=-1'))).to.match(/bad flags/)
      expect(errorOf(parseMceRequest('16 flags=4k'))).to.match(/bad flags/)
      expect(errorOf(parseMceRequest('16 flags=0x10000000000000000'))).to.match(/out of range/)
    })

    it('rejects unknown words', () => {
      expect(errorOf(parseMceRequest('16 zz'))).to.match(/unknown flag 'zz'/)
      expect(errorOf(parseMceRequest('16 MUST_KILL'))).to.match(/unknown flag/)
      expect(errorOf(parseMceRequest('16 must_kill=1'))).to.match(/unknown flag/)
      expect(errorOf(parseMceRequest('16 --json'))).to.match(/unknown flag/)
    })

    it('accepts one trailing newline, not two', () => {
      expect(request('16\n').pfn).to.equal(16)
      expect(request('16 must_kill\n').flags).to.equal(MF_MUST_KILL)
      errorOf(parseMceRequest('16\n\n'))
      errorOf(parseMceRequest('16 must_kill\n\n'))
      errorOf(parseMceRequest('16 flags=4\n\n'))
      errorOf(parseMceRequest('16\nmust_kill'))
    })

    it('rejects empty and whitespace-only input', () => {
      for (const text of ['', '\n', ' ', '   \t ', ' \n']) {
        expect(errorOf(parseMceRequest(text)), JSON.stringify(text)).to.match(/empty/)
      }
    })

    it('rejects a PFN that is not a kstrtoull number', () => {
      for (const text of ['0x', '08', '-1', '-0x10', '12abc', '0x10zz', 'abc', '1.5', '0x10 zz', '12abc must_kill']) {
        errorOf(parseMceRequest(text))
      }
      expect(errorOf(parseMceRequest('0x10 zz'))).to.match(/unknown flag/)
      expect(errorOf(parseMceRequest('12abc'))).to.match(/not a number/)
    })

    it('rejects PFNs above 2^64-1 as out of range and accepts 2^64-1 (as Infinity)', () => {
      expect(errorOf(parseMceRequest('18446744073709551616'))).to.match(/out of range/)
      expect(errorOf(parseMceRequest('0x10000000000000000 must_kill'))).to.match(/out of range/)
      expect(request('18446744073709551615').pfn).to.equal(Infinity)
      expect(request('0xffffffffffffffff must_kill')).to.deep.equal(
        { pfn: Infinity, flags: MF_MUST_KILL, deliver: false, json: false, excludeWriter: false })
      expect(request('0x1fffffffffffff').pfn).to.equal(Number.MAX_SAFE_INTEGER)
      expect(request('0x20000000000001').pfn).to.equal(Infinity)
    })

    it(`rejects input longer than ${MAX_INPUT} bytes, even when it would parse`, () => {
      expect(MAX_INPUT).to.equal(256)
      const padded = '16' + ' '.repeat(MAX_INPUT - 2)
      expect(request(padded).pfn).to.equal(16) // exactly MAX_INPUT bytes is still fine
      expect(errorOf(parseMceRequest(padded + ' '))).to.match(/too long/)
      expect(errorOf(parseMceRequest('0'.repeat(300) + '16'))).to.equal('input too long (a write of 302 bytes; at most 256, each write parsed alone)')
      expect(errorOf(parseMceRequest('16 ' + 'must_kill '.repeat(30)))).to.match(/too long/)
    })

    it('rejects binary bytes', () => {
      for (const text of ['\x00', '16\x00', '\xff', '16 \xff', '16\x00must_kill', '\x1b[A16', '16\r\n', '\uFFFD']) {
        expect(errorOf(parseMceRequest(text)), JSON.stringify(text)).to.match(/not text/)
      }
    })
  })

  describe('parsePfn', () => {
    it('reads a PFN as kstrtoull(buf, 0) does', () => {
      expect(pfn('0x140000')).to.equal(0x140000)
      expect(pfn('0X140000\n')).to.equal(0x140000)
      expect(pfn('1310720')).to.equal(1310720)
      expect(pfn('05000000')).to.equal(0o5000000)
      expect(pfn('+16')).to.equal(16)
      expect(pfn('18446744073709551615')).to.equal(Infinity)
    })

    it('rejects everything kstrtoull rejects', () => {
      for (const text of ['', '\n', ' ', '16\n\n', '0x', '08', '-1', '12abc', '0x10 zz', '16 must_kill', ' 16']) {
        errorOf(parsePfn(text))
      }
      expect(errorOf(parsePfn('18446744073709551616'))).to.match(/out of range/)
    })

    it('rejects huge and binary input', () => {
      expect(errorOf(parsePfn('0'.repeat(MAX_INPUT + 1)))).to.match(/too long/)
      expect(pfn('0'.repeat(MAX_INPUT))).to.equal(0)
      expect(errorOf(parsePfn('\x00'))).to.match(/not text/)
      expect(errorOf(parsePfn('16\xff'))).to.match(/not text/)
    })
  })
})
