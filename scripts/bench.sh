#!/usr/bin/env bash
# `make bench`: speed figures of pace next to the obvious alternative, measured in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/start-dockerd.sh
cargo test --release --test all bench:: -- --ignored --nocapture --test-threads=1 2>&1 | grep -o 'BENCH .*' | sed 's/^BENCH /  /'
