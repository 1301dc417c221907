// What the memory-failure integration tests share: python3 children that hold a file of the mount open
// or mapped, and where a file's bytes sit in the pool.

import { ChildProcess, spawn } from 'child_process'
import { BIN, sh } from './harness'

export interface Holder {
  proc: ChildProcess
  info: Record<string, number> // what the child printed: fd, map address, ...
}

const children = new Set<ChildProcess>()

/** Starts python3 with a script that prints one line of `key=value` pairs when ready, then waits on stdin. */
export function startHolder (cwd: string, script: string): Promise<Holder> {
  const proc = spawn('python3', ['-c', script + '\nimport sys\nsys.stdout.flush()\nsys.stdin.read()\n'],
    { cwd, stdio: ['pipe', 'pipe', 'pipe'] })
  children.add(proc)
  proc.on('exit', () => children.delete(proc))
  return new Promise((resolve, reject) => {
    let out = ''
    let err = ''
    proc.stderr!.on('data', (d: Buffer) => { err += d.toString() })
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      if (!out.includes('\n')) return
      const info: Record<string, number> = {}
      for (const pair of out.trim().split(' ')) {
        const [k, v] = pair.split('=')
        info[k] = Number(v)
      }
      resolve({ proc, info })
    })
    proc.on('exit', code => reject(new Error(`holder exited ${code}: ${err}`)))
  })
}

/** Kills every holder still running; call from an `afterEach` hook. */
export function endChildren (): void {
  for (const c of children) c.kill('SIGKILL')
}

export const OPEN_SCRIPT = (file: string) => `
import os
fd = os.open('${file}', os.O_RDONLY)
print('fd=%d' % fd)`

/** Maps `length` bytes of the file shared from `offset` and prints the mapping's address. */
export const MAP_SCRIPT = (file: string, offset: number, length: number) => `
import os, mmap, ctypes
fd = os.open('${file}', os.O_RDWR)
mm = mmap.mmap(fd, ${length}, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=${offset})
addr = ctypes.addressof(ctypes.c_char.from_buffer(mm))
print('fd=%d addr=%d' % (fd, addr))`

export interface Run {
  offset: number
  pfn: string
  frames: number
}

/** The runs of frames backing `file`, from `dmemfs pfn --json`. */
export function pfnRuns (file: string): Run[] {
  const r = sh(`${BIN} pfn ${file} --json`)
  if (r.status !== 0) throw new Error(`dmemfs pfn failed: ${r.stderr}`)
  return JSON.parse(r.stdout) as Run[]
}

/** The PFN backing byte `offset` of `file`. */
export function pfnAt (file: string, offset: number): number {
  const run = pfnRuns(file).find(r => offset >= r.offset && offset < r.offset + r.frames * 4096)
  if (!run) throw new Error(`no dpage backs offset ${offset} of ${file}`)
  return parseInt(run.pfn, 16) + Math.floor((offset - run.offset) / 4096)
}
