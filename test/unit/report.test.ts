// Unit tests of the memory-failure report, as text (one fact per line) and as JSON, for reports built by
// hand and for one produced by the memory-failure path itself.

import { expect } from 'chai'
import { MF_ACTION_REQUIRED, MF_MUST_KILL } from '../../src/mce/input'
import { handleMemoryFailure, locatePfn, MceProcess, MceReport } from '../../src/mce/memory-failure'
import { KILL_NOTE, renderReport, reportJson } from '../../src/mce/report'
import { MiB } from '../../src/pool/layout'
import { createFile, fakeEnv, makeSb, pfnOfIndex } from './mce-fixtures'

const VA = 0x7f0000000000

function report (over: Partial<MceReport> = {}): MceReport {
  return {
    pfn: 0x140264,
    phys: 0x140264000,
    node: 1,
    region: 2,
    dpage: 9,
    dpagePfn: 0x140200,
    dpageSize: 2 * MiB,
    time: 0,
    flags: 0,
    state: 'used',
    result: 'MCE 0x140264: handled by dmem',
    file: { path: '/dir/a', ino: 4, pgoff: 0x264, offset: 0x264 * 4096 },
    handles: [],
    processes: [],
    deliver: false,
    earlyKillMode: 'all',
    revocation: null,
    ...over
  }
}

const mapper: MceProcess = {
  pid: 100,
  comm: 'mapper',
  opener: false,
  collected: true,
  earlyKill: true,
  earlyKillReason: 'early_kill=all: every holder is collected',
  fds: [],
  mappings: [{ start: VA, end: VA + 0x600000, pgoff: 0, perms: 'rw-s', vaddr: VA + 0x264000 }],
  signal: 'SIGBUS',
  siCode: 'BUS_MCEERR_AO',
  vaddr: VA + 0x264000,
  addrLsb: 12,
  reason: 'must_kill, action optional',
  sent: null,
  way: null
}

const READER_REASON = 'not collected by the kernel (no mapping of the page); will get EIO on its next read or write of the poisoned range'

const reader: MceProcess = {
  pid: 200,
  comm: 'reader',
  opener: false,
  collected: false,
  earlyKill: false,
  earlyKillReason: 'holds the file through a descriptor only',
  fds: [3, 7],
  mappings: [],
  signal: null,
  siCode: null,
  vaddr: null,
  addrLsb: null,
  reason: READER_REASON,
  sent: null,
  way: null
}

const quiet: MceProcess = {
  ...mapper,
  pid: 300,
  comm: 'quiet',
  fds: [4],
  signal: null,
  siCode: null,
  addrLsb: null,
  reason: 'no signal without must_kill'
}

function lines (r: MceReport): string[] {
  const text = renderReport(r)
  expect(text.endsWith('\n')).to.equal(true)
  return text.slice(0, -1).split('\n')
}

describe('mce report', () => {
  describe('renderReport', () => {
    it('renders a free dpage in three lines', () => {
      const r = report({
        pfn: 0x100005,
        phys: 0x100005000,
        node: 0,
        region: 0,
        dpage: 5,
        dpagePfn: 0x100005,
        dpageSize: 4096,
        state: 'free',
        result: 'MCE: free dpage, mark 0x100005 disabled in dmem',
        file: null
      })
      expect(lines(r)).to.deep.equal([
        'pfn 0x100005 phys 0x100005000 node 0 region 0 dpage 0x100005 (4K) state free',
        'flags 0x0',
        'result MCE: free dpage, mark 0x100005 disabled in dmem'
      ])
    })

    it('calls an already-poisoned dpage poisoned, and lists no processes', () => {
      const r = report({ state: 'already-poisoned', result: 'Memory failure: 0x140264: already hardware poisoned', file: null })
      expect(lines(r)).to.deep.equal([
        'pfn 0x140264 phys 0x140264000 node 1 region 2 dpage 0x140200 (2M) state poisoned',
        'flags 0x0',
        'result Memory failure: 0x140264: already hardware poisoned'
      ])
    })

    it('names the flags', () => {
      expect(lines(report({ flags: MF_MUST_KILL }))[1]).to.equal('flags 0x4 (must_kill)')
      expect(lines(report({ flags: MF_MUST_KILL | MF_ACTION_REQUIRED }))[1]).to.equal('flags 0x6 (action_required must_kill)')
      expect(lines(report({ flags: 0x21 }))[1]).to.equal('flags 0x21 (count_increased sw_simulated)')
    })

    it('renders a used dpage with its file and no holders as processes none', () => {
      expect(lines(report())).to.deep.equal([
        'pfn 0x140264 phys 0x140264000 node 1 region 2 dpage 0x140200 (2M) state used',
        'flags 0x0',
        'result MCE 0x140264: handled by dmem',
        `file /dir/a ino 4 pgoff 0x264 offset ${0x264 * 4096}`,
        'processes none'
      ])
    })

    it('writes (deleted) for a file without a name', () => {
      const r = report({ file: { path: null, ino: 9, pgoff: 0, offset: 0 } })
      expect(lines(r)[3]).to.equal('file (deleted) ino 9 pgoff 0x0 offset 0')
    })

    it('writes one line per process: fds, mappings with their address, and the signal', () => {
      const r = report({ flags: MF_MUST_KILL, processes: [mapper, reader, quiet] })
      expect(lines(r).slice(3)).to.deep.equal([
        `file /dir/a ino 4 pgoff 0x264 offset ${0x264 * 4096}`,
        'process 100 (mapper) collected map 0x7f0000000000-0x7f0000600000 vaddr 0x7f0000264000 ' +
          'signal SIGBUS BUS_MCEERR_AO si_addr_lsb 12 (must_kill, action optional)',
        `process 200 (reader) not-collected fd 3,7 signal none (${READER_REASON})`,
        'process 300 (quiet) collected fd 4 map 0x7f0000000000-0x7f0000600000 vaddr 0x7f0000264000 ' +
          'signal none (no signal without must_kill)'
      ])
    })

    it('lists every mapping of a process, and BUS_MCEERR_AR when that is the code', () => {
      const p: MceProcess = {
        ...mapper,
        fds: [5],
        mappings: [
          { start: 0x1000, end: 0x3000, pgoff: 0x263, perms: 'r--s', vaddr: 0x2000 },
          { start: VA, end: VA + 0x600000, pgoff: 0, perms: 'rw-s', vaddr: VA + 0x264000 }
        ],
        siCode: 'BUS_MCEERR_AR',
        vaddr: 0x2000,
        reason: 'must_kill, action required'
      }
      expect(lines(report({ processes: [p] }))[4]).to.equal(
        'process 100 (mapper) collected fd 5 map 0x1000-0x3000 vaddr 0x2000 map 0x7f0000000000-0x7f0000600000 vaddr 0x7f0000264000 ' +
        'signal SIGBUS BUS_MCEERR_AR si_addr_lsb 12 (must_kill, action required)')
    })

    it('says whether each signal was sent and which way, and adds the kill(2) note when one went by kill', () => {
      const r = report({
        flags: MF_MUST_KILL,
        deliver: true,
        processes: [
          { ...mapper, sent: true, way: 'kill' },
          { ...mapper, pid: 101, sent: true, way: 'ptrace' },
          { ...mapper, pid: 102, sent: false, sendError: 'ESRCH' },
          reader
        ],
        revocation: { via: '/mnt/dir/a', ms: 2.25, failed: [] }
      })
      const got = lines(r)
      const map = 'collected map 0x7f0000000000-0x7f0000600000 vaddr 0x7f0000264000 ' +
        'signal SIGBUS BUS_MCEERR_AO si_addr_lsb 12 (must_kill, action optional)'
      expect(got.slice(4)).to.deep.equal([
        `process 100 (mapper) ${map} sent way kill`,
        `process 101 (mapper) ${map} sent way ptrace`,
        `process 102 (mapper) ${map} not sent: ESRCH`,
        `process 200 (reader) not-collected fd 3,7 signal none (${READER_REASON})`,
        'revoked page cache and mappings by an open of /mnt/dir/a (2.3 ms)',
        `note ${KILL_NOTE}`
      ])
      expect(KILL_NOTE).to.match(/kill\(2\).*SI_USER/)
      const ptraceOnly = lines(report({ deliver: true, processes: [{ ...mapper, sent: true, way: 'ptrace' }] }))
      expect(ptraceOnly.filter(l => l.startsWith('note'))).to.deep.equal([])
    })

    it('says when there was nothing to open to revoke', () => {
      const r = report({ revocation: { via: null, ms: 0.5, failed: [{ via: '/proc/9/fd/3', error: 'ENOENT' }] } })
      expect(lines(r)).to.include('revoked nothing: no way to open the file (/proc/9/fd/3: ENOENT) (0.5 ms)')
      const retried = report({ revocation: { via: '/m/f', ms: 4, failed: [{ via: '/m/f', error: 'EIO' }] } })
      expect(lines(retried)).to.include('revoked page cache and mappings by an open of /m/f (4.0 ms; before that /m/f: EIO)')
    })

    it('has no note without deliver, or when no process has a signal', () => {
      const noDeliver = lines(report({ flags: MF_MUST_KILL, processes: [mapper, reader] }))
      expect(noDeliver.filter(l => l.startsWith('note'))).to.deep.equal([])
      const noSignal = lines(report({ deliver: true, processes: [quiet] }))
      expect(noSignal.filter(l => l.startsWith('note'))).to.deep.equal([])
      const noProcess = lines(report({ deliver: true }))
      expect(noProcess.filter(l => l.startsWith('note'))).to.deep.equal([])
      expect(noProcess[noProcess.length - 1]).to.equal('processes none')
    })

    it('renders what the memory-failure path reports', async () => {
      const sb = makeSb({ size: 8 * MiB, nodes: 1, shift: 21 })
      const f = createFile(sb, '/f', 2 * 2 * MiB)
      const pfn = pfnOfIndex(sb, f, 1) + 5
      const env = fakeEnv({
        self: 1000,
        holders: [
          { pid: 100, comm: 'mapper', fds: [], mappings: [{ start: VA, end: VA + 0x400000, pgoff: 0, perms: 'rw-s' }] },
          { pid: 200, comm: 'reader', fds: [3], mappings: [] }
        ]
      })
      const place = locatePfn(sb.pool, pfn)!
      const r = await handleMemoryFailure(sb, place, MF_MUST_KILL, true, env)
      const pgoff = 512 + 5
      expect(lines(r)).to.deep.equal([
        `pfn 0x${pfn.toString(16)} phys 0x${(pfn * 4096).toString(16)} node 0 region 0 ` +
          `dpage 0x${(pfn - 5).toString(16)} (2M) state used`,
        'flags 0x4 (must_kill)',
        `result MCE 0x${pfn.toString(16)}: handled by dmem`,
        `file /f ino ${f.ino} pgoff 0x${pgoff.toString(16)} offset ${pgoff * 4096}`,
        `process 100 (mapper) collected map 0x7f0000000000-0x7f0000400000 vaddr 0x${(VA + pgoff * 4096).toString(16)} ` +
          'signal SIGBUS BUS_MCEERR_AO si_addr_lsb 12 (must_kill, action optional) sent way kill',
        `process 200 (reader) not-collected fd 3 signal none (${READER_REASON})`,
        'revoked page cache and mappings by an open of /f (1.0 ms)',
        `note ${KILL_NOTE}`
      ])
    })
  })

  describe('reportJson', () => {
    it('gives the facts with PFNs and addresses as hex strings', () => {
      const r = report({
        flags: MF_MUST_KILL | MF_ACTION_REQUIRED,
        processes: [{ ...mapper, siCode: 'BUS_MCEERR_AR' }, reader]
      })
      const j = JSON.parse(JSON.stringify(reportJson(r)))
      expect(j).to.deep.equal({
        pfn: '0x140264',
        phys: '0x140264000',
        node: 1,
        region: 2,
        dpage: '0x140200',
        dpage_size: 2 * MiB,
        state: 'used',
        flags: 6,
        flag_names: ['action_required', 'must_kill'],
        result: 'MCE 0x140264: handled by dmem',
        file: { path: '/dir/a', ino: 4, pgoff: '0x264', offset: 0x264 * 4096 },
        ino: 4,
        pgoff: '0x264',
        handles: [],
        processes: [
          {
            pid: 100,
            comm: 'mapper',
            opener: false,
            collected: true,
            early_kill: true,
            early_kill_reason: 'early_kill=all: every holder is collected',
            fds: [],
            mappings: [{ start: '0x7f0000000000', end: '0x7f0000600000', pgoff: '0x0', vaddr: '0x7f0000264000' }],
            vaddr: '0x7f0000264000',
            signal: 'SIGBUS',
            si_code: 'BUS_MCEERR_AR',
            si_addr_lsb: 12,
            reason: 'must_kill, action optional',
            sent: null,
            way: null,
            on_touch: { seed: 'BUS_MCEERR_AR', simulated: 'BUS_ADRERR' },
            on_access: 'EIO'
          },
          {
            pid: 200,
            comm: 'reader',
            opener: false,
            collected: false,
            early_kill: false,
            early_kill_reason: 'holds the file through a descriptor only',
            fds: [3, 7],
            mappings: [],
            vaddr: null,
            signal: null,
            si_code: null,
            si_addr_lsb: null,
            reason: READER_REASON,
            sent: null,
            way: null,
            on_touch: null,
            on_access: 'EIO'
          }
        ],
        early_kill_mode: 'all',
        revocation: null
      })
    })

    it('gives null file, ino and pgoff for a free dpage', () => {
      const j = reportJson(report({ state: 'free', file: null, result: 'MCE: free dpage, mark 0x140264 disabled in dmem' }))
      expect(j).to.include({ pfn: '0x140264', state: 'free', file: null, ino: null, pgoff: null })
      expect(j).to.have.property('processes').that.deep.equals([])
      expect(j).to.not.have.property('note')
    })

    it('gives a null path for an unlinked file and the state word of the report', () => {
      const j = reportJson(report({ file: { path: null, ino: 9, pgoff: 3, offset: 3 * 4096 } })) as any
      expect(j.file).to.deep.equal({ path: null, ino: 9, pgoff: '0x3', offset: 3 * 4096 })
      expect(reportJson(report({ state: 'already-poisoned', file: null }))).to.include({ state: 'already-poisoned' })
    })

    it('reports delivery: sent, the send error, and the note', () => {
      const j = reportJson(report({
        flags: MF_MUST_KILL,
        deliver: true,
        processes: [{ ...mapper, sent: true, way: 'kill' }, { ...mapper, pid: 101, sent: false, sendError: 'EPERM' }],
        revocation: { via: '/proc/7/fd/3', ms: 1.23456, failed: [{ via: '/m/f', error: 'EIO' }] }
      })) as any
      expect(j.processes.map((p: any) => [p.sent, p.way])).to.deep.equal([[true, 'kill'], [false, null]])
      expect(j.processes[0]).to.not.have.property('send_error')
      expect(j.processes[1].send_error).to.equal('EPERM')
      expect(j.revocation).to.deep.equal({ via: '/proc/7/fd/3', ms: 1.235, failed: [{ via: '/m/f', error: 'EIO' }] })
      expect(j.note).to.equal(KILL_NOTE)
    })
  })

  describe('names in the report', () => {
    const name = '/dir\n two\\\xff\xc3\xa9' // bytes: a newline, a space, a backslash, 0xff, UTF-8 é
    const odd = { ...mapper, comm: 'a b\n\xe9' }

    it('the text escapes them as seq_file does: one line each, other bytes as they are', () => {
      const text = renderReport(report({ file: { path: name, ino: 4, pgoff: 0x264, offset: 0x264 * 4096 }, processes: [odd] }))
      const lines = text.split('\n')
      expect(lines).to.include(`file /dir\\012\\040two\\134\xff\xc3\xa9 ino 4 pgoff 0x264 offset ${0x264 * 4096}`)
      expect(lines.some(l => l.startsWith('process 100 (a\\040b\\012\xe9) '))).to.equal(true)
    })

    it('the JSON carries them in surrogateescape: valid UTF-8 decoded, other bytes as U+DC80-U+DCFF', () => {
      const json = reportJson(report({ file: { path: name, ino: 4, pgoff: 0x264, offset: 0x264 * 4096 }, processes: [odd] })) as {
        file: { path: string }, processes: Array<{ comm: string }>
      }
      expect(json.file.path).to.equal('/dir\n two\\\udcff\u00e9')
      expect(json.processes[0].comm).to.equal('a b\n\udce9')
    })
  })

  describe('openers tracked via open handles', () => {
    it('lists each handle with its opener and marks the process that opened it', () => {
      const r = report({
        handles: [{ fh: 7, opener: 200, comm: 'reader' }],
        processes: [{ ...reader, opener: true }]
      })
      const text = renderReport(r)
      expect(text).to.include('handle 7 opener 200 (reader) (tracked via open handles)\n')
      expect(text).to.match(/^process 200 \(reader\) opener not-collected fd 3,7 /m)
      const json = reportJson(r) as { handles: unknown[], processes: Array<{ opener: boolean }> }
      expect(json.handles).to.deep.equal([{ fh: 7, opener: 200, comm: 'reader', source: 'tracked via open handles' }])
      expect(json.processes[0].opener).to.equal(true)
    })
  })
})
