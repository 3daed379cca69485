#!/usr/bin/env bash
# The device check: everything a GPU machine should run for entmin, from a pack made by
# scripts/gpu-pack.sh (no cargo, no network), in one call of about 8 minutes:
#
#   machine   nvidia-smi, CPU
#   doctor    `entmin doctor --compile-kernels`: the image's NVRTC and ptxas on every kernel
#   cuda      the GPU test binary's CUDA tests, ignored ones included (they need a GPU)
#   wgpu      its wgpu tests on the NVIDIA Vulkan driver (loader from the pack if needed)
#   benches   the CUDA (and hardware wgpu) kernel benchmarks, short measurement times
#   decode    `entmin bench --synthetic` on CUDA (Qwen2.5-Coder 0.5B and 1.5B shapes on
#             their GGUF block formats, plain and em-inf, batch 1 and 16; the 0.5B once
#             more in bf16) and the same 0.5B on this machine's CPU
#   torch     the PyTorch peer (benches/peers/torch_entropy_gpu.py) with the image's torch
#
# and a table of the figures last. Each stage has its own time limit inside a total
# budget, so a hang cannot eat the lease. Logs (8 files, the device tool's limit) go to
# $OUT, else ./gpu-check-results.
#
#   gpu-check.sh [--dry-run] [--budget SECONDS]
#
# --dry-run is for machines without a GPU (the test suite runs it): every stage runs and
# must find its files and start; failures are allowed only where the output says a GPU
# (or PyTorch with CUDA) is missing, and the run fails on anything else.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
if [ -f "$here/MANIFEST" ]; then pack=$here; else pack=$(cd "$here/.." && pwd)/target/gpu-pack; fi
NO_GPU='no NVIDIA driver|needs an NVIDIA GPU|nvidia-smi: (command )?not found|NVIDIA-SMI has failed|needs torch with CUDA|no cuda benchmarks'

# ---- one stage, run by the main script as `gpu-check.sh --stage NAME` under timeout ----

# run_one LABEL CMD...: runs CMD and prints one RESULT line (ok / gpu-missing / fail).
run_one() {
    local label=$1 tmp rc
    shift
    tmp=$(mktemp)
    "$@" >"$tmp" 2>&1
    rc=$?
    cat "$tmp"
    if [ $rc -eq 0 ]; then
        echo "RESULT ok $label"
    elif grep -qE "$NO_GPU" "$tmp"; then
        echo "RESULT gpu-missing $label"
    else
        echo "RESULT fail $label (exit $rc)"
    fi
    rm -f "$tmp"
}

# run_tests LABEL ARGS...: the GPU test binary; a failed test counts as gpu-missing when
# its own output says so, as fail otherwise.
run_tests() {
    local label=$1 tmp rc
    shift
    tmp=$(mktemp)
    "$BIN/gpu-tests" "$@" >"$tmp" 2>&1
    rc=$?
    cat "$tmp"
    if ! grep -q '^test result:' "$tmp"; then
        echo "RESULT fail $label (the test binary did not finish, exit $rc)"
    elif [ $rc -eq 0 ]; then
        echo "RESULT ok $label"
    else
        # Sections "---- NAME stdout ----" hold each failed test's output.
        awk -v label="$label" -v pat="needs an NVIDIA GPU" '
            /^---- .* stdout ----$/ { if (name != "") done(); name = $2; gpu = 0; next }
            /^failures:$/ && name != "" { done(); name = "" }
            name != "" && index($0, pat) { gpu = 1 }
            function done() { if (gpu) g++; else { f++; print "not a missing GPU: " name } }
            END { if (name != "") done(); if (f) print "RESULT fail " label " (" f " failed, " g " for want of a GPU)"; else print "RESULT gpu-missing " label " (" g " tests need a GPU)" }
        ' "$tmp"
    fi
    rm -f "$tmp"
}

stage_machine() {
    run_one nvidia-smi nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-) x $(nproc)"
    run_one manifest cat "$PACK/MANIFEST"
}

stage_doctor() {
    run_one doctor "$BIN/entmin" doctor
    "$BIN/entmin" doctor --compile-kernels --json >"$RESULTS/doctor.json" 2>&1
    local rc=$?
    if [ $rc -ne 0 ]; then
        echo "RESULT fail doctor --compile-kernels (exit $rc)"
    elif ! grep -q '"registers"' "$RESULTS/doctor.json"; then
        grep -A3 '"kernels"' "$RESULTS/doctor.json"
        echo "RESULT fail doctor --compile-kernels (no kernel compiled)"
    else
        echo "RESULT ok doctor --compile-kernels ($(grep -c '"registers"' "$RESULTS/doctor.json") kernel builds)"
    fi
}

stage_cuda() {
    local skip=()
    if [ ! -e "$ENTMIN_HOME/models/smollm2-135m-instruct/model.gguf" ]; then
        echo "SmolLM2 is not cached here: its CUDA parity test is skipped (the synthetic-model test covers real shapes)"
        skip=(--skip smollm2)
    fi
    ENTMIN_REQUIRE_NVRTC=1 ENTMIN_REQUIRE_ASSETS=1 run_tests cuda --include-ignored cuda_ "${skip[@]}"
}

stage_wgpu() {
    local args=(wgpu_)
    if [ "$DRY" = 1 ]; then
        # The whole wgpu suite runs in CI (cargo test) already: here only that it starts.
        args=(wgpu_ops:: --skip smollm2)
    elif [ ! -e "$ENTMIN_HOME/models/smollm2-135m-instruct/model.gguf" ]; then
        args+=(--skip smollm2)
    fi
    echo "adapter: $("$BIN/entmin" doctor --json 2>/dev/null | grep -m1 -A1 '"adapters"' | tail -1)"
    ENTMIN_REQUIRE_WGPU=1 run_tests wgpu "${args[@]}"
}

stage_benches() {
    local filter='^cuda/' tmp
    [ "$HW_WGPU" = 1 ] && filter='^(cuda|wgpu)/'
    [ "$DRY" = 1 ] && filter='^cuda/memory/'
    tmp=$(mktemp)
    CRITERION_HOME="$WORK/criterion" "$BIN/kernel-benches" --bench "$filter" --noplot \
        --warm-up-time 0.5 --measurement-time 1 --sample-size 10 >"$tmp" 2>&1
    local rc=$?
    cat "$tmp"
    if [ $rc -ne 0 ]; then
        echo "RESULT fail kernel benches (exit $rc)"
    elif grep -q '^cuda/' "$tmp"; then
        echo "RESULT ok kernel benches ($(grep -c 'time:' "$tmp") measured)"
    elif grep -qE "$NO_GPU" "$tmp"; then
        echo "RESULT gpu-missing kernel benches"
    else
        echo "RESULT fail kernel benches (no cuda/ benchmark ran)"
    fi
    rm -f "$tmp"
}

stage_decode() {
    local gpu_models=(qwen2.5-coder-0.5b-instruct qwen2.5-coder-1.5b-instruct) sizes=(--prompt-tokens 128 --new-tokens 64)
    local cpu_model=qwen2.5-coder-0.5b-instruct cpu_sizes=(--prompt-tokens 128 --new-tokens 32)
    if [ "$DRY" = 1 ]; then
        gpu_models=(smollm2-135m-instruct) sizes=(--prompt-tokens 16 --new-tokens 4)
        cpu_model=smollm2-135m-instruct cpu_sizes=(--prompt-tokens 16 --new-tokens 4)
    fi
    for model in "${gpu_models[@]}"; do
        for method in plain em-inf; do
            for batch in 1 16; do
                run_one "cuda $model $method batch $batch" "$BIN/entmin" bench --json --device cuda \
                    --synthetic "$model" --method "$method" --batch "$batch" "${sizes[@]}"
                [ "$DRY" = 1 ] && break 2 # one CUDA attempt shows the stage starts
            done
        done
    done
    if [ "$DRY" = 0 ]; then
        # The 0.5B above ran on its GGUF blocks (--dtype auto); the same model in bf16.
        run_one "cuda $cpu_model plain batch 1 bf16" "$BIN/entmin" bench --json --device cuda \
            --synthetic "$cpu_model" --method plain --dtype bf16 "${sizes[@]}"
    fi
    for method in plain em-inf; do
        run_one "cpu $cpu_model $method batch 1" "$BIN/entmin" bench --json --device cpu \
            --synthetic "$cpu_model" --method "$method" "${cpu_sizes[@]}"
    done
    if [ "$HW_WGPU" = 1 ]; then
        # On its GGUF blocks (the default, --dtype auto), then the same model in bf16.
        run_one "wgpu $cpu_model plain batch 1" "$BIN/entmin" bench --json --device wgpu \
            --synthetic "$cpu_model" --method plain "${sizes[@]}"
        run_one "wgpu $cpu_model plain batch 1 bf16" "$BIN/entmin" bench --json --device wgpu \
            --synthetic "$cpu_model" --method plain --dtype bf16 "${sizes[@]}"
    fi
}

stage_torch() {
    if ! python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
        echo "the PyTorch peer needs torch with CUDA (the GPU machine's image has it)"
        echo "RESULT gpu-missing torch peer"
        return
    fi
    run_one "torch peer" python3 "$PACK/peers/torch_entropy_gpu.py"
}

if [ "${1:-}" = --stage ]; then
    "stage_$2"
    exit 0
fi

# ---- the main run ----

DRY=0
budget=480
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --budget) budget="$2"; shift ;;
        *) echo "usage: gpu-check.sh [--dry-run] [--budget SECONDS]" >&2; exit 2 ;;
    esac
    shift
done
RESULTS="${OUT:-$PWD/gpu-check-results}"
mkdir -p "$RESULTS"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/entmin-gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
t_start=$SECONDS

if [ ! -f "$pack/bin.tar.xz" ]; then
    echo "error: no pack at $pack (make one with scripts/gpu-pack.sh)"
    exit 1
fi
# xz where it is installed, else Python's lzma.
tar -xJf "$pack/bin.tar.xz" -C "$WORK" 2>/dev/null ||
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2])' "$pack/bin.tar.xz" "$WORK" ||
    { echo "error: cannot unpack $pack/bin.tar.xz"; exit 1; }
BIN="$WORK/bin"
export DRY BIN WORK RESULTS PACK="$pack" NO_GPU
export ENTMIN_HOME="${ENTMIN_HOME:-$HOME/.cache/entmin}"
echo "entmin device check$([ $DRY = 1 ] && echo ' (dry run)'), pack $pack, budget ${budget}s"

# ptxas for doctor --compile-kernels and the compile test: PATH, the toolkit, pip's
# nvcc wheels of the python3 on PATH, entmin's own cuda-tools.
if [ -z "${ENTMIN_PTXAS:-}" ]; then
    py_site=$(dirname "$(command -v python3 2>/dev/null || echo /nonexistent/bin/python3)")/../lib
    for p in "$(command -v ptxas 2>/dev/null)" "${CUDA_HOME:-/usr/local/cuda}/bin/ptxas" /usr/local/cuda/bin/ptxas \
        "$py_site"/python3*/site-packages/nvidia/*/bin/ptxas "$ENTMIN_HOME"/cuda-tools/nvidia/cuda_nvcc/bin/ptxas; do
        if [ -n "$p" ] && [ -x "$p" ]; then export ENTMIN_PTXAS="$p"; break; fi
    done
fi
echo "ptxas: ${ENTMIN_PTXAS:-not found}"
# The test and bench binaries find NVRTC and cuBLAS through the LD_LIBRARY_PATH that
# entmin works out (it links CUDA 13's libraries under the names cudarc opens).
ld_path="$("$BIN/entmin" doctor --cuda-library-path 2>/dev/null)"
[ -n "$ld_path" ] && LD_LIBRARY_PATH="$ld_path"
# Vulkan: the image's loader, else the one in the pack; the NVIDIA driver's ICD.
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
    for deb in "$pack"/debs/libvulkan1_*.deb; do
        [ -f "$deb" ] && dpkg -x "$deb" "$WORK/vulkan" 2>/dev/null &&
            LD_LIBRARY_PATH="$(find "$WORK/vulkan" -name 'libvulkan.so.1' -printf '%h')${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    done
fi
[ -n "${LD_LIBRARY_PATH:-}" ] && export LD_LIBRARY_PATH
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
    /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$icd" ]; then export VK_DRIVER_FILES="$icd"; break; fi
done
export WGPU_BACKEND=vulkan XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$WORK}"
HW_WGPU=0
if "$BIN/entmin" doctor --json 2>/dev/null | grep -q '"type": "DiscreteGpu"\|"type": "IntegratedGpu"'; then HW_WGPU=1; fi
export HW_WGPU

summary=()
overall=0
# stage NAME LIMIT_SECONDS LOG_FILE
stage() {
    local name=$1 max=$2 log="$RESULTS/$3" left limit t0 rc verdict
    left=$((budget - (SECONDS - t_start) - 20))
    limit=$((max < left ? max : left))
    if [ $limit -lt 10 ]; then
        summary+=("$(printf '%-8s %-12s %s' "$name" skipped "out of time budget")")
        overall=1
        return
    fi
    echo "== $name (limit ${limit}s) =="
    t0=$SECONDS
    # Stages may share a log: only the lines this one adds are its results.
    local before mine
    touch "$log"
    before=$(wc -l <"$log")
    timeout --kill-after=10 "$limit" "$0" --stage "$name" >>"$log" 2>&1
    rc=$?
    mine=$(tail -n +$((before + 1)) "$log" | grep '^RESULT')
    local fails gpu oks
    fails=$(grep -c '^RESULT fail' <<<"$mine")
    gpu=$(grep -c '^RESULT gpu-missing' <<<"$mine")
    oks=$(grep -c '^RESULT ok' <<<"$mine")
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        verdict="TIMEOUT after ${limit}s"
        overall=1
    elif [ "$fails" -gt 0 ] || [ $((oks + gpu)) -eq 0 ]; then
        verdict="FAIL"
        overall=1
    elif [ "$gpu" -gt 0 ] && [ "$DRY" = 0 ]; then
        verdict="FAIL (no GPU)"
        overall=1
    elif [ "$gpu" -gt 0 ]; then
        verdict="ok (dry run: needs a GPU)"
    else
        verdict="ok"
    fi
    sed 's/^RESULT /   /' <<<"$mine"
    summary+=("$(printf '%-8s %-26s %4ss  %s' "$name" "$verdict" $((SECONDS - t0)) "$(head -1 <<<"$mine" | cut -d' ' -f2- | cut -c1-60)")")
}

: >"$RESULTS/machine.log"
stage machine 30 machine.log
stage doctor 150 doctor.log
: >"$RESULTS/tests.log"
stage cuda 240 tests.log
stage wgpu 150 tests.log
stage benches 180 benches.log
stage decode 180 decode.log
stage torch 90 torch.log

# ---- the table ----
{
    echo
    gpu_line=$(grep -A1 -m1 '^name, memory.total' "$RESULTS/machine.log" | tail -1)
    echo "== entmin device check: ${gpu_line:-no NVIDIA GPU}$([ $DRY = 1 ] && echo ' (dry run)') =="
    printf '%s\n' "${summary[@]}"
    echo
    echo "-- tests --"
    grep -E '^test result:|^RESULT' "$RESULTS/tests.log" | sed 's/^/   /'
    echo
    echo "-- kernels (criterion median; % of the 4.3 TB/s H200 copy and of this run's cuda/memory/copy) --"
    awk '
        /^(cuda|wgpu)\// { name = $1 }
        /time:/ && name != "" { t = $4 " " $5 }
        /thrpt:/ && name != "" {
            v = $4; u = $5; gbs = (u ~ /GiB/) ? v * 1.073741824 : (u ~ /MiB/) ? v * 0.001048576 : (u ~ /TiB/) ? v * 1099.511627776 : -1
            if (name ~ /memory\/copy/ && gbs > 0) copy[substr(name, 1, index(name, "/"))] = gbs
            line[++n] = name; tm[n] = t; bw[n] = gbs; raw[n] = v " " u; name = ""
        }
        END {
            for (i = 1; i <= n; i++) {
                b = substr(line[i], 1, index(line[i], "/"))
                if (bw[i] > 0) printf "   %-48s %-12s %9.1f GB/s  %5.1f%%  %5.1f%%\n", line[i], tm[i], bw[i], 100 * bw[i] / 4300, (copy[b] > 0 ? 100 * bw[i] / copy[b] : 0)
                else printf "   %-48s %-12s %s\n", line[i], tm[i], raw[i]
            }
        }' "$RESULTS/benches.log"
    echo
    echo "-- decode (entmin bench --synthetic; tok/s over all rows) --"
    if command -v python3 >/dev/null; then
        python3 - "$RESULTS/decode.log" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    em = ""
    if "em_inf_adam_steps_per_token" in r:
        em = f"  EM-INF {r['pick_ms_per_token'] * 1e3 / r['batch']:.0f} us/row, {r['em_inf_adam_steps_per_token']:.2f} steps/token"
    # Weight bytes over step time: the bandwidth a step would need if it read every
    # weight byte once (the embedding table too, of which a step reads one row per token).
    gbs = r["weights_mb"] / r["decode_ms_per_step"] if r["decode_ms_per_step"] > 0 else 0.0
    print(f"   {r['device']:<5} {r['model']:<40} {r['method']:<7} batch {r['batch']:>2}: decode {r['decode_tok_s']:8.1f} tok/s, "
          f"prefill {r['prefill_tok_s']:8.1f} tok/s, {r['decode_ms_per_step']:.2f} ms/step, "
          f"{r['weights_mb']:.0f} MB weights ({r['dtype']}) ≤ {gbs:.0f} GB/s{em}")
PY
    else
        grep '^{' "$RESULTS/decode.log" | cut -c1-200
    fi
    echo
    echo "-- PyTorch peer --"
    grep '^{' "$RESULTS/torch.log" | cut -c1-600 || true
    echo
    echo "total $((SECONDS - t_start))s of ${budget}s; logs in $RESULTS"
} | tee "$RESULTS/summary.txt"
if [ $overall -ne 0 ]; then
    echo "device check: FAILED"
else
    echo "device check: passed$([ $DRY = 1 ] && echo ' (dry run)')"
fi
exit $overall
