{
  # dmemfs's native data path (datapath.c), built by scripts/postinstall.js. Kept out of the package root:
  # npm would take a root binding.gyp as an install script of its own.
  "targets": [{
    "target_name": "dmemfs_datapath",
    "sources": [ "datapath.c" ],
    "cflags": [ "-O2", "-Wall", "-D_GNU_SOURCE" ],
    "libraries": [ "-ldl" ]
  }]
}
