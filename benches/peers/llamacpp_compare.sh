#!/usr/bin/env bash
# Side-by-side CPU benchmark against llama.cpp on the same GGUF files: entmin on the
# file's own blocks (--dtype auto) and llama.cpp's llama-bench, same thread count,
# alternating the two programs ROUNDS times (these VMs vary by ±30% between runs).
# Prints one Markdown row per run and the ratios of each round.
#
# Needs a release build (cargo build --release -p entmin) and llama-bench, built as
# ../shared/PEERS.md says (LLAMA_BENCH=path/to/llama-bench). Not part of the test suite.
#   benches/peers/llamacpp_compare.sh [MODEL...]      (default: both catalog models)
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS="${THREADS:-2}"
ROUNDS="${ROUNDS:-2}"
PROMPT="${PROMPT:-128}"
GEN="${GEN:-64}"
BATCHES="${BATCHES:-1}"
LLAMA_BENCH="${LLAMA_BENCH:-$HOME/.cache/entmin-peers/src/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin/llama-bench}"
# Extra llama-bench flags, e.g. "--repack 0" where its AMX path cannot run (see RESULTS).
LLAMA_ARGS="${LLAMA_ARGS:-}"
HOME_DIR="${ENTMIN_HOME:-$HOME/.cache/entmin}"
ENTMIN=./target/release/entmin
[ -x "$LLAMA_BENCH" ] || { echo "llama-bench not found at $LLAMA_BENCH (set LLAMA_BENCH)" >&2; exit 1; }
[ -x "$ENTMIN" ] || { echo "$ENTMIN missing: cargo build --release -p entmin" >&2; exit 1; }
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(smollm2-135m-instruct qwen2.5-coder-0.5b-instruct)
out="$(mktemp)"
peak_rss() { grep "Maximum resident" "$1" | awk '{printf "%.0f", $NF / 1024}'; }
for model in "${models[@]}"; do
    gguf="$HOME_DIR/models/$model/model.gguf"
    for round in $(seq "$ROUNDS"); do
        log="$(mktemp)" json="$(mktemp)"
        /usr/bin/time -v "$LLAMA_BENCH" -m "$gguf" -t "$THREADS" -p "$PROMPT" -n "$GEN" -r 3 $LLAMA_ARGS -o json \
            >"$json" 2>"$log"
        python3 -c '
import json, sys
rows = json.load(open(sys.argv[4]))
pp = next(r["avg_ts"] for r in rows if r["n_prompt"] > 0 and r["n_gen"] == 0)
tg = next(r["avg_ts"] for r in rows if r["n_gen"] > 0 and r["n_prompt"] == 0)
print(json.dumps({"impl": "llama.cpp", "model": sys.argv[1], "round": int(sys.argv[2]), "batch": 1,
                  "prefill_tok_s": pp, "decode_tok_s": tg, "peak_rss_mb": float(sys.argv[3]),
                  "build": rows[0].get("build_commit", "?"), "cpu": rows[0].get("cpu_info", "?")}))
' "$model" "$round" "$(peak_rss "$log")" "$json" >> "$out"
        for batch in $BATCHES; do
            "$ENTMIN" --threads "$THREADS" bench -m "$model" --device cpu --dtype auto --prompt-tokens "$PROMPT" \
                --new-tokens "$GEN" --batch "$batch" --json 2>/dev/null |
                python3 -c '
import json, sys
r = json.loads([l for l in sys.stdin if l.startswith("{")][-1])
r.update({"impl": "entmin", "model": sys.argv[1], "round": int(sys.argv[2]), "batch": int(sys.argv[3])})
print(json.dumps(r))' "$model" "$round" "$batch" >> "$out"
        done
        rm -f "$log" "$json"
    done
done
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| model | round | impl | batch | weights | prefill tok/s | decode tok/s | peak RSS MB |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    w = r.get("dtype", "file's types")
    print(f"| {r['model']} | {r['round']} | {r['impl']} | {r['batch']} | {w} | {r['prefill_tok_s']:.1f} | "
          f"{r['decode_tok_s']:.2f} | {r['peak_rss_mb']:.0f} |")
print()
print("| model | round | decode entmin / llama.cpp | prefill entmin / llama.cpp | RSS entmin / llama.cpp |")
print("|---|---|---|---|---|")
for r in rows:
    if r["impl"] != "llama.cpp":
        continue
    e = next((x for x in rows if x["impl"] == "entmin" and x["batch"] == 1 and x["model"] == r["model"]
              and x["round"] == r["round"]), None)
    if e:
        rss = e["peak_rss_mb"] / r["peak_rss_mb"] if r["peak_rss_mb"] else float("nan")
        print(f"| {r['model']} | {r['round']} | {e['decode_tok_s'] / r['decode_tok_s']:.2f}× | "
              f"{e['prefill_tok_s'] / r['prefill_tok_s']:.2f}× | {rss:.2f}× |")
print()
print("llama.cpp build:", rows[0].get("build", "?") if rows else "?", "| cpu:", rows[0].get("cpu", "?") if rows else "?")
PY
rm -f "$out"
