#!/usr/bin/env python3
"""Peer for `entmin bench-train`: one EM-FT training step in PyTorch eager, float32, on
the CPU — forward over B sequences of T tokens, loss = mean over sequences of the summed
next-token entropies at every position (full vocabulary), backward, AdamW step — on the
same GGUF weights loaded by transformers. Best of --steps after one warm-up; one JSON
line with step time, tokens/s and peak RSS. Same input text as entmin's.

    ~/.cache/entmin/peer-venv/bin/python benches/peers/torch_train_step.py --model smollm2-135m-instruct --threads 2
"""
import argparse
import json
import os
import resource
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

p = argparse.ArgumentParser()
p.add_argument("--model", default="smollm2-135m-instruct")
p.add_argument("--batch", type=int, default=2)
p.add_argument("--tokens", type=int, default=256)
p.add_argument("--steps", type=int, default=2)
p.add_argument("--threads", type=int, default=os.cpu_count())
args = p.parse_args()
torch.set_num_threads(args.threads)
home = os.environ.get("ENTMIN_HOME", os.path.expanduser("~/.cache/entmin"))
d = os.path.join(home, "models", args.model)
model = AutoModelForCausalLM.from_pretrained(d, gguf_file="model.gguf", dtype=torch.float32)
model.train()
tok = AutoTokenizer.from_pretrained(d, gguf_file="model.gguf")
sentence = tok.encode("The quick brown fox jumps over the lazy dog while the sun sets slowly. ", add_special_tokens=False)
ids = (sentence * (args.tokens // len(sentence) + 1))[: args.tokens]
batch = torch.tensor([ids] * args.batch)
opt = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.0)


def step():
    logits = model(input_ids=batch).logits
    logq = torch.log_softmax(logits, -1)
    loss = -(logq.exp() * logq).sum(-1).sum(-1).mean()
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.item()


step()
best = float("inf")
for _ in range(args.steps):
    t = time.perf_counter()
    loss = step()
    best = min(best, time.perf_counter() - t)
print(json.dumps({
    "impl": "pytorch-eager", "torch": torch.__version__, "model": args.model, "threads": args.threads,
    "batch": args.batch, "tokens": args.tokens, "step_s": best, "train_tok_s": args.batch * args.tokens / best,
    "loss": loss, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
