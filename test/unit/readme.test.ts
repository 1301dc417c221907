// README.md's generated tables match the definitions they come from (run `npm run readme` after changing
// a mount option or a command).

import { expect } from 'chai'
import * as fs from 'fs'
import * as path from 'path'
import { beginMarker, endMarker, GENERATED, updateReadme } from '../../src/cli/readme'
import { MOUNT_OPTIONS } from '../../src/options'

const README = path.resolve(__dirname, '..', '..', '..', 'README.md')

describe('README.md', () => {
  const text = fs.readFileSync(README, 'utf8')

  it('has the generated tables exactly as `npm run readme` writes them', () => {
    const lines = (s: string): string[] => s.split('\n')
    expect(lines(text), 'README.md is stale: run npm run readme').to.deep.equal(lines(updateReadme(text)))
  })

  it('lists every mount option and every command', () => {
    const between = (name: string): string => text.slice(text.indexOf(beginMarker(name)), text.indexOf(endMarker(name)))
    for (const o of MOUNT_OPTIONS) expect(between('mount-options')).to.include(`| \`${o.syntax.replace(/\|/g, '\\|')}\` |`)
    for (const name of ['mount', 'umount', 'mce', 'stat', 'pfn', 'unpoison', 'help']) {
      expect(between('commands')).to.include(`| \`dmemfs ${name}`)
    }
  })

  it('a missing marker is an error, not a silent skip', () => {
    expect(() => updateReadme('no markers here')).to.throw(/needs one/)
    const name = Object.keys(GENERATED)[0]
    expect(() => updateReadme(`${beginMarker(name)}\n${beginMarker(name)}\n${endMarker(name)}`)).to.throw(/needs one/)
  })
})
