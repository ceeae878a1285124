#!/usr/bin/env bash
# Do two versions of advimb build the same tables and report from the same run folder?
# Rebuilds RUN_DIR's tables and report (`advimb tables`, `advimb report`) with the code at git
# revision BEFORE (a temporary worktree on PYTHONPATH) and with the working tree's, each in a
# copy at the same path, and compares them byte for byte (the build time recorded in
# report/results.json and report/index.html blanked). Needs advimb installed (pip install -e .).
# Usage: bash benchmarks/same_outputs.sh BEFORE RUN_DIR
# Example: bash benchmarks/same_outputs.sh 66cdc1c docs/reproduction/paper-h200
set -euo pipefail
before=$1; src=$(cd "$2" && pwd); root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d); trap 'git -C "$root" worktree remove --force "$tmp/code" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
git -C "$root" worktree add -q --detach "$tmp/code" "$before"
for side in before after; do
    code=$([ $side = before ] && echo "$tmp/code/src" || echo "$root/src")
    rm -rf "$tmp/run"; cp -r "$src" "$tmp/run"
    PYTHONPATH="$code" python -m advimb tables "$tmp/run" > "$tmp/$side.tables.txt" 2>&1
    PYTHONPATH="$code" python -m advimb report "$tmp/run" > "$tmp/$side.report.txt" 2>&1
    sed -i 's/"generated": "[^"]*"/"generated": ""/' "$tmp/run/report/results.json"
    sed -i 's/[0-9-]*T[0-9:]*+0000//g' "$tmp/run/report/index.html"
    mv "$tmp/run" "$tmp/$side"
done
diff -r "$tmp/before/tables" "$tmp/after/tables" && echo "tables/: identical"
diff -r "$tmp/before/report" "$tmp/after/report" > /dev/null && echo "report/: identical (build time blanked)"
diff "$tmp/before.report.txt" "$tmp/after.report.txt" && echo "terminal output: identical"
