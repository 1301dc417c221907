#!/bin/sh
# Installs fio (the benchmark's random-read tool) from Debian's packages if it is missing. Idempotent and
# quiet: prints nothing when fio is already there, one line when it installs it, and apt's output only if
# apt fails.
set -eu
command -v fio >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install-fio: fio is missing; as root: apt-get update && apt-get install -y fio" >&2
  exit 1
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends fio; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "install-fio: could not install fio from Debian's packages" >&2
  exit 1
fi
echo "install-fio: installed $(fio --version)"
