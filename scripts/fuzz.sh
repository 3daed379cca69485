#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of untrusted input with AFL++ (cargo-afl, on
# the stable toolchain; docs/fuzzing.md): each target of entmin-fuzz for SECONDS (default
# 600), two at a time (one per core), from the seed corpora `entmin-fuzz --write-seeds`
# builds out of the real files in the cache. Prints a table (executions, time, paths,
# crashes, hangs) and copies every crash into fuzz/regressions/TARGET/, where the test
# suite replays it. Not part of the suite: it takes SECONDS × targets / 2.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
[ $# -gt 0 ] && shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(gguf safetensors config-json tokenizer-json tokenize chat-messages chat-template dataset-jsonl answer)
fi

command -v cargo-afl >/dev/null || cargo install --locked cargo-afl
(cd fuzz/afl && cargo afl build --release)
work=target/fuzz
rm -rf "$work/out"
mkdir -p "$work/out"
cargo run --locked --release -p entmin-fuzz -- --write-seeds "$work/seeds"

run() {
    local t=$1 bin
    bin="fuzz/afl/target/release/$(echo "$t" | tr - _)"
    # Up to 10 s per input (the GGUF target loads whole models); no memory cap (the loader
    # maps files); AFL's own 1 MB input cap drops the largest seeds. The fixtures (real
    # tokenizers and templates) are built before the fork server starts, which can take
    # longer than AFL's default 10 s hand-shake on two busy cores.
    # The instrumented binary's coverage map is larger than AFL's default: ask it.
    AFL_MAP_SIZE=$(AFL_DUMP_MAP_SIZE=1 "$bin" </dev/null) AFL_FORKSRV_INIT_TMOUT=120000 AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
        cargo afl fuzz -V "$secs" -t 10000 -m none -i "$work/seeds/$t" -o "$work/out/$t" "$bin" \
        >"$work/out/$t.log" 2>&1 || echo "afl-fuzz $t ended with $? (see $work/out/$t.log)"
}

for ((i = 0; i < ${#targets[@]}; i += 2)); do
    run "${targets[i]}" &
    [ $((i + 1)) -lt ${#targets[@]} ] && run "${targets[i + 1]}" &
    wait
done

stat() { grep -m1 "^$2 *:" "$1" 2>/dev/null | cut -d: -f2 | tr -d ' '; }
{
    echo "| target | executions | seconds | exec/s | corpus | crashes | hangs |"
    echo "|---|---|---|---|---|---|---|"
    for t in "${targets[@]}"; do
        s="$work/out/$t/default/fuzzer_stats"
        echo "| $t | $(stat "$s" execs_done) | $(stat "$s" run_time) | $(stat "$s" execs_per_sec) | $(stat "$s" corpus_count) | $(stat "$s" saved_crashes) | $(stat "$s" saved_hangs) |"
        for c in "$work/out/$t"/default/crashes/id:*; do
            [ -f "$c" ] || continue
            mkdir -p "fuzz/regressions/$t"
            cp "$c" "fuzz/regressions/$t/afl-$(sha256sum "$c" | cut -c1-16)"
        done
    done
} | tee "$work/report.md"
echo "crash inputs (if any) copied to fuzz/regressions/; replay: cargo test -p entmin-fuzz"
