#!/usr/bin/env bash
# Builds a tiny sandbox image without any registry: FROM scratch + a static busybox.
# Usage: scripts/build-busybox-image.sh TAG
set -euo pipefail
tag=${1:?usage: build-busybox-image.sh TAG}
busybox=${BUSYBOX:-/bin/busybox}
is_static() {
  file -L "$1" 2>/dev/null | grep -q 'statically linked' || ldd "$1" 2>&1 | grep -q 'not a dynamic'
}
if ! is_static "$busybox"; then
  # Where a registry is reachable the official image does the same job.
  if docker pull --quiet busybox:1.36 >/dev/null 2>&1; then
    docker tag busybox:1.36 "$tag"
    echo "tagged busybox:1.36 as $tag"
    exit 0
  fi
  # Else install the static busybox, as start-dockerd.sh installs docker.io: only as root
  # with apt-get (a user's machine is not changed behind their back).
  if [ -z "${BUSYBOX:-}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "build-busybox-image: installing busybox-static" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
  fi
  if ! is_static "$busybox"; then
    echo "build-busybox-image: $busybox is not a static busybox and no registry is reachable;" >&2
    echo "  install one with \`apt-get install busybox-static\` (Debian/Ubuntu) and run \`make demo\` again" >&2
    exit 1
  fi
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$busybox" "$ctx/busybox"
cp "$(dirname "$0")/../examples/sandbox/Dockerfile" "$ctx/Dockerfile"
docker build --quiet -t "$tag" "$ctx" >/dev/null
echo "built $tag"
