#!/usr/bin/env python3
"""Peer benchmark: Hugging Face transformers on PyTorch CPU, float32.

Loads the same GGUF file entmin uses (transformers dequantises every tensor to
f32), then measures
  * prefill: one forward over a P-token prompt (use_cache=True), tokens/s;
  * decode: N greedy single-token forwards reusing past_key_values, tokens/s
    (decode steps only; the prefill that builds the cache is not counted);
  * peak RSS of the process (includes the transient peak while dequantising).
One warm-up pass runs first; each figure is the best of --runs timed passes.
Prints one JSON line (and writes it to --json if given).

    peer-venv/bin/python benches/peers/hf_decode.py \
        --model-gguf ~/.cache/entmin/models/smollm2-135m-instruct/model.gguf --threads 2
"""
import argparse
import inspect
import json
import os
import resource
import sys
import time

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--model-gguf", required=True, help="path to a .gguf file")
ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads")
ap.add_argument("--prompt-tokens", type=int, default=128, help="prompt length P (token ids)")
ap.add_argument("--new-tokens", type=int, default=64, help="decode steps N")
ap.add_argument("--runs", type=int, default=3, help="timed passes; the best is reported")
ap.add_argument("--attn", help="attn_implementation (default: transformers' own, sdpa)")
ap.add_argument("--json", help="also write the JSON line to this file")
ap.add_argument("--show", action="store_true", help="print the greedy continuation to stderr")
args = ap.parse_args()

# OpenMP reads these at start-up, so set them before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
os.environ.setdefault("MKL_NUM_THREADS", str(args.threads))

import psutil  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
torch.set_num_threads(args.threads)

path = os.path.abspath(os.path.expanduser(args.model_gguf))
gguf_dir, gguf_file = os.path.split(path)

t0 = time.perf_counter()
extra = {"attn_implementation": args.attn} if args.attn else {}
model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, dtype=torch.float32, **extra)
model.eval()
load_s = time.perf_counter() - t0
t0 = time.perf_counter()
tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
tokenizer_s = time.perf_counter() - t0
assert next(model.parameters()).dtype == torch.float32
# transformers 5.x renamed forward(past_key_values=) to forward(cache=).
CACHE_KW = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def cache_of(out):
    c = getattr(out, "cache", None)
    return c if c is not None else out.past_key_values


def prompt_ids(n):
    """Exactly n token ids: a fixed English paragraph repeated, then truncated."""
    text = (
        "The quick brown fox jumps over the lazy dog near the river bank, while "
        "a small robot counts the stars and writes their names in a notebook. "
    )
    ids = []
    while len(ids) < n:
        ids += tok(text, add_special_tokens=False)["input_ids"]
    return torch.tensor([ids[:n]], dtype=torch.long)


@torch.inference_mode()
def one_pass(ids, new_tokens):
    """Returns (prefill seconds, decode seconds, generated ids)."""
    t0 = time.perf_counter()
    out = model(input_ids=ids, use_cache=True)
    t1 = time.perf_counter()
    past = cache_of(out)
    nxt = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
    gen = [nxt.item()]
    t2 = time.perf_counter()
    for _ in range(new_tokens):
        out = model(input_ids=nxt, use_cache=True, **{CACHE_KW: past})
        past = cache_of(out)
        nxt = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
        gen.append(nxt.item())
    t3 = time.perf_counter()
    return t1 - t0, t3 - t2, gen


ids = prompt_ids(args.prompt_tokens)
one_pass(ids, min(args.new_tokens, 8))  # warm-up: allocator, oneDNN/MKL kernels, threads
prefill_s = decode_s = float("inf")
for _ in range(args.runs):
    p, d, gen = one_pass(ids, args.new_tokens)
    prefill_s, decode_s = min(prefill_s, p), min(decode_s, d)

if args.show:
    print(repr(tok.decode(gen)), file=sys.stderr)

result = {
    "impl": "transformers",
    "torch": torch.__version__,
    "transformers": transformers.__version__,
    "model": path,
    "dtype": "float32",
    "threads": torch.get_num_threads(),
    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
    "attn": model.config._attn_implementation,
    "prompt_tokens": args.prompt_tokens,
    "new_tokens": args.new_tokens,
    "runs": args.runs,
    "prefill_s": round(prefill_s, 4),
    "prefill_tok_s": round(args.prompt_tokens / prefill_s, 2),
    "decode_s": round(decode_s, 4),
    "decode_tok_s": round(args.new_tokens / decode_s, 2),
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    "rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1),
    "load_s": round(load_s, 2),
    "tokenizer_s": round(tokenizer_s, 2),
}
line = json.dumps(result)
print(line)
if args.json:
    with open(args.json, "w") as f:
        f.write(line + "\n")
