// npm run readme: rewrites the README's generated tables (src/cli/readme.ts) from the source.

import * as fs from 'fs'
import * as path from 'path'
import { updateReadme } from '../src/cli/readme'

const file = path.resolve(__dirname, '..', '..', 'README.md')
const before = fs.readFileSync(file, 'utf8')
const after = updateReadme(before)
if (after === before) {
  process.stdout.write('README.md: the generated tables are up to date\n')
} else {
  fs.writeFileSync(file, after)
  process.stdout.write('README.md: generated tables rewritten\n')
}
