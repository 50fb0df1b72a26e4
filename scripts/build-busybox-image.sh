#!/usr/bin/env bash
# Builds a tiny sandbox image without any registry: FROM scratch + a static busybox.
# Usage: scripts/build-busybox-image.sh TAG
set -euo pipefail
tag=${1:?usage: build-busybox-image.sh TAG}
busybox=${BUSYBOX:-/bin/busybox}
if ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked' && ! ldd "$busybox" 2>&1 | grep -q 'not a dynamic'; then
  # Where a registry is reachable the official image does the same job.
  if docker pull --quiet busybox:1.36 >/dev/null 2>&1; then
    docker tag busybox:1.36 "$tag"
    echo "tagged busybox:1.36 as $tag"
    exit 0
  fi
  echo "build-busybox-image: $busybox is not a static busybox and no registry is reachable;" >&2
  echo "  install one with \`apt-get install busybox-static\` (Debian/Ubuntu) and run \`make demo\` again" >&2
  exit 1
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$busybox" "$ctx/busybox"
cp "$(dirname "$0")/../examples/sandbox/Dockerfile" "$ctx/Dockerfile"
docker build --quiet -t "$tag" "$ctx" >/dev/null
echo "built $tag"
