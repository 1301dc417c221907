#!/bin/sh
# Installs what the test suite needs and a fresh machine lacks (Debian packages): `attr` for getfattr and
# setfattr. Run by `npm test` before the build; when everything is there it only looks and exits.
set -e
missing=''
if ! command -v getfattr >/dev/null 2>&1 || ! command -v setfattr >/dev/null 2>&1; then missing="$missing attr"; fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "dmemfs: the tests need these packages:$missing; install them and run the tests again" >&2
  exit 1
fi
echo "dmemfs: installing$missing for the tests" >&2
# Quiet unless it fails; then apt's own words say why.
if ! out=$(apt-get update -qq 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing 2>&1); then
  echo "$out" >&2
  echo "dmemfs: could not install$missing" >&2
  exit 1
fi
