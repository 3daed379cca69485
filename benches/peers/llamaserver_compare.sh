#!/usr/bin/env bash
# Side-by-side server benchmark: `entmin serve` and llama.cpp's `llama-server` on the
# same GGUF, same threads, same request mix (scripts/serve-load.py: streamed greedy chat
# requests of GSM8K questions, GEN new tokens), at each concurrency in CLIENTS,
# alternating the two servers ROUNDS times. entmin runs plain decoding and EM-INF (its
# default) so the EM-INF cost under load shows too. Prints one JSON line per run.
#
# Needs llama-server built as ../shared/PEERS.md says (LLAMA_SERVER=path) and an entmin
# build (ENTMIN=path, default the release build). Not part of the test suite.
#   benches/peers/llamaserver_compare.sh [MODEL]   (default: qwen2.5-coder-0.5b-instruct)
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS="${THREADS:-2}"
ROUNDS="${ROUNDS:-2}"
CLIENTS="${CLIENTS:-1 4 16}"
REQUESTS="${REQUESTS:-1}"
GEN="${GEN:-128}"
PORT="${PORT:-18123}"
LLAMA_SERVER="${LLAMA_SERVER:-$HOME/.cache/entmin-peers/src/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin/llama-server}"
ENTMIN="${ENTMIN:-./target/release/entmin}"
HOME_DIR="${ENTMIN_HOME:-$HOME/.cache/entmin}"
model="${1:-qwen2.5-coder-0.5b-instruct}"
gguf="$HOME_DIR/models/$model/model.gguf"
[ -x "$LLAMA_SERVER" ] || { echo "llama-server not found at $LLAMA_SERVER (set LLAMA_SERVER)" >&2; exit 1; }
[ -x "$ENTMIN" ] || { echo "$ENTMIN missing: cargo build --release -p entmin" >&2; exit 1; }
[ -f "$gguf" ] || { echo "$gguf missing: entmin pull $model" >&2; exit 1; }

wait_ready() {
    for _ in $(seq 600); do
        curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "server on port $PORT never became ready" >&2
    return 1
}

run() { # impl clients round [method]
    local impl=$1 clients=$2 round=$3 method=${4:-} pid log
    log="$(mktemp)"
    if [ "$impl" = llama-server ]; then
        # One slot per client, each with the context a request needs.
        "$LLAMA_SERVER" -m "$gguf" -t "$THREADS" -np "$clients" -c $((clients * 1024)) --port "$PORT" \
            --host 127.0.0.1 >"$log" 2>&1 &
    else
        "$ENTMIN" --threads "$THREADS" serve -m "$gguf" --device cpu --max-batch "$((clients > 8 ? clients : 8))" \
            --port "$PORT" >"$log" 2>&1 &
    fi
    pid=$!
    wait_ready
    local args=(--url "http://127.0.0.1:$PORT" --clients "$clients" --requests "$REQUESTS" --max-tokens "$GEN"
        --no-check --pid "$pid" --rss-slack-mb 100000)
    [ -n "$method" ] && args+=(--method "$method")
    local report
    report="$(python3 scripts/serve-load.py "${args[@]}")" || true
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r.update(impl=sys.argv[2], method=sys.argv[3] or None, round=int(sys.argv[4]), model=sys.argv[5]); print(json.dumps(r))' \
        "$report" "$impl" "$method" "$round" "$model"
}

for round in $(seq "$ROUNDS"); do
    for clients in $CLIENTS; do
        run llama-server "$clients" "$round"
        run entmin "$clients" "$round" plain
        run entmin "$clients" "$round" em-inf
    done
done
