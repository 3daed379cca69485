#!/usr/bin/env bash
# The EM-FT and EM-RL reports of README.md on the default model
# (Qwen2.5-Coder-0.5B-Instruct, trained in f32 on the CPU), then `entmin eval` of each
# fine-tuned model with the EM-INF report's plain settings (T = 0.1, seed 0, 512 new
# tokens, bf16 weights) so its rows compare with that report's `plain` rows.
# Training runs resume (--resume) and evals resume from their JSONL files.
# Needs ~20 GB of memory and ~8 GB of disk per run folder (RUNS, default /tmp/entmin-runs).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p entmin
E=./target/release/entmin
RUNS=${RUNS:-/tmp/entmin-runs}
resume() { [ -f "$1/latest.json" ] && echo --resume || true; }
$E ft -m qwen2.5-coder-0.5b-instruct --prompts gsm8k-train --batch 4 --samples-per-prompt 1 \
    --max-new-tokens 256 --rollout-temperature 1.0 --steps 12 --lr 1e-5 --checkpoint-every 12 \
    --out "$RUNS/emft" $(resume "$RUNS/emft")
# The same run at a 10x smaller learning rate (session 5): no collapse.
$E ft -m qwen2.5-coder-0.5b-instruct --prompts gsm8k-train --batch 4 --samples-per-prompt 1 \
    --max-new-tokens 256 --rollout-temperature 1.0 --steps 12 --lr 1e-6 --checkpoint-every 12 \
    --out "$RUNS/emft-lr1e-6" $(resume "$RUNS/emft-lr1e-6")
$E rl -m qwen2.5-coder-0.5b-instruct --prompts gsm8k-train --batch 2 --rollouts-per-prompt 4 \
    --max-new-tokens 256 --steps 4 --lr 1e-5 --checkpoint-every 4 --out "$RUNS/emrl" $(resume "$RUNS/emrl")
ev() {
    $E eval -m "$1" --dtype bf16 --dataset "$2" --limit "$3" --methods plain --max-new-tokens 512 \
        --batch 16 --seed 0 --out "benches/eval/$2-qwen2.5-coder-0.5b-$4"
}
ev "$RUNS/emft/step-000012" gsm8k 16 emft
ev "$RUNS/emft-lr1e-6/step-000012" gsm8k 40 emft-lr1e-6
ev "$RUNS/emft-lr1e-6/step-000012" math500 30 emft-lr1e-6
ev "$RUNS/emrl/step-000004" gsm8k 40 emrl
ev "$RUNS/emrl/step-000004" math500 30 emrl
for m in "$RUNS/emft/metrics.jsonl" "$RUNS/emft-lr1e-6/metrics.jsonl" "$RUNS/emrl/metrics.jsonl"; do $E plot "$m"; done
