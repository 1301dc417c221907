// The command line's pure parts: flags parsed with util.parseArgs into one-line usage errors, the usage
// lines and help generated from each command's description, and the mount options' help.

import { expect } from 'chai'
import { checkPfn, Command, commandHelp, hanging, parseCommand, UsageError, usageLine } from '../../src/cli/common'
import { COMMANDS, mainHelp } from '../../src/cli/help'
import { mountOptionsHelp } from '../../src/cli/mount'
import { failureMessage } from '../../src/cli/main'
import { MOUNT_OPTIONS } from '../../src/options'

const demo: Command = {
  name: 'demo',
  args: 'THING',
  summary: 'a command for the tests',
  flags: [
    { name: 'json', help: 'as JSON' },
    { name: 'cells', value: 'N', help: 'how many' },
    { name: 'options', short: 'o', value: 'OPTIONS', multiple: true, help: 'options' }
  ],
  details: 'Details.',
  run: () => 0
}

function usageError (args: string[]): string {
  try {
    parseCommand(demo, args)
  } catch (err) {
    expect(err).to.be.instanceOf(UsageError)
    return (err as Error).message
  }
  throw new Error(`accepted: ${args.join(' ')}`)
}

describe('cli: flags', () => {
  it('parses positionals, boolean flags, valued flags and a repeated short option', () => {
    const p = parseCommand(demo, ['x', '--json', '--cells', '8', '-o', 'a=1,b', '-oc', 'y'])
    expect(p.positionals).to.deep.equal(['x', 'y'])
    expect([...p.flags]).to.deep.equal(['json'])
    expect(p.values.get('cells')).to.deep.equal(['8'])
    expect(p.values.get('options')).to.deep.equal(['a=1,b', 'c'])
    expect(parseCommand(demo, ['--cells=9']).values.get('cells')).to.deep.equal(['9'])
  })

  it('turns every mistake into one short line', () => {
    expect(usageError(['--colour'])).to.equal("unknown flag '--colour'")
    expect(usageError(['-x'])).to.equal("unknown flag '-x'")
    expect(usageError(['--cells'])).to.equal('--cells needs a value')
    expect(usageError(['--cells='])).to.equal('--cells needs a value')
    expect(usageError(['-o'])).to.equal('-o needs a value')
    expect(usageError(['--json=1'])).to.equal('--json takes no value')
    expect(usageError(['--cells', '1', '--cells', '2'])).to.equal('--cells given twice')
  })

  it('takes a PFN as kstrtoull does and refuses anything else as bad usage', () => {
    for (const pfn of ['0x100000', '1048576', '04000000']) expect(checkPfn(pfn)).to.equal(pfn)
    for (const pfn of ['zz', '0x', '-1', ' 1', '1 ']) expect(() => checkPfn(pfn), pfn).to.throw(UsageError, /bad PFN/)
  })
})

describe('cli: help', () => {
  it('builds a usage line from the arguments and every flag', () => {
    expect(usageLine(demo)).to.equal('dmemfs demo THING [--json] [--cells N] [-o OPTIONS]')
    const help = commandHelp(demo)
    expect(help.split('\n')[0]).to.equal('usage: dmemfs demo THING [--json] [--cells N] [-o OPTIONS]')
    expect(help).to.include('\n  --json      as JSON\n  --cells N   how many\n  -o OPTIONS  options')
  })

  it('the top-level help has each command\'s whole usage line and summary', () => {
    const main = mainHelp().split('\n')
    for (const c of COMMANDS) {
      const at = main.indexOf(`  ${usageLine(c).replace(/^dmemfs /, '')}`)
      expect(at, c.name).to.be.above(0)
      expect(main[at + 1].trim()).to.equal(c.summary)
    }
  })

  it('the mount help lists every mount option with its default, without markdown', () => {
    const help = mountOptionsHelp()
    for (const o of MOUNT_OPTIONS) {
      expect(help, o.name).to.match(new RegExp(`^ {2}${o.syntax.replace(/[[\]|]/g, '\\$&')} `, 'm'))
    }
    expect(help).to.not.include('`')
    expect(help).to.include('(default 4K)')
  })

  it('wraps text under its lead at 100 columns', () => {
    const lines = hanging('  --x  ', 'word '.repeat(60).trim())
    expect(lines.length).to.be.above(1)
    for (const l of lines) expect(l.length).to.be.at.most(100)
    expect(lines.slice(1).every(l => l.startsWith('       word'))).to.equal(true)
    expect(lines.join(' ').split(/\s+/).filter(w => w === 'word')).to.have.length(60)
  })
})

describe('cli: failures said in words', () => {
  const sysErr = (code: string, path: string) => Object.assign(new Error(`${code}: raw, open '${path}'`), { code, path })

  it('a missing path says so; a refused control file says who may use it', () => {
    expect(failureMessage(sysErr('ENOENT', 'mount/nope'))).to.equal('mount/nope: no such file or directory')
    expect(failureMessage(sysErr('EACCES', '/m/.dmem/mce'))).to.match(/^\/m\/\.dmem\/mce: permission denied \(only root may use it/)
    expect(failureMessage(sysErr('EACCES', '/m/.dmem/stat'))).to.match(/^\/m\/\.dmem\/stat: permission denied \(.*allow_other\)$/)
    expect(failureMessage(sysErr('EACCES', '/m/f'))).to.equal('/m/f: permission denied')
  })

  it('a value that starts with a dash is not taken for a flag without saying how to write it', () => {
    const cmd = COMMANDS.find(c => c.name === 'inject')!
    expect(() => parseCommand(cmd, ['m', '--count', '-1'])).to.throw(UsageError, /--count needs a value \(a value starting with '-' is written --count=VALUE\)/)
  })
})
