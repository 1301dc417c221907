// Revoking what the kernel still holds of a file after one of its dpages is poisoned: its page cache and
// every process's mapping of it. User space cannot unmap another process's pages, but the kernel does it
// for us: a FUSE open without keep_cache makes it run invalidate_inode_pages2() on the inode, which first
// writes back dirty pages (the healthy pages' data reaches the daemon; the poisoned page's write fails),
// then drops every cached page and zaps every mapping of them. A process touching one again faults, and
// the fault's FUSE read reaches the daemon: data for healthy pages, EIO (so SIGBUS) for the poisoned one.
//
// The open comes back to this daemon as FUSE requests (LOOKUP, OPEN, FLUSH, RELEASE and the write-back's
// WRITEs), so it must be asynchronous: the JS thread serves them while libuv's thread pool waits in
// open(2). Nothing here spawns a process (a daemon with a large pool cannot).

import * as fs from 'fs'
import { performance } from 'perf_hooks'
import { textBytes } from '../fs/name'
import { Revocation, RevokeTarget } from './memory-failure'

/** Every path through which the file can be opened, as byte strings: its name on the mount, then each
 *  holder's descriptors and mappings (/proc/PID/fd/N, /proc/PID/map_files/START-END), which still reach a
 *  file that has been unlinked. */
export function revokePaths (mountpoint: string, target: RevokeTarget): string[] {
  const paths: string[] = []
  if (target.path !== null) paths.push(textBytes(mountpoint) + target.path)
  for (const h of target.holders) {
    for (const fd of h.fds) paths.push(`/proc/${h.pid}/fd/${fd}`)
    for (const m of h.mappings) paths.push(`/proc/${h.pid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}`)
  }
  return paths
}

/** Opens and closes the file through the first path that works; resolves once the kernel has dropped its
 *  copies. A file nobody holds and nobody can name has no copies left to drop. */
export async function revokeFile (mountpoint: string, target: RevokeTarget): Promise<Revocation> {
  const start = performance.now()
  const failed: Revocation['failed'] = []
  const result = (via: string | null): Revocation => ({ via, ms: performance.now() - start, failed })
  for (const via of revokePaths(mountpoint, target)) {
    for (let attempt = 0; attempt < 2; attempt++) {
      const code = await openClose(via)
      if (code === null) return result(via)
      failed.push({ via, error: code })
      // A dirty poisoned page fails its write-back during the invalidation, and the open reports that
      // EIO; the page is dropped all the same (its data is lost, as the kernel loses it), so once more.
      if (code !== 'EIO') break
    }
    // Otherwise the holder exited or closed it meanwhile: try the next way in.
  }
  return result(null)
}

async function openClose (path: string): Promise<string | null> {
  try {
    // O_NONBLOCK: never wait on a lease.
    const handle = await fs.promises.open(Buffer.from(path, 'latin1'), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
    await handle.close()
    return null
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err)
  }
}
