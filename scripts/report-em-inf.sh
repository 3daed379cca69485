#!/usr/bin/env bash
# The EM-INF report of README.md: plain vs em-inf vs adaptive-temp on the default
# model (Qwen2.5-Coder-0.5B-Instruct, bf16 weights), greedy-ish decoding at T = 0.1,
# 100 GSM8K and 100 MATH-500 problems, seed 0, up to 512 new tokens.
# Results accumulate in benches/eval/ and the run resumes where it stopped: the
# limit grows in steps of 20 so every method advances together.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p entmin
for dataset in gsm8k math500; do
    for limit in 20 40 60 80 100; do
        ./target/release/entmin eval --dataset "$dataset" --limit "$limit" \
            --methods plain,em-inf,adaptive-temp --max-new-tokens 512 --batch 16 --seed 0 \
            --out "benches/eval/$dataset-qwen2.5-coder-0.5b"
    done
done
