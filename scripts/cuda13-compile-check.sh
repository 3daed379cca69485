#!/usr/bin/env bash
# Proves, without a GPU, that the CUDA path works with CUDA 13's libraries, as on the GPU
# machine (driver 580, CUDA 13): pip's CUDA 13.0 NVRTC and ptxas wheels are installed
# into a fake Python environment, and `entmin doctor --compile-kernels` runs in a clean
# environment (nothing on LD_LIBRARY_PATH), so entmin must find libnvrtc.so.13 itself,
# link it, restart, and compile and assemble every kernel (docs/gpu.md). About 130 MB of
# wheels, cached in $ENTMIN_HOME/cuda13-check. Not part of the suite (the download).
#
#   scripts/cuda13-compile-check.sh [ENTMIN_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release/entmin}"
[ -x "$bin" ] || { echo "error: build entmin first (cargo build --release) or pass its path" >&2; exit 1; }
home="${ENTMIN_HOME:-$HOME/.cache/entmin}/cuda13-check"
venv="$home/venv"
site="$venv/lib/python3.12/site-packages"
if [ ! -e "$site/nvidia/cu13/lib/libnvrtc.so.13" ] || [ ! -x "$site/nvidia/cu13/bin/ptxas" ]; then
    mkdir -p "$home/wheels" "$site" "$venv/bin"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux_2_27_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        -d "$home/wheels" nvidia-cuda-nvrtc==13.0.88 nvidia-cuda-nvcc==13.0.88
    for w in "$home"/wheels/*.whl; do python3 -m zipfile -e "$w" "$site"; done
    chmod +x "$site/nvidia/cu13/bin/ptxas"
fi
# A python3 in the fake environment's bin/, so entmin's search finds its site-packages.
ln -sf "$(command -v python3)" "$venv/bin/python3"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
env -i HOME="$scratch" XDG_RUNTIME_DIR="$scratch" PATH="$venv/bin:/usr/bin:/bin" ENTMIN_PTXAS="$site/nvidia/cu13/bin/ptxas" \
    "$bin" doctor --compile-kernels --json >"$scratch/doctor.json"
python3 - "$scratch/doctor.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["cuda"]
print("nvrtc:", r["nvrtc"], "| loaded:", ", ".join(f for f in r["loaded_files"] if "nvrtc" in f), "| links:", r["library_links"])
k = r["kernels"]
if not isinstance(k, list):
    sys.exit(f"error: kernels did not compile: {k}")
spills = [x for x in k if x["spill_store_bytes"] or x["spill_load_bytes"]]
print(f"{len(k)} kernel builds (sm_80, sm_90), max {max(x['registers'] for x in k)} registers, {len(spills)} spilling")
sys.exit(1 if spills or not str(r["nvrtc"]).startswith("13.") else 0)
PY
