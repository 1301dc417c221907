#!/usr/bin/env node
// Runs on `npm ci` / `npm install` of this package (npm runs the root package's own postinstall), after
// patch-package has applied patches/ to node_modules.
// 0. Rebuild fuse-native's binding from the patched source (see patches/README.md). Without a compiler the
//    prebuilt binary stays in use, with fuse-native's old behaviour, and one line says so.
// 1. fuse-native's prebuilt binding links `libfuse.so.2` without a run path; fuse-shared-library-linux ships
//    that library as `libfuse.so`. A symlink with the SONAME in `.lib/` lets bin/dmemfs put it on
//    LD_LIBRARY_PATH before node starts (setting it from inside a running node is too late).
// 2. Compile the TypeScript so `npm start` and the `dmemfs` bin run without ts-node.
'use strict'
const fs = require('fs')
const path = require('path')
const { execFileSync } = require('child_process')

const root = path.resolve(__dirname, '..')

function linkLibfuse () {
  const lib = require.resolve('fuse-shared-library-linux/libfuse/lib/libfuse.so', { paths: [require.resolve('fuse-native')] })
  const dir = path.join(root, '.lib')
  const link = path.join(dir, 'libfuse.so.2')
  fs.mkdirSync(dir, { recursive: true })
  fs.rmSync(link, { force: true })
  fs.symlinkSync(lib, link)
}

function rebuildFuseNative () {
  const dir = path.dirname(require.resolve('fuse-native/package.json'))
  const npmDir = process.env.npm_execpath ? path.resolve(path.dirname(process.env.npm_execpath), '..') : '/usr/lib/node_modules/npm'
  let gyp
  try {
    gyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [npmDir, root] })
  } catch {
    console.error('dmemfs: node-gyp not found; using the prebuilt fuse-native binding (unpatched native code)')
    return
  }
  try {
    // Build against the installed Node headers; there is no network to download them from.
    const nodedir = process.env.npm_config_nodedir || path.resolve(process.execPath, '..', '..')
    execFileSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
  } catch (err) {
    const why = String(err.stderr || err.message).trim().split('\n').pop()
    console.error(`dmemfs: could not rebuild fuse-native (${why}); using the prebuilt binding (unpatched native code)`)
    fs.rmSync(path.join(dir, 'build'), { recursive: true, force: true })
  }
}

function build () {
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  if (!fs.existsSync(tsc)) {
    console.error('dmemfs: typescript is not installed; run `npm ci` (with dev dependencies) to build')
    return
  }
  execFileSync(process.execPath, [tsc, '-p', root], { stdio: 'inherit' })
}

rebuildFuseNative()
linkLibfuse()
build()
fs.mkdirSync(path.join(root, 'mount'), { recursive: true })
