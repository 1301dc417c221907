#!/bin/sh
# Gets what the VM test and the benchmark's `vm` phase need, from Debian's package registry only:
#   - QEMU (`qemu-system-x86`), installed with apt-get (as root) if `qemu-system-x86_64` is not on PATH: its
#     binary needs some thirty shared libraries and the firmware of other packages, which only a real
#     install resolves reliably;
#   - a Debian kernel (`linux-image-*-amd64`, the one `linux-image-amd64` points at), its vmlinuz alone,
#     with apt-get download and dpkg-deb -x;
#   - busybox-static, with apt-get download and dpkg-deb -x, made into a tiny initramfs whose /init prints
#     what the guest sees and a marker line on the serial console, then powers off (`vm.then=poweroff`
#     on the kernel command line) or waits.
# Into a cache folder (default .cache/vm/ in the repository, or $DMEMFS_VM_CACHE): vmlinuz, initrd.img,
# qemu (a file holding the QEMU binary's path). Idempotent: with the cache complete it only checks and prints
# the paths. `--check` tells, without fetching anything, whether the assets are there (exit 0) or not (1).
# Prints one line per thing it fetches; apt's output only if apt fails.
set -eu

root=$(dirname "$(dirname "$(readlink -f "$0")")")
cache=${DMEMFS_VM_CACHE:-$root/.cache/vm}
# What /init prints once user space runs; the test and the benchmark wait for it (keep in step with
# test/vm/vm.ts).
marker=DMEMFS-VM-READY

have_qemu () {
  command -v qemu-system-x86_64 >/dev/null 2>&1
}

complete () {
  [ -s "$cache/vmlinuz" ] && [ -s "$cache/initrd.img" ] && [ -s "$cache/qemu" ] && [ -x "$(cat "$cache/qemu")" ]
}

if [ "${1:-}" = --check ]; then
  complete && exit 0
  echo "vm-assets: no VM assets in $cache (scripts/vm-assets.sh fetches them from Debian's packages, as root, in about a minute)" >&2
  exit 1
fi

if complete; then
  echo "vm-assets: $cache (cached)"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "vm-assets: the VM assets are missing from $cache; run scripts/vm-assets.sh as root" >&2
  exit 1
fi

log=$(mktemp)
work=$(mktemp -d)
trap 'rm -rf "$log" "$work"' EXIT
export DEBIAN_FRONTEND=noninteractive

apt () {
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "vm-assets: '$*' failed" >&2
    exit 1
  fi
}

mkdir -p "$cache"
apt apt-get update -qq

if ! have_qemu; then
  apt apt-get install -y -qq --no-install-recommends qemu-system-x86
  echo "vm-assets: installed $(qemu-system-x86_64 --version | head -n 1)"
fi
command -v qemu-system-x86_64 >"$cache/qemu.new"
mv "$cache/qemu.new" "$cache/qemu"

if [ ! -s "$cache/vmlinuz" ]; then
  # linux-image-amd64 is a metapackage; the kernel is the package it depends on.
  kpkg=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[^ ]*-amd64\)$/\1/p' | head -n 1)
  [ -n "$kpkg" ] || { echo "vm-assets: no kernel package behind linux-image-amd64" >&2; exit 1; }
  (cd "$work" && apt apt-get download "$kpkg")
  dpkg-deb -x "$work"/linux-image-*.deb "$work/kernel"
  cp "$work"/kernel/boot/vmlinuz-* "$cache/vmlinuz.new"
  mv "$cache/vmlinuz.new" "$cache/vmlinuz"
  echo "$kpkg" >"$cache/kernel-package"
  echo "vm-assets: kernel $kpkg"
fi

if [ ! -s "$cache/initrd.img" ]; then
  (cd "$work" && apt apt-get download busybox-static)
  dpkg-deb -x "$work"/busybox-static_*.deb "$work/busybox"
  bb="$work/busybox/bin/busybox"
  rd="$work/initrd"
  mkdir -p "$rd/bin" "$rd/dev" "$rd/proc" "$rd/sys"
  cp "$bb" "$rd/bin/busybox"
  for applet in sh mount cat grep head sleep poweroff echo; do ln -s busybox "$rd/bin/$applet"; done
  # The kernel runs /init as pid 1 with the console as stdin/out. It reports the guest's RAM as the guest
  # sees it (MemTotal, and the System RAM ranges of its physical address space), then the marker.
  cat >"$rd/init" <<EOF
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "vm: \$(grep MemTotal /proc/meminfo)"
grep 'System RAM' /proc/iomem | while read -r line; do echo "vm: iomem \$line"; done
echo $marker
case " \$(cat /proc/cmdline) " in
  *" vm.then=poweroff "*) poweroff -f ;;
esac
while :; do sleep 3600; done
EOF
  chmod 755 "$rd/init"
  (cd "$rd" && find . | "$bb" cpio -o -H newc 2>/dev/null | gzip -9) >"$cache/initrd.img.new"
  mv "$cache/initrd.img.new" "$cache/initrd.img"
  echo "vm-assets: initramfs from busybox-static"
fi

complete || { echo "vm-assets: the cache in $cache is still incomplete" >&2; exit 1; }
echo "vm-assets: $cache"
