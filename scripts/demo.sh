#!/usr/bin/env bash
# `make demo`: copies examples/greeter into a temporary git repository and runs day 1
# with the replay provider (no API key, no network); GATE runs the tests in a container.
set -euo pipefail
pace=$(realpath "${1:?usage: demo.sh PATH_TO_PACE}")
work=$(mktemp -d -t pace-demo-XXXXXX)
cp -r "$(dirname "$0")/../examples/greeter/." "$work/"
cd "$work"
git init -q -b sprint/demo
git -c user.name=demo -c user.email=demo@example.invalid add -A
git -c user.name=demo -c user.email=demo@example.invalid commit -q -m "greeter example"
# pace writes its dotenv report `pace-env.env` at the root on every run (GitLab exports it);
# keep it out of `git status` as `pace init` does with `.gitignore` in a real repository.
echo "/pace-env.env" >>.git/info/exclude
echo "pace demo in $work"
status=0
"$pace" --day 1 || status=$?
echo
echo "artifacts: $work/.pace/day-1/ (summary.md, run.json, gate/output.log, merge-request.md)"
echo "progress:  $work/PROGRESS.md"
exit $status
