#!/usr/bin/env bash
# Builds a Debian base image without any image registry: debootstrap (minbase + git +
# CA certificates) from the Debian mirror, then `docker import`. The runner images are
# built on it in tests (`make images BASE_IMAGE=pace-test/debian-git:bookworm`).
# Usage: scripts/build-local-base.sh [TAG]
set -euo pipefail
tag=${1:-pace-test/debian-git:bookworm}
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag exists"
  exit 0
fi
command -v debootstrap >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d /tmp/pace-base-XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=git,ca-certificates bookworm "$root" "$mirror" >/tmp/pace-debootstrap.log 2>&1 \
  || { tail -20 /tmp/pace-debootstrap.log >&2; exit 1; }
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import --change 'CMD ["/bin/sh"]' - "$tag" >/dev/null
echo "built $tag"
