// Names as they leave the daemon. A Linux name is bytes; the core holds each name as a byte string, one
// char per byte (char codes 0-255, see super.ts), and text the daemon writes (control files, log lines) is
// turned into bytes as latin1, so a name reaches the reader exactly as it was created.

/** Text as a byte string (its UTF-8 bytes, one char per byte), to share a line with names. */
export function textBytes (text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1')
}

/** The kernel's seq_file escaping (seq_escape(), mangle_path() in fs/seq_file.c, as /proc/mounts shows a
 *  mount point): each byte that would split a line or a field (control bytes, space, DEL) and the
 *  backslash itself become a backslash and three octal digits, `\012` for a newline. A line then holds one
 *  name, and nameUnescape() gives back its exact bytes. Bytes 0x80-0xff pass unchanged. */
export function nameEscape (name: string): string {
  return name.replace(/[\x00-\x20\x7f\\]/g, c => '\\' + c.charCodeAt(0).toString(8).padStart(3, '0'))
}

/** The inverse of nameEscape(). */
export function nameUnescape (text: string): string {
  return text.replace(/\\([0-3][0-7]{2})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)))
}

const SURROGATE_ESCAPE = 0xdc00

/** A byte-string name as a JSON-ready string in Python's `surrogateescape` convention: valid UTF-8 is
 *  decoded, each other byte 0x80-0xff becomes the lone surrogate U+DC80-U+DCFF. JSON.stringify writes
 *  those as `\udcXX`, and Python's `os.fsencode(json.loads(...))` gives back the exact bytes. */
export function nameForJson (name: string): string {
  let out = ''
  for (let i = 0; i < name.length;) {
    const n = utf8SequenceLength(name, i)
    if (n === 0) {
      out += String.fromCharCode(SURROGATE_ESCAPE + name.charCodeAt(i))
      i++
      continue
    }
    out += n === 1 ? name[i] : Buffer.from(name.slice(i, i + n), 'latin1').toString('utf8')
    i += n
  }
  return out
}

/** The inverse of nameForJson(): the byte string of a surrogate-escaped name. */
export function nameFromJson (text: string): string {
  let out = ''
  for (const c of text) {
    const code = c.charCodeAt(0)
    if (c.length === 1 && code >= SURROGATE_ESCAPE + 0x80 && code <= SURROGATE_ESCAPE + 0xff) {
      out += String.fromCharCode(code - SURROGATE_ESCAPE)
    } else {
      out += Buffer.from(c, 'utf8').toString('latin1')
    }
  }
  return out
}

/** JSON as pure ASCII: every char above 0x7e written as `\uXXXX`, so the text is the same bytes whether
 *  it is encoded as latin1 or as UTF-8. */
export function jsonAscii (value: unknown, space?: number): string {
  return JSON.stringify(value, null, space).replace(/[\u007f-\uffff]/g,
    c => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'))
}

/** The length of the well-formed UTF-8 sequence (RFC 3629: no overlong forms, no surrogates, nothing above
 *  U+10FFFF) starting at byte i of a byte string, or 0 when none starts there. */
function utf8SequenceLength (bytes: string, i: number): number {
  const b0 = bytes.charCodeAt(i)
  if (b0 < 0x80) return 1
  let n: number
  let lo = 0x80
  let hi = 0xbf
  if (b0 >= 0xc2 && b0 <= 0xdf) n = 2
  else if (b0 >= 0xe0 && b0 <= 0xef) n = 3
  else if (b0 >= 0xf0 && b0 <= 0xf4) n = 4
  else return 0
  if (b0 === 0xe0) lo = 0xa0
  if (b0 === 0xed) hi = 0x9f
  if (b0 === 0xf0) lo = 0x90
  if (b0 === 0xf4) hi = 0x8f
  if (i + n > bytes.length) return 0
  const b1 = bytes.charCodeAt(i + 1)
  if (b1 < lo || b1 > hi) return 0
  for (let k = 2; k < n; k++) {
    const b = bytes.charCodeAt(i + k)
    if (b < 0x80 || b > 0xbf) return 0
  }
  return n
}
