#!/usr/bin/env bash
# Builds a tiny sandbox image without any registry: FROM scratch + a static busybox.
# Usage: scripts/build-busybox-image.sh TAG
set -euo pipefail
tag=${1:?usage: build-busybox-image.sh TAG}
busybox=${BUSYBOX:-/bin/busybox}
if ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked' && ! ldd "$busybox" 2>&1 | grep -q 'not a dynamic'; then
  echo "build-busybox-image: $busybox is not a static busybox; install it with \`apt-get install busybox-static\`" >&2
  echo "  (where a registry is reachable you can instead: docker pull busybox:1.36 && docker tag busybox:1.36 $tag)" >&2
  exit 1
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$busybox" "$ctx/busybox"
cp "$(dirname "$0")/../examples/sandbox/Dockerfile" "$ctx/Dockerfile"
docker build --quiet -t "$tag" "$ctx" >/dev/null
echo "built $tag"
