#!/usr/bin/env bash
# Builds a Debian base image without any image registry: debootstrap (minbase + git +
# CA certificates) from the Debian mirror, then `docker import`. The runner images are
# built on it in tests (`make images LOCAL_BASE=pace-test/debian-git:bookworm`).
#
# Usage: scripts/build-local-base.sh [TAG] [ARCH]
#   ARCH is a Debian architecture (default: the host's, `amd64` or `arm64`). A foreign
#   architecture is bootstrapped through qemu-user (scripts/qemu-binfmt.sh registers it):
#   debootstrap runs its second stage inside the new root, which needs binfmt_misc.
#   The image is imported with `--platform linux/ARCH`, so `docker build --platform`
#   finds it as the base of that architecture.
set -euo pipefail
tag=${1:-pace-test/debian-git:bookworm}
host_arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
arch=${2:-$host_arch}
if docker image inspect "$tag" >/dev/null 2>&1; then
  have=$(docker image inspect --format '{{.Architecture}}' "$tag")
  if [ "$have" = "$arch" ]; then
    echo "$tag exists"
    exit 0
  fi
  echo "build-local-base: $tag exists for $have, not $arch: remove it (docker rmi $tag) or pick another tag" >&2
  exit 1
fi
command -v debootstrap >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
if [ "$arch" != "$host_arch" ]; then
  "$(dirname "$0")/qemu-binfmt.sh" "$arch"
fi
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d /tmp/pace-base-XXXXXX)
log=$(mktemp /tmp/pace-debootstrap-XXXXXX.log)
trap 'rm -rf "$root" "$log"' EXIT
debootstrap --arch="$arch" --variant=minbase --include=git,ca-certificates bookworm "$root" "$mirror" >"$log" 2>&1 \
  || { tail -20 "$log" >&2; echo "build-local-base: debootstrap of bookworm/$arch failed (log above)" >&2; exit 1; }
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import --platform "linux/$arch" --change 'CMD ["/bin/sh"]' - "$tag" >/dev/null
echo "built $tag (linux/$arch)"
