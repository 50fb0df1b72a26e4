#!/usr/bin/env bash
# Makes the kernel run binaries of another architecture through qemu-user, so that
# `docker build --platform linux/arm64` can execute the Dockerfile's RUN steps and
# `docker run --platform linux/arm64` starts an arm64 image on an x86_64 host.
#
# Usage: scripts/qemu-binfmt.sh [DEBIAN_ARCH]   (default arm64)
#
# Debian's qemu-user-static ships the binfmt_misc entries in /usr/lib/binfmt.d with the
# `F` flag: the kernel opens the interpreter once, at registration, so it works inside
# containers whose root has no qemu. binfmt-support or systemd-binfmt would register
# them at boot; on a machine (or CI container) without either, this script does it.
# Needs root; the registration is machine-wide and harmless to other users.
set -euo pipefail
arch=${1:-arm64}
case "$arch" in
  arm64 | aarch64) qemu=aarch64 ;;
  amd64 | x86_64) qemu=x86_64 ;;
  *) qemu=$arch ;;
esac
say() { printf 'qemu-binfmt: %s\n' "$*" >&2; }
binfmt=/proc/sys/fs/binfmt_misc
if [ -e "$binfmt/qemu-$qemu" ]; then
  exit 0
fi
conf=/usr/lib/binfmt.d/qemu-$qemu.conf
if [ ! -e "$conf" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing qemu-user-static (apt) for $arch"
    apt-get install -y -qq qemu-user-static >/dev/null 2>&1 \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static >/dev/null; }
  fi
  [ -e "$conf" ] || { say "no $conf: install qemu-user-static"; exit 1; }
fi
if [ ! -e "$binfmt/register" ]; then
  mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null \
    || { say "cannot mount binfmt_misc on $binfmt (needs root; in a container, --privileged)"; exit 1; }
fi
[ -e "$binfmt/qemu-$qemu" ] || cat "$conf" >"$binfmt/register" \
  || { say "cannot register $conf in $binfmt/register (needs root)"; exit 1; }
say "registered qemu-$qemu ($(sed -n 's/^flags: //p' "$binfmt/qemu-$qemu"))"
