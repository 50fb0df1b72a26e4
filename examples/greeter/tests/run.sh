#!/bin/sh
# Runs every tests/test_*.sh and writes a JUnit report to reports/junit.xml.
# Exit status: 0 when every test passed.
mkdir -p reports
total=0
failed=0
cases=""
for t in tests/test_*.sh; do
  [ -e "$t" ] || continue
  total=$((total + 1))
  name=$(basename "$t" .sh)
  if out=$(sh "$t" 2>&1); then
    echo "PASS $name"
    cases="$cases<testcase classname=\"greeter\" name=\"$name\"/>"
  else
    failed=$((failed + 1))
    echo "FAIL $name"
    echo "$out" | sed 's/^/    /'
    cases="$cases<testcase classname=\"greeter\" name=\"$name\"><failure message=\"failed\"/></testcase>"
  fi
done
printf '<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="greeter" tests="%s" failures="%s" errors="0" skipped="0">%s</testsuite>\n' \
  "$total" "$failed" "$cases" > reports/junit.xml
echo "$total tests, $failed failed"
[ "$failed" -eq 0 ]
