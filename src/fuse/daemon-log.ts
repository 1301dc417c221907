// The daemon's one way to say something. A mounted filesystem must outlive its terminal: standard output or
// error may be a pipe whose reader left (`dmemfs mount M | head -1`: EPIPE), a terminal that was closed (EIO)
// or anything else that fails. A log line is never worth the mount, so writing one never throws: a stream
// that failed is dead and later lines to it are dropped.

import * as fs from 'fs'

export type Log = (line: string) => void

export const STDOUT_FD = 1
export const STDERR_FD = 2

/** A log writing whole lines to `fd` with write(2). A line is a byte string (one char a byte, latin1, as
 *  the daemon's names are): a file's name in it goes out exactly. Node's process.stdout would report a lost reader as an
 *  'error' event later, out of reach of the caller; a synchronous write fails here, where it is caught. */
export function fdLog (fd: number, write: typeof fs.writeSync = fs.writeSync): Log {
  let dead = false
  return (line: string) => {
    if (dead) return
    const bytes = Buffer.from(line + '\n', 'latin1')
    try {
      for (let done = 0; done < bytes.length;) done += write(fd, bytes, done, bytes.length - done)
    } catch (err) {
      // A full pipe (a non-blocking descriptor whose reader is slow) loses this line only: waiting for the
      // reader would stall every filesystem request behind it.
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') dead = true
    }
  }
}

/** Call right before the daemon exits. Node 20 restores the terminal state of its stdio at exit and aborts
 *  (SIGABRT, "Assertion failed" in node::ResetStdio) when that fails, as it does on a terminal that hung up
 *  (nodejs/node#51519, fixed in later Node). It skips descriptors that are closed by then; the daemon never
 *  changes a terminal's modes, so there is nothing to restore. A terminal that hung up no longer answers
 *  isatty(), so every character device is closed (/dev/null too, harmlessly). */
export function releaseTerminals (): void {
  for (const fd of [0, STDOUT_FD, STDERR_FD]) {
    try {
      if (fs.fstatSync(fd).isCharacterDevice()) fs.closeSync(fd)
    } catch {
      // already closed: nothing to skip
    }
  }
}
