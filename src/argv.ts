// Command-line arguments as bytes. A Linux path is bytes, but Node hands process.argv over decoded as
// UTF-8, so a name that is not UTF-8 arrives with U+FFFD in place of its bytes. The kernel keeps the
// exact bytes in /proc/self/cmdline; an argument is looked up there.

import * as fs from 'fs'

/** The exact bytes of command-line argument `arg` (as Node decoded it), as a byte string (one char per
 *  byte). When /proc/self/cmdline cannot be read, its UTF-8 encoding, which is exact for UTF-8 names. */
export function argBytes (arg: string): string {
  let cmdline: Buffer
  try {
    cmdline = fs.readFileSync('/proc/self/cmdline')
  } catch {
    return Buffer.from(arg, 'utf8').toString('latin1')
  }
  const raw = cmdline.toString('latin1').split('\0')
  // Arguments follow node's own: search from the end, where process.argv's last entries are.
  for (let i = raw.length - 1; i >= 0; i--) {
    if (Buffer.from(raw[i], 'latin1').toString('utf8') === arg) return raw[i]
  }
  return Buffer.from(arg, 'utf8').toString('latin1')
}
