// Names as they leave the daemon: seq_file escaping for text, surrogateescape for JSON.

import { expect } from 'chai'
import { jsonAscii, nameEscape, nameForJson, nameFromJson, nameUnescape, textBytes } from '../../src/fs/name'

/** Every byte string of length 1 and 2 over a few interesting bytes, and some longer ones. */
function samples (): string[] {
  const interesting = [0x00, 0x01, 0x09, 0x0a, 0x20, 0x2f, 0x41, 0x5c, 0x7f, 0x80, 0xa9, 0xbf, 0xc0, 0xc3, 0xe2,
    0xed, 0xef, 0xf0, 0xf4, 0xff]
  const out: string[] = []
  for (const a of interesting) {
    out.push(String.fromCharCode(a))
    for (const b of interesting) out.push(String.fromCharCode(a, b))
  }
  out.push(textBytes('caf\u00e9 \u20ac \u{1f600}'), 'caf\xe9', '\xe2\x82\xac\xe2\x82', '\xed\xa0\x80', '\xf4\x90\x80\x80',
    '\xf0\x9f\x98\x80\x80', '\\012', 'a\\b\nc')
  return out
}

describe('names leaving the daemon', () => {
  describe('nameEscape (seq_file)', () => {
    it('writes a newline, tab, space and backslash as octal, as /proc/mounts does', () => {
      expect(nameEscape('/new\nline')).to.equal('/new\\012line')
      expect(nameEscape('a b\tc\\d')).to.equal('a\\040b\\011c\\134d')
    })

    it('escapes every control byte and DEL, and nothing else', () => {
      for (let b = 0; b < 256; b++) {
        const c = String.fromCharCode(b)
        const escaped = b <= 0x20 || b === 0x7f || c === '\\'
        expect(nameEscape(c), `byte 0x${b.toString(16)}`).to.equal(escaped ? '\\' + b.toString(8).padStart(3, '0') : c)
      }
    })

    it('never leaves a line break, and unescapes to the exact bytes', () => {
      for (const name of samples()) {
        const text = nameEscape(name)
        expect(text).to.not.match(/[\n\r\0 ]/)
        expect(nameUnescape(text)).to.equal(name)
      }
    })

    it('keeps a literal backslash-digit sequence in a name apart from an escape', () => {
      expect(nameEscape('\\012')).to.equal('\\134012')
      expect(nameUnescape(nameEscape('\\012'))).to.equal('\\012')
      expect(nameEscape('\\012')).to.not.equal(nameEscape('\n'))
    })
  })

  describe('nameForJson (surrogateescape)', () => {
    it('decodes valid UTF-8 and writes each other byte as U+DC80-U+DCFF', () => {
      expect(nameForJson(textBytes('caf\u00e9'))).to.equal('caf\u00e9')
      expect(nameForJson('caf\xe9')).to.equal('caf\udce9')
      expect(nameForJson(textBytes('\u20ac') + '\xe2\x82')).to.equal('\u20ac\udce2\udc82')
      expect(nameForJson(textBytes('\u{1f600}') + '\x80')).to.equal('\u{1f600}\udc80')
    })

    it('treats overlong forms, encoded surrogates and code points above U+10FFFF as invalid, as Python does', () => {
      expect(nameForJson('\xc0\xaf')).to.equal('\udcc0\udcaf')
      expect(nameForJson('\xed\xa0\x80')).to.equal('\udced\udca0\udc80')
      expect(nameForJson('\xf4\x90\x80\x80')).to.equal('\udcf4\udc90\udc80\udc80')
      expect(nameForJson('\xe0\x80\x80')).to.equal('\udce0\udc80\udc80')
    })

    it('round-trips every sample through nameFromJson', () => {
      for (const name of samples()) expect(nameFromJson(nameForJson(name))).to.equal(name)
    })

    it("gives what Python's os.fsencode(json.loads(...)) turns back into the bytes: \\udcXX in pure-ASCII JSON", () => {
      const json = jsonAscii({ path: nameForJson('/caf\xe9' + textBytes('\u00e9\u20ac') + '\n') })
      expect(json).to.equal('{"path":"/caf\\udce9\\u00e9\\u20ac\\n"}')
      expect(json).to.match(/^[\x20-\x7e]*$/)
      expect(JSON.parse(json).path).to.equal('/caf\udce9\u00e9\u20ac\n')
    })
  })
})
