#!/usr/bin/env node
// Runs on `npm ci` / `npm install` of this package (npm runs the root package's own postinstall).
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

function build () {
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  if (!fs.existsSync(tsc)) {
    console.error('dmemfs: typescript is not installed; run `npm ci` (with dev dependencies) to build')
    return
  }
  execFileSync(process.execPath, [tsc, '-p', root], { stdio: 'inherit' })
}

linkLibfuse()
build()
fs.mkdirSync(path.join(root, 'mount'), { recursive: true })
