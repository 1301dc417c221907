// Entry point of the `dmemfs` command (bin/dmemfs runs the compiled file); the commands live in src/cli/.

import { runCli } from './cli/main'

runCli(process.argv.slice(2))
