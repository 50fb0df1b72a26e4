#!/usr/bin/env bash
# Starts a Docker daemon for the tests when none answers (CI machines have none running).
# Idempotent: returns at once if `docker info` already works.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "start-dockerd: installing docker.io" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
log=${DOCKERD_LOG:-/tmp/dockerd.log}
driver=${DOCKERD_STORAGE_DRIVER:-overlay2}
nohup dockerd --iptables=false --bridge=none --storage-driver="$driver" >"$log" 2>&1 &
# The daemon this script started: the only one it may stop (another dockerd on the machine
# is not ours).
pid=$!
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    exit 0
  fi
  sleep 1
done
if [ "$driver" = overlay2 ]; then
  echo "start-dockerd: overlay2 did not come up, retrying with vfs" >&2
  kill "$pid" 2>/dev/null || true
  # Its pid file and socket are free only once it has exited.
  for _ in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  DOCKERD_STORAGE_DRIVER=vfs exec "$0"
fi
echo "start-dockerd: the daemon did not start; see $log" >&2
tail -20 "$log" >&2
exit 1
