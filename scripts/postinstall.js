#!/usr/bin/env node
// Runs on `npm ci` / `npm install` of this package (npm runs the root package's own postinstall), after
// patch-package has applied patches/ to node_modules/fuse-native.
// 1. Rebuild fuse-native's binding from the patched source with node-gyp (see patches/README.md). The
//    rebuilt binding carries a run path to the libfuse it is built with, so nothing else is needed to load.
// 2. Only if that fails (no compiler): keep the prebuilt binding, which links `libfuse.so.2` without a run
//    path, and link that library under its SONAME into `.lib/`, which bin/dmemfs then puts on
//    LD_LIBRARY_PATH. One line says so; fuse-native's old behaviour (millisecond times, no caller
//    identity, no per-file direct_io) remains.
// 3. Build the siginfo injector (native/siginfo, an N-API addon of ours; its binding.gyp sits in that
//    subfolder because npm would take a binding.gyp at the package root for an install script of its own):
//    it gives a memory-failure SIGBUS the kernel's si_code and si_addr by ptrace. Without a compiler one
//    line says so, and such signals are sent by kill(2), as plain SIGBUS (SI_USER).
// 4. Build dmemfs's own native data path (native/datapath.c) the same way. It needs the rebuilt binding's
//    data hook; without either, READ and WRITE go through TypeScript as before, and one line says so.
// 5. Compile the TypeScript so `npm start` and the `dmemfs` bin run without ts-node.
'use strict'
const fs = require('fs')
const path = require('path')
const { execFileSync } = require('child_process')

const root = path.resolve(__dirname, '..')
const fallbackLibDir = path.join(root, '.lib')

function nodeGypRebuild (dir) {
  const npmDir = process.env.npm_execpath ? path.resolve(path.dirname(process.env.npm_execpath), '..') : '/usr/lib/node_modules/npm'
  let gyp
  try {
    gyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [npmDir, root] })
  } catch {
    return 'node-gyp not found'
  }
  return runGyp(gyp, dir)
}

function runGyp (gyp, dir) {
  try {
    // Build against the installed Node headers; there is no network to download them from.
    const nodedir = process.env.npm_config_nodedir || path.resolve(process.execPath, '..', '..')
    execFileSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
    return null
  } catch (err) {
    fs.rmSync(path.join(dir, 'build'), { recursive: true, force: true })
    return String(err.stderr || err.message).trim().split('\n').pop()
  }
}

function rebuildFuseNative () {
  return nodeGypRebuild(path.dirname(require.resolve('fuse-native/package.json')))
}

function linkFallbackLibfuse () {
  const lib = require.resolve('fuse-shared-library-linux/libfuse/lib/libfuse.so', { paths: [require.resolve('fuse-native')] })
  const link = path.join(fallbackLibDir, 'libfuse.so.2')
  fs.mkdirSync(fallbackLibDir, { recursive: true })
  fs.rmSync(link, { force: true })
  fs.symlinkSync(lib, link)
}

function build () {
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  if (!fs.existsSync(tsc)) {
    console.error('dmemfs: typescript is not installed; run `npm ci` (with dev dependencies) to build')
    return
  }
  execFileSync(process.execPath, [tsc, '-p', root], { stdio: 'inherit' })
}

fs.rmSync(fallbackLibDir, { recursive: true, force: true })
const failure = nodeGypRebuild(path.dirname(require.resolve('fuse-native/package.json')))
if (failure) {
  console.error(`dmemfs: could not rebuild fuse-native (${failure}); using its prebuilt binding, without the fixes in patches/`)
  linkFallbackLibfuse()
}
const noInjector = nodeGypRebuild(path.join(root, 'native', 'siginfo'))
if (noInjector) {
  console.error(`dmemfs: could not build the siginfo injector (${noInjector}); memory-failure signals will be plain SIGBUS sent by kill(2)`)
}
const datapathFailure = failure ? 'no rebuilt fuse-native to hook into' : nodeGypRebuild(path.join(root, 'native'))
if (datapathFailure) {
  console.error(`dmemfs: could not build the native data path (${datapathFailure}); reads and writes go through TypeScript`)
}
build()
fs.mkdirSync(path.join(root, 'mount'), { recursive: true })
