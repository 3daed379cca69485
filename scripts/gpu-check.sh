#!/usr/bin/env bash
# Everything a GPU machine should do for the CUDA backend, in one short run (a few
# minutes): the machine's GPU, `entmin doctor --compile-kernels`, the CUDA test suite
# with absence of a GPU a failure, the CUDA kernel benchmarks, decode speed at batch 1,
# and the PyTorch eager peer; a table of the figures is printed last. Logs go to
# $OUT (the device tool's output folder) or target/gpu-check.
#
# Models must already be in $ENTMIN_HOME (a GPU machine may have no network): the
# SmolLM2 parity test and the decode benchmark are skipped, with a message, without them.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-target/gpu-check}"
mkdir -p "$out"
ldconfig -p | grep -q 'libnvrtc\.so\.12' || source scripts/cuda-tools.sh
export ENTMIN_REQUIRE_CUDA=1 ENTMIN_REQUIRE_NVRTC=1
status=0

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | tee "$out/gpu.txt"
cargo build --release --locked -p entmin || exit 1
./target/release/entmin doctor --compile-kernels 2>&1 | tee "$out/doctor.txt"

cargo test --release --locked -p entmin-tests --test cuda_ops --test cuda_backward --test cuda_model --test cuda_kernels_compile \
    -- --nocapture 2>&1 | tee "$out/tests.log" || status=1

cargo bench --locked -p entmin-engine --bench kernels -- 'cuda/' --warm-up-time 1 --measurement-time 2 \
    2>&1 | tee "$out/bench.log" || status=1

home="${ENTMIN_HOME:-$HOME/.cache/entmin}"
for model in qwen2.5-coder-1.5b-instruct qwen2.5-coder-0.5b-instruct; do
    if [ -e "$home/models/$model/model.gguf" ]; then
        for method in plain em-inf; do
            ./target/release/entmin bench --device cuda --model "$model" --method "$method" --json \
                2>&1 | tee -a "$out/decode.jsonl" || status=1
        done
    else
        echo "skipped decode benchmark: $home/models/$model/model.gguf missing" | tee -a "$out/decode.jsonl"
    fi
done

python3 benches/peers/torch_entropy_gpu.py 2>&1 | tee "$out/torch_peer.json" || echo "PyTorch peer failed"

echo
echo "== summary ($(head -2 "$out/gpu.txt" | tail -1)) =="
grep -E "^test result|FAILED|panicked" "$out/tests.log"
# criterion prints each benchmark's name, then its time and throughput lines.
grep -E "^cuda/|time:|thrpt:" "$out/bench.log" | cut -c1-110
grep -h '"decode_tok_s"' "$out/decode.jsonl" | cut -c1-200
cut -c1-400 "$out/torch_peer.json"
exit $status
