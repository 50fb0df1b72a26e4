#!/usr/bin/env bash
# Builds a Debian base image without any image registry: debootstrap (minbase + git +
# CA certificates) from the Debian mirror, then `docker import`. The runner images are
# built on it in tests (`make images LOCAL_BASE=pace-test/debian-git:bookworm`).
#
# Usage: scripts/build-local-base.sh [TAG] [ARCH]
#   ARCH is a Debian architecture (default: the host's, `amd64` or `arm64`). A foreign
#   architecture is bootstrapped through qemu-user (scripts/qemu-binfmt.sh registers it):
#   debootstrap runs its second stage inside the new root, which needs binfmt_misc.
#   The image records ARCH as its architecture, so `docker build --platform` finds it as
#   the base of that architecture. (`docker import --platform` cannot do it on Docker
#   20.10: the daemon sets only the OS, the architecture stays its own; so a foreign root
#   is loaded as a one-layer `docker save` archive whose configuration names ARCH.)
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
# Loads the root file system in $1 as image $3 of architecture $2: a `docker save` archive
# of one layer (manifest.json, the image configuration, the layer's tar).
load_foreign() {
  local rootfs=$1 arch=$2 tag=$3 archive diff_id config config_id
  archive=$(mktemp -d /tmp/pace-base-archive-XXXXXX)
  mkdir "$archive/layer"
  tar -C "$rootfs" -c . >"$archive/layer/layer.tar"
  diff_id=$(sha256sum "$archive/layer/layer.tar" | cut -d' ' -f1)
  config=$(printf '{"architecture":"%s","os":"linux","created":"%s","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"%s","created_by":"scripts/build-local-base.sh (debootstrap bookworm %s)"}]}' \
    "$arch" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$diff_id" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$arch")
  config_id=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
  printf '%s' "$config" >"$archive/$config_id.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["layer/layer.tar"]}]' "$config_id" "$tag" >"$archive/manifest.json"
  tar -C "$archive" -c . | docker load -q >/dev/null || { rm -rf "$archive"; echo "build-local-base: docker load of the $arch root failed" >&2; return 1; }
  rm -rf "$archive"
}

mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d /tmp/pace-base-XXXXXX)
log=$(mktemp /tmp/pace-debootstrap-XXXXXX.log)
trap 'rm -rf "$root" "$log"' EXIT
debootstrap --arch="$arch" --variant=minbase --include=git,ca-certificates bookworm "$root" "$mirror" >"$log" 2>&1 \
  || { tail -20 "$log" >&2; echo "build-local-base: debootstrap of bookworm/$arch failed (log above)" >&2; exit 1; }
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
if [ "$arch" = "$host_arch" ]; then
  tar -C "$root" -c . | docker import --change 'CMD ["/bin/sh"]' - "$tag" >/dev/null
else
  load_foreign "$root" "$arch" "$tag"
fi
echo "built $tag (linux/$arch)"
