#!/bin/sh
# Shared by the runner Dockerfiles: make sure git and the CA bundle are present, with
# whichever package manager the base image has. A base that already has them (as the
# tests' local base does) needs no network.
set -eu
need=""
command -v git >/dev/null 2>&1 || need="$need git"
[ -e /etc/ssl/certs/ca-certificates.crt ] || need="$need ca-certificates"
[ -z "$need" ] && exit 0
if command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need
  rm -rf /var/lib/apt/lists/*
elif command -v apk >/dev/null 2>&1; then
  apk add --no-cache $need
elif command -v microdnf >/dev/null 2>&1; then
  microdnf install -y $need && microdnf clean all
else
  echo "install-base: cannot install$need: no known package manager in this base image" >&2
  exit 1
fi
