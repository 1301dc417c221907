// The README's generated parts: the table of mount options and the table of commands come from the same
// definitions as `dmemfs mount --help` and `dmemfs --help`, so the two cannot drift. Each part sits between
// marker comments; `npm run readme` rewrites them, and a unit test fails when README.md differs.

import { MOUNT_OPTIONS } from '../options'
import { COMMANDS } from './help'
import { usageLine } from './common'

/** A table cell's text: a `|` would end the cell. */
function cell (text: string): string {
  return text.replace(/\|/g, '\\|')
}

export function mountOptionsTable (): string {
  const rows = ['| option | meaning | default |', '|---|---|---|']
  for (const o of MOUNT_OPTIONS) rows.push(`| \`${cell(o.syntax)}\` | ${cell(o.meaning)} | ${cell(o.default)} |`)
  return rows.join('\n')
}

export function commandsTable (): string {
  const rows = ['| command | what it does |', '|---|---|']
  for (const c of COMMANDS) rows.push(`| \`${cell(usageLine(c))}\` | ${cell(c.summary)} |`)
  return rows.join('\n')
}

export const GENERATED: Record<string, () => string> = {
  'mount-options': mountOptionsTable,
  commands: commandsTable
}

export function beginMarker (name: string): string {
  return `<!-- generated: ${name} (npm run readme rewrites it from the source) -->`
}

export function endMarker (name: string): string {
  return `<!-- end of generated: ${name} -->`
}

/** `readme` with every generated part rewritten; a missing or doubled marker is an error. */
export function updateReadme (readme: string): string {
  let text = readme
  for (const [name, render] of Object.entries(GENERATED)) {
    const begin = beginMarker(name)
    const end = endMarker(name)
    const from = text.indexOf(begin)
    const to = text.indexOf(end)
    if (from < 0 || to < from || text.indexOf(begin, from + 1) >= 0) {
      throw new Error(`README.md needs one '${begin}' followed by one '${end}'`)
    }
    text = text.slice(0, from + begin.length) + '\n' + render() + '\n' + text.slice(to)
  }
  return text
}
