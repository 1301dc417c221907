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
import { Revocation, RevokeTarget } from './memory-failure'

/** Every path through which the file can be opened: its name on the mount, then each holder's
 *  descriptors and mappings (/proc/PID/fd/N, /proc/PID/map_files/START-END), which still reach a file that
 *  has been unlinked. */
export function revokePaths (mountpoint: string, target: RevokeTarget): string[] {
  const paths: string[] = []
  if (target.path !== null) paths.push(mountpoint + target.path)
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
  let error: string | undefined
  for (const via of revokePaths(mountpoint, target)) {
    try {
      // O_NOATIME: the revocation is no access. O_NONBLOCK: never wait on a FIFO or a lease.
      const handle = await fs.promises.open(via, fs.constants.O_RDONLY | fs.constants.O_NOATIME | fs.constants.O_NONBLOCK)
      await handle.close()
      return { via, ms: performance.now() - start }
    } catch (err) {
      // The holder exited or closed it meanwhile: try the next way in.
      error = `${via}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`
    }
  }
  return { via: null, ms: performance.now() - start, ...(error ? { error } : {}) }
}
