#!/usr/bin/env python3
"""Peer benchmark: per-token cost of EM-INF in the official PyTorch style.

Loads the GGUF with transformers (float32, as hf_decode.py), prefills a P-token
prompt, then runs N decode steps on the KV cache twice, each step being one
single-token forward plus the head processing of the last-position logits:
  * plain:  temperature-0.1 sampling (torch.multinomial, fixed-seed generator);
  * EM-INF: as the official code, per step on the f32 logits (batch 1):
      z' = logits.clone().requires_grad_(True); Adam([z'], lr=0.1);
      p = softmax(logits).detach(); for up to K=5 steps: H = entropy(softmax(z'));
      stop if H < delta=0.3; loss = H + 0.001 * kl_div(log_softmax(z'), p, 'sum')
      (KL(p||q)); zero_grad, backward, step;  then T=0.1 sampling from z'.
Reports ms/token for both (forward included, prefill not), the EM-INF
optimisation's own ms/token (timed around the loop alone), the mean Adam steps
per token and overhead = em_inf_ms / plain_ms - 1. One warm-up pass of each mode
first; each figure is the best of --runs passes. Prints one JSON line.

    peer-venv/bin/python benches/peers/em_inf_overhead.py --threads 2
"""
import argparse
import inspect
import json
import os
import time

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--model-gguf", default="~/.cache/entmin/models/qwen2.5-coder-0.5b-instruct/model.gguf")
ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
ap.add_argument("--prompt-tokens", type=int, default=64, help="prompt length P (token ids)")
ap.add_argument("--new-tokens", type=int, default=32, help="decode steps N")
ap.add_argument("--runs", type=int, default=3, help="timed passes per mode; the best is reported")
ap.add_argument("--seed", type=int, default=0, help="torch generator seed for sampling")
ap.add_argument("--json", help="also write the JSON line to this file")
args = ap.parse_args()

# OpenMP reads these at start-up, so set them before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
os.environ.setdefault("MKL_NUM_THREADS", str(args.threads))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
torch.set_num_threads(args.threads)

TEMP, K, DELTA, LR, LAMBDA = 0.1, 5, 0.3, 0.1, 0.001  # official defaults, eval temperature

path = os.path.abspath(os.path.expanduser(args.model_gguf))
gguf_dir, gguf_file = os.path.split(path)
model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, dtype=torch.float32)
model.eval()
tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
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


def sample(logits, gen):
    probs = torch.softmax(logits / TEMP, dim=-1)
    return torch.multinomial(probs, 1, generator=gen)


def em_inf(logits):
    """Official-style EM-INF on [1, V] f32 logits; returns (adapted logits, Adam steps)."""
    with torch.enable_grad():
        z = logits.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=LR)
        p = torch.softmax(logits, dim=-1).detach()
        steps = 0
        for _ in range(K):
            probs = torch.softmax(z, dim=-1)
            entropy = -(probs * torch.log(probs + 1e-12)).sum()
            if entropy < DELTA:
                break
            kl = F.kl_div(torch.log_softmax(z, dim=-1), p, reduction="sum")  # KL(p || softmax(z))
            loss = entropy + LAMBDA * kl
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
    return z.detach(), steps


def one_pass(ids, new_tokens, use_em_inf):
    """Returns (decode seconds, EM-INF loop seconds, Adam steps, generated ids)."""
    gen = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():  # not inference_mode: EM-INF needs autograd on the logits
        out = model(input_ids=ids, use_cache=True)
        past, logits = cache_of(out), out.logits[:, -1, :].float()
        loop_s, steps, toks = 0.0, 0, []
        t0 = time.perf_counter()
        for _ in range(new_tokens):
            if use_em_inf:
                t1 = time.perf_counter()
                logits, n = em_inf(logits)
                loop_s += time.perf_counter() - t1
                steps += n
            nxt = sample(logits, gen)
            toks.append(nxt.item())
            out = model(input_ids=nxt, use_cache=True, **{CACHE_KW: past})
            past, logits = cache_of(out), out.logits[:, -1, :].float()
        total_s = time.perf_counter() - t0
    return total_s, loop_s, steps, toks


ids = prompt_ids(args.prompt_tokens)
for mode in (False, True):  # warm-up: allocator, oneDNN/MKL kernels, threads, autograd
    one_pass(ids, min(args.new_tokens, 8), mode)
plain_s = min(one_pass(ids, args.new_tokens, False)[0] for _ in range(args.runs))
best = min((one_pass(ids, args.new_tokens, True) for _ in range(args.runs)), key=lambda r: r[0])
em_s, loop_s, steps, _ = best

n = args.new_tokens
plain_ms, em_ms = 1e3 * plain_s / n, 1e3 * em_s / n
result = {
    "impl": "pytorch-official-em-inf",
    "torch": torch.__version__,
    "transformers": transformers.__version__,
    "model": path,
    "dtype": "float32",
    "vocab": model.config.vocab_size,
    "threads": torch.get_num_threads(),
    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
    "prompt_tokens": args.prompt_tokens,
    "new_tokens": n,
    "runs": args.runs,
    "em_inf": {"K": K, "delta": DELTA, "lr": LR, "lambda": LAMBDA, "temperature": TEMP},
    "plain_ms_per_token": round(plain_ms, 3),
    "em_inf_ms_per_token": round(em_ms, 3),
    "em_inf_loop_ms_per_token": round(1e3 * loop_s / n, 3),
    "mean_steps": round(steps / n, 3),
    "overhead": round(em_ms / plain_ms - 1, 4),
}
line = json.dumps(result)
print(line)
if args.json:
    with open(args.json, "w") as f:
        f.write(line + "\n")
