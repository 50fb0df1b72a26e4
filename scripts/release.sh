#!/usr/bin/env bash
# `make release`: static musl binaries of pace for x86_64 and aarch64 in dist/, with
# SHA256SUMS and a CycloneDX SBOM of the Rust dependencies.
#
# Cross-linking needs no C cross toolchain: cargo-zigbuild drives zig (both from PyPI) as
# the C compiler and linker for ring's C code and musl. The aarch64 binary is run under
# qemu-user (Debian's qemu-user-static) to prove it starts and carries the same version.
#
# Environment: PACE_REVISION (default: the short commit) goes into `pace --version`;
# DIST (default dist/); RELEASE_TARGETS (default both); SKIP_QEMU=1 skips the check.
set -euo pipefail
cd "$(dirname "$0")/.."

ZIGLANG_VERSION=0.15.2
ZIGBUILD_VERSION=0.24.1
CYCLONEDX_VERSION=0.5.9
DIST=${DIST:-dist}
TARGETS=${RELEASE_TARGETS:-"x86_64-unknown-linux-musl aarch64-unknown-linux-musl"}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
export PACE_REVISION=${PACE_REVISION:-$(git rev-parse --short=12 HEAD 2>/dev/null || true)}

say() { printf 'make release: %s\n' "$*"; }

ensure_tools() {
  local installed
  installed=$(rustup target list --installed)
  for target in $TARGETS; do
    grep -qx "$target" <<<"$installed" || rustup target add "$target"
  done
  if ! command -v cargo-zigbuild >/dev/null || ! python3 -m ziglang version >/dev/null 2>&1; then
    say "installing zig $ZIGLANG_VERSION and cargo-zigbuild $ZIGBUILD_VERSION (pip)"
    python3 -m pip install --quiet "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$ZIGBUILD_VERSION"
  fi
  if ! cargo cyclonedx --version >/dev/null 2>&1; then
    say "installing cargo-cyclonedx $CYCLONEDX_VERSION (cargo install)"
    cargo install --locked --quiet cargo-cyclonedx --version "$CYCLONEDX_VERSION"
  fi
}

build() {
  local args=()
  for target in $TARGETS; do args+=(--target "$target"); done
  say "building pace $VERSION ($PACE_REVISION) for $TARGETS"
  cargo zigbuild --release --locked "${args[@]}"
}

collect() {
  rm -rf "$DIST"
  mkdir -p "$DIST"
  for target in $TARGETS; do
    local bin="target/$target/release/pace" out="$DIST/pace-$VERSION-$target"
    # A release binary must not need a loader or a libc on the runner.
    if file "$bin" | grep -q 'dynamically linked'; then
      file "$bin"
      say "$bin is dynamically linked; a release binary must be static"
      exit 1
    fi
    cp "$bin" "$out"
  done
  # Both targets are Linux musl: one SBOM describes the dependencies of either binary.
  cargo cyclonedx --format json --spec-version 1.5 --target x86_64-unknown-linux-musl \
    --override-filename "pace-$VERSION.cdx" >/dev/null
  mv "pace-$VERSION.cdx.json" "$DIST/"
  (cd "$DIST" && sha256sum -- * >SHA256SUMS)
}

# Runs the aarch64 binary under qemu-user and compares its version with the x86_64 one.
check_aarch64() {
  local arm="$DIST/pace-$VERSION-aarch64-unknown-linux-musl"
  [ -f "$arm" ] && [ "${SKIP_QEMU:-0}" != 1 ] || return 0
  if ! command -v qemu-aarch64-static >/dev/null; then
    say "installing qemu-user-static (apt) to run the aarch64 binary"
    apt-get install -y -qq qemu-user-static >/dev/null
  fi
  local want got
  want="pace $VERSION${PACE_REVISION:+ ($PACE_REVISION)}"
  got=$(qemu-aarch64-static "$arm" --version)
  if [ "$got" != "$want" ]; then
    say "the aarch64 binary printed '$got' under qemu, expected '$want'"
    exit 1
  fi
  say "aarch64 binary runs under qemu-user: $got"
}

ensure_tools
build
collect
check_aarch64
say "wrote $DIST/:"
(cd "$DIST" && ls -l && cat SHA256SUMS)
