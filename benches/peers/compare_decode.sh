#!/usr/bin/env bash
# Side-by-side CPU decode/prefill benchmark: entmin (f32 and bf16 weights) and
# Hugging Face transformers (PyTorch eager, f32) on the same GGUF files, same
# thread count, one after the other in one run. Prints a Markdown table.
# Needs the peer venv (benches/peers/README.md) and a release build of entmin.
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS="${THREADS:-2}"
PEER_PY="${PEER_PY:-$HOME/.cache/entmin/peer-venv/bin/python}"
HOME_DIR="${ENTMIN_HOME:-$HOME/.cache/entmin}"
out="$(mktemp)"
for model in smollm2-135m-instruct qwen2.5-coder-0.5b-instruct; do
    for dtype in f32 bf16; do
        ./target/release/entmin --threads "$THREADS" bench -m "$model" --dtype "$dtype" --json >> "$out"
    done
    OMP_WAIT_POLICY=PASSIVE "$PEER_PY" benches/peers/hf_decode.py --model-gguf "$HOME_DIR/models/$model/model.gguf" \
        --threads "$THREADS" | grep "^{" | tail -1 | sed "s|\"model\": \"[^\"]*\"|\"model\": \"$model\"|" >> "$out"
done
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
print("| model | impl | weights | threads | prefill tok/s | decode tok/s | peak RSS MB |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    w = r.get("dtype", "f32")
    print(f"| {r['model']} | {r['impl']} | {w} | {r['threads']} | {r['prefill_tok_s']:.1f} | {r['decode_tok_s']:.2f} | {r['peak_rss_mb']:.0f} |")
PY
