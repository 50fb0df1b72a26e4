#!/usr/bin/env bash
# `make reliability`: the fault, abuse and fuzz suite of issue 6, in release mode, with a
# summary of its `RELIABILITY ...` lines. Runs every test whose name contains `reliability`
# (tests/reliability_*.rs), the property tests with PROPTEST_CASES cases (default 5000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/start-dockerd.sh
export PROPTEST_CASES=${PROPTEST_CASES:-5000}
log=${RELIABILITY_LOG:-target/reliability.log}
mkdir -p "$(dirname "$log")"
started=$(date +%s)
status=0
cargo test --release --test all reliability -- --nocapture --test-threads=1 >"$log" 2>&1 || status=$?
elapsed=$(( $(date +%s) - started ))
echo "== make reliability: PROPTEST_CASES=$PROPTEST_CASES, ${elapsed}s, full log in $log"
grep -o 'RELIABILITY .*' "$log" | sed 's/^RELIABILITY /  /' || true
grep -E '^test result:|^failures:|^    [a-z_:]+$' "$log" | sed 's/^/  /' || true
if [ "$status" -ne 0 ]; then
  echo "== make reliability: FAILED (exit $status); see $log"
fi
exit "$status"
