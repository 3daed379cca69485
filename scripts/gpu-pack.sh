#!/usr/bin/env bash
# Builds what a GPU machine runs and lays it into one folder that travels with the
# working tree (the GPU machine builds nothing and reaches no registry; docs/gpu.md):
#   bin.tar.xz   entmin, the GPU test binary (tests/tests/gpu) and the kernel benchmarks,
#                compressed
#   gpu-check.sh the device check (run it from this folder)
#   peers/       the PyTorch peer scripts
#   debs/        the Vulkan loader (libvulkan1), for the wgpu suite where the GPU image
#                has none
#   MANIFEST     commit, profile, and each file's size and sha256
#
#   scripts/gpu-pack.sh [--dev] [--out DIR]
#
# --dev packs the binaries the test profile already built (what `cargo test` made: the
# suite's dry run uses it, so CI never adds a release build); the default builds them
# in release mode. The pack's path is printed on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
out=target/gpu-pack
while [ $# -gt 0 ]; do
    case "$1" in
        --dev) profile=dev ;;
        --out) out="$2"; shift ;;
        *) echo "usage: scripts/gpu-pack.sh [--dev] [--out DIR]" >&2; exit 2 ;;
    esac
    shift
done
limit_mib=64

# Paths of the executables cargo builds for a command, from its JSON messages.
executables() {
    cargo "$@" --locked --message-format=json-render-diagnostics |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["executable"])'
}

if [ "$profile" = release ]; then
    entmin_bin=$(executables build --release -p entmin --bin entmin)
    gpu_tests=$(executables test --release -p entmin-tests --test gpu --no-run)
    kernels=$(executables bench -p entmin-engine --bench kernels --no-run)
else
    # --workspace: the suite's feature set, so these are the artifacts `cargo test
    # --workspace` already built (with -p, features differ and half the tree rebuilds).
    entmin_bin=$(executables build -p entmin --bin entmin)
    gpu_tests=$(executables test --workspace --test gpu --no-run)
    kernels=$(executables test --workspace --bench kernels --no-run)
fi
for f in "$entmin_bin" "$gpu_tests" "$kernels"; do
    [ -x "$f" ] || { echo "error: no executable at '$f'" >&2; exit 1; }
done

rm -rf "$out"
mkdir -p "$out/peers" "$out/debs"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin"
cp "$entmin_bin" "$stage/bin/entmin"
cp "$gpu_tests" "$stage/bin/gpu-tests"
cp "$kernels" "$stage/bin/kernel-benches"
# Release binaries keep their line tables (37 MiB compressed): the first run of the
# CUDA host code on a GPU should fail with file and line. The dry run's test-profile
# binaries are stripped, since only their starting matters there.
[ "$profile" = dev ] && strip --strip-all "$stage"/bin/*
tar -C "$stage" -cf - bin | xz -T0 -6 >"$out/bin.tar.xz"

cp scripts/gpu-check.sh "$out/gpu-check.sh"
cp benches/peers/torch_entropy_gpu.py "$out/peers/"
# The Vulkan loader for the wgpu suite, when apt can fetch it here (it is tiny).
if command -v apt-get >/dev/null; then
    (cd "$out/debs" && apt-get download -qq libvulkan1 >/dev/null 2>&1) ||
        echo "note: could not download libvulkan1; the wgpu stage will need the GPU image's loader" >&2
fi

{
    echo "entmin GPU pack"
    echo "commit: $(git rev-parse HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "made: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m)"
    echo "profile: $profile"
    echo "binaries: entmin <- $entmin_bin; gpu-tests <- $gpu_tests; kernel-benches <- $kernels"
    echo "files:"
    (cd "$out" && find . -type f ! -name MANIFEST | sort | while read -r f; do
        printf '  %s %s %s\n' "$(sha256sum "$f" | cut -d' ' -f1)" "$(stat -c %s "$f")" "${f#./}"
    done)
} >"$out/MANIFEST"

size=$(du -sb "$out" | cut -f1)
tree_size=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
echo "pack $((size >> 20)) MiB + working tree $((tree_size >> 20)) MiB (limit $limit_mib MiB together)" >&2
if [ $((size + tree_size)) -gt $((limit_mib << 20)) ]; then
    echo "error: the pack and the working tree exceed $limit_mib MiB" >&2
    exit 1
fi
echo "$out"
