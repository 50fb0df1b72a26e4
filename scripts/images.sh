#!/usr/bin/env bash
# The runner images for several architectures without buildx (images/README.md, "How the
# images are built"): one classic `docker build --platform` per architecture, RUN steps of a
# foreign architecture through qemu-user (scripts/qemu-binfmt.sh), and the architectures
# joined in the registry by `docker manifest create/push`, which needs them pushed first.
#
#   scripts/images.sh build [LANG...]   pace/runner-LANG:VERSION-ARCH per platform, and
#                                       VERSION, X.Y and latest for the host's architecture
#   scripts/images.sh push REGISTRY     push them, one manifest list per tag (VERSION, X.Y,
#                                       latest), record the digests, pull back by digest
#
# Environment (the Makefile passes its variables of the same name):
#   PLATFORMS         default "linux/amd64 linux/arm64"
#   BASE_IMAGE        the base of every image (default: each Dockerfile's pinned official image)
#   BASE_IMAGE_ARM64, BASE_IMAGE_AMD64   the base for one architecture (a local base is one
#                     image per architecture: scripts/build-local-base.sh TAG arm64)
#   IMAGE_PREFIX      local repository prefix (default pace): PREFIX/runner-LANG
#   IMAGE_BUILD_ARGS  more `docker build` arguments (e.g. --build-arg WITH_BUILD_TOOLS=0)
#   IMAGES_RECORD     where `push` writes the digests (default dist/images.txt)
#   MANIFEST_TOOL     what joins the architectures: `docker` (`docker manifest`) or `podman`
#                     (`podman manifest`); default docker, podman for a registry on a loopback
#                     address (see join_architectures)
#   MANIFEST_FLAGS    extra flags for that tool (`--insecure` for docker, `--tls-verify=false`
#                     for podman, with a plain-HTTP registry)
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
MINOR=$(echo "$VERSION" | cut -d. -f1,2)
REVISION=${PACE_REVISION:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
SOURCE=$(git remote get-url origin 2>/dev/null || echo unknown)
PLATFORMS=${PLATFORMS:-"linux/amd64 linux/arm64"}
PREFIX=${IMAGE_PREFIX:-pace}
RECORD=${IMAGES_RECORD:-dist/images.txt}
ALL_LANGS="go node temurin dotnet"
HOST_ARCH=$(docker version --format '{{.Server.Arch}}' 2>/dev/null || echo amd64)
export DOCKER_BUILDKIT=0

say() { printf 'images: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# linux/arm64 -> arm64
arch_of() { echo "${1#*/}" | cut -d/ -f1; }

triple_of() {
  case "$1" in
    amd64) echo x86_64-unknown-linux-musl ;;
    arm64) echo aarch64-unknown-linux-musl ;;
    *) die "no pace build for architecture '$1' (PLATFORMS may list linux/amd64 and linux/arm64)" ;;
  esac
}

# The static binary for an architecture, in target/<triple>/release/pace. x86_64 comes from
# `make static` (the Makefile's dependency); any other from cargo-zigbuild as in `make release`.
ensure_binary() {
  local arch=$1 triple bin
  triple=$(triple_of "$arch")
  bin=target/$triple/release/pace
  if [ "$arch" != amd64 ]; then
    command -v cargo-zigbuild >/dev/null \
      || die "$bin needs cargo-zigbuild: run \`make release\` once (it installs zig and cargo-zigbuild)"
    say "building $bin (cargo zigbuild)"
    # No PACE_REVISION here unless the caller set one: build.rs then reads the same commit,
    # and an unchanged environment keeps cargo from rebuilding pace.
    cargo zigbuild --release --locked --quiet --target "$triple" >&2
  fi
  [ -x "$bin" ] || die "$bin is missing: run \`make static\` (x86_64) or \`make release\`"
  echo "$bin"
}

# The base for one architecture: BASE_IMAGE_<ARCH>, else BASE_IMAGE, else the Dockerfile's.
base_of() {
  local lang=$1 arch=$2 var
  var=BASE_IMAGE_$(echo "$arch" | tr '[:lower:]' '[:upper:]')
  if [ -n "${!var:-}" ]; then
    echo "${!var}"
  elif [ -n "${BASE_IMAGE:-}" ]; then
    echo "$BASE_IMAGE"
  else
    sed -n 's/^ARG BASE_IMAGE=//p' "images/runner-$lang/Dockerfile" | head -1
  fi
}

# Makes the base of this architecture present (pulling it for the platform when the daemon
# has no image of that architecture under the name) and prints its digest: the registry
# digest it was pulled by (RepoDigests: for a multi-arch base, the digest of its index) or,
# for a base that never came from a registry (docker import), its image ID.
resolve_base() {
  local base=$1 arch=$2 have digest
  have=$(docker image inspect --format '{{.Architecture}}' "$base" 2>/dev/null || true)
  if [ "$have" != "$arch" ]; then
    [ -z "$have" ] || say "$base is $have here; pulling its linux/$arch image"
    docker pull -q --platform "linux/$arch" "$base" >/dev/null \
      || die "cannot pull $base for linux/$arch: name a base of that architecture (BASE_IMAGE_$(echo "$arch" | tr '[:lower:]' '[:upper:]')=...; a local one: scripts/build-local-base.sh TAG $arch)"
  fi
  digest=$(docker image inspect --format '{{range .RepoDigests}}{{.}} {{end}}' "$base" | tr ' ' '\n' | sed -n 's/^[^@]*@//p' | head -1)
  [ -n "$digest" ] || digest=$(docker image inspect --format '{{.Id}}' "$base")
  echo "$digest"
}

build() {
  local langs=${*:-$ALL_LANGS} platform arch bin base digest lang image
  for platform in $PLATFORMS; do
    arch=$(arch_of "$platform")
    [ "$arch" = "$HOST_ARCH" ] || scripts/qemu-binfmt.sh "$arch"
    bin=$(ensure_binary "$arch")
    for lang in $langs; do
      [ -f "images/runner-$lang/Dockerfile" ] || die "no images/runner-$lang/Dockerfile"
      base=$(base_of "$lang" "$arch")
      digest=$(resolve_base "$base" "$arch")
      image=$PREFIX/runner-$lang:$VERSION-$arch
      say "building $image on $base ($digest)"
      # shellcheck disable=SC2086 # IMAGE_BUILD_ARGS is a list of arguments
      docker build -q --platform "$platform" -f "images/runner-$lang/Dockerfile" \
        --build-arg "BASE_IMAGE=$base" --build-arg "BASE_DIGEST=$digest" \
        --build-arg "PACE_BINARY=$bin" --build-arg "PACE_VERSION=$VERSION" \
        --build-arg "PACE_REVISION=$REVISION" --build-arg "PACE_SOURCE=$SOURCE" \
        ${IMAGE_BUILD_ARGS:-} -t "$image" . >/dev/null
      local got
      got=$(docker image inspect --format '{{.Architecture}}' "$image")
      [ "$got" = "$arch" ] || die "$image was built for $got, not $arch (the daemon used a base of the wrong architecture)"
      if [ "$arch" = "$HOST_ARCH" ]; then
        # The daemon holds one image per tag: the plain tags name the host's architecture
        # locally; in a registry they name the manifest list of all of them (`push`).
        for tag in "$VERSION" "$MINOR" latest; do docker tag "$image" "$PREFIX/runner-$lang:$tag"; done
      fi
    done
  done
  say "built $(echo "$langs" | wc -w) image(s) for $PLATFORMS"
}

# The digest the registry gave to a pushed tag (the daemon records it in RepoDigests).
pushed_digest() {
  local local_image=$1 repo=$2
  docker image inspect --format '{{range .RepoDigests}}{{.}} {{end}}' "$local_image" \
    | tr ' ' '\n' | sed -n "s|^$repo@||p" | head -1
}

push() {
  local registry=${1:-}
  [ -n "$registry" ] || die "push needs the registry and path, e.g. \`make images-push REGISTRY=registry.example.com/team/pace\`"
  local lang platform arch repo per_arch index_digest tag
  local host=${registry%%/*}
  case "$host" in
    127.* | localhost | localhost:* | \[::1\]*) MANIFEST_TOOL=${MANIFEST_TOOL:-podman} ;;
  esac
  MANIFEST_TOOL=${MANIFEST_TOOL:-docker}
  command -v "$MANIFEST_TOOL" >/dev/null || die "MANIFEST_TOOL=$MANIFEST_TOOL is not installed (docker or podman)"
  mkdir -p "$(dirname "$RECORD")"
  : >"$RECORD.tmp"
  for lang in $ALL_LANGS; do
    repo=$registry/runner-$lang
    per_arch=()
    for platform in $PLATFORMS; do
      arch=$(arch_of "$platform")
      local local_image=$PREFIX/runner-$lang:$VERSION-$arch
      docker image inspect "$local_image" >/dev/null 2>&1 \
        || die "$local_image is not built: run \`make images PLATFORMS=\"$PLATFORMS\"\` first"
      docker tag "$local_image" "$repo:$VERSION-$arch"
      docker push -q "$repo:$VERSION-$arch" >/dev/null \
        || die "pushing $repo:$VERSION-$arch failed: log in first (docker login ${registry%%/*})"
      local digest
      digest=$(pushed_digest "$repo:$VERSION-$arch" "$repo")
      [ -n "$digest" ] || die "the daemon recorded no digest for $repo:$VERSION-$arch after the push"
      echo "$repo:$VERSION-$arch@$digest $platform" >>"$RECORD.tmp"
      per_arch+=("$repo@$digest")
    done
    # One manifest list for all tags: the same digest under VERSION, X.Y and latest.
    for tag in "$VERSION" "$MINOR" latest; do
      index_digest=$(join_architectures "$repo:$tag" "${per_arch[@]}")
      case "$index_digest" in sha256:*) ;; *) die "no digest for the manifest list $repo:$tag: '$index_digest'" ;; esac
      echo "$repo:$tag@$index_digest $(echo "$PLATFORMS" | tr ' ' ',')" >>"$RECORD.tmp"
    done
  done
  mv "$RECORD.tmp" "$RECORD"
  verify_pull
  say "pushed; digests in $RECORD"
}

# Pushes a manifest list TARGET (repo:tag) of the per-architecture REFS (repo@digest, already
# in the registry) and prints its digest. The docker CLI (28) pushes a list to a registry on
# a loopback address over plain HTTP even when it serves TLS (the CLI counts 127.0.0.0/8 as
# insecure and the put fails with "connection reset"), so there podman does it: its
# `manifest` commands only read and write the registry, in a throw-away store, with the
# login from the Docker config and the CA from /etc/docker/certs.d like the daemon.
join_architectures() {
  local target=$1 ref digest
  shift
  local -a flags
  read -ra flags <<<"${MANIFEST_FLAGS:-}"
  if [ "$MANIFEST_TOOL" = docker ]; then
    docker manifest rm "$target" >/dev/null 2>&1 || true
    docker manifest create "${flags[@]}" "$target" "$@" >/dev/null || return 1
    docker manifest push "${flags[@]}" --purge "$target" | tail -1
    return
  fi
  local store config=${DOCKER_CONFIG:-$HOME/.docker}/config.json
  store=$(mktemp -d /tmp/pace-manifest-XXXXXX)
  local -a podman=(podman --root "$store/root" --runroot "$store/run" --storage-driver vfs)
  local -a auth=()
  [ -f "$config" ] && auth=(--authfile "$config")
  "${podman[@]}" manifest create pace-list >/dev/null || { rm -rf "$store"; return 1; }
  for ref in "$@"; do
    "${podman[@]}" manifest add "${auth[@]}" "${flags[@]}" pace-list "docker://$ref" >/dev/null \
      || { rm -rf "$store"; return 1; }
  done
  "${podman[@]}" manifest push "${auth[@]}" "${flags[@]}" --all --format v2s2 --digestfile "$store/digest" \
    pace-list "docker://$target" >/dev/null 2>"$store/log" || { cat "$store/log" >&2; rm -rf "$store"; return 1; }
  digest=$(cat "$store/digest")
  rm -rf "$store"
  echo "$digest"
}

# Pulls every recorded reference back by its digest, each architecture for its platform,
# and checks the daemon got the architecture the record names.
verify_pull() {
  local ref platform name digest got
  while read -r ref platform; do
    name=${ref%@*}
    digest=${ref##*@}
    case "$platform" in
      *,*) platform=linux/$HOST_ARCH ;; # an index: the daemon picks the host's entry
    esac
    docker pull -q --platform "$platform" "${name%:*}@$digest" >/dev/null \
      || die "pulling ${name%:*}@$digest back failed"
    got=$(docker image inspect --format '{{.Os}}/{{.Architecture}}' "${name%:*}@$digest")
    [ "$got" = "$platform" ] || die "${name%:*}@$digest pulled as $got, expected $platform"
  done <"$RECORD"
  say "pulled back $(wc -l <"$RECORD") reference(s) by digest"
}

case "${1:-}" in
  build) shift; build "$@" ;;
  push) shift; push "$@" ;;
  *) die "usage: scripts/images.sh build [LANG...] | push REGISTRY" ;;
esac
