#!/usr/bin/env bash
# The code-evaluation report of README.md (issue 22), in parts that resume: every
# `entmin eval` below skips the problems its folder already holds, and the limit grows in
# steps so that the methods of a pair advance together.
#   humaneval   plain vs em-inf on all 164 HumanEval problems, Qwen2.5-Coder-0.5B- and
#               1.5B-Instruct, the paper's T = 0.1, seed 0, up to 512 new tokens;
#               self-consistency (4 votes, T = 0.7) on the 0.5B model.
#   sweep       plain vs em-inf at T ∈ {0.1, 0.6, 1.0} with the 0.5B model on HumanEval
#               (164) and the first 200 GSM8K problems, seed 5 for every pair.
# Usage: scripts/report-code-eval.sh [humaneval|sweep|all] (default all).
set -euo pipefail
cd "$(dirname "$0")/.."
part="${1:-all}"
cargo build --release --locked -p entmin
entmin=./target/release/entmin

grow() { # DATASET TOTAL STEP OUT ARGS...: run the eval to TOTAL problems, STEP at a time
    local dataset=$1 total=$2 step=$3 out=$4
    shift 4
    for ((limit = step; limit < total + step; limit += step)); do
        "$entmin" eval --dataset "$dataset" --limit $((limit < total ? limit : total)) --out "$out" "$@"
    done
}

if [ "$part" = humaneval ] || [ "$part" = all ]; then
    for model in qwen2.5-coder-0.5b-instruct qwen2.5-coder-1.5b-instruct; do
        grow humaneval 164 41 "benches/eval/humaneval-${model%-instruct}" -m "$model" \
            --methods plain,em-inf --max-new-tokens 512 --batch 16 --seed 0
    done
    grow humaneval 164 41 benches/eval/humaneval-qwen2.5-coder-0.5b-sc -m qwen2.5-coder-0.5b-instruct \
        --methods self-consistency --votes 4 --max-new-tokens 512 --batch 16 --seed 0
fi

if [ "$part" = sweep ] || [ "$part" = all ]; then
    for t in 0.1 0.6 1.0; do
        grow humaneval 164 41 "benches/eval/sweep-humaneval-t$t" -m qwen2.5-coder-0.5b-instruct \
            --methods plain,em-inf --temperature "$t" --max-new-tokens 512 --batch 16 --seed 5
        grow gsm8k 200 40 "benches/eval/sweep-gsm8k-t$t" -m qwen2.5-coder-0.5b-instruct \
            --methods plain,em-inf --temperature "$t" --max-new-tokens 512 --batch 16 --seed 5
    done
fi
