#!/usr/bin/env python3
"""Independent reference for entmin's training backward pass: the gradient of the EM-FT
loss on SmolLM2-135M computed by PyTorch autograd (transformers' LlamaForCausalLM, the
GGUF dequantised by transformers, float64 throughout), run once; small outputs committed
as tests/reference/grad/smollm2-135m-instruct.json.

Loss: sum over positions p with weight w_p of w_p * H(softmax(logits_p)), H in nats over
the whole vocabulary, for fixed token ids (no tokenizer involved).
Recorded: the loss, and for a fixed set of parameter tensors the gradient's Frobenius
norm and its values at fixed indices (i * 7919 mod size, i < 16).

    ~/.cache/entmin/peer-venv/bin/python tests/reference/grad_reference.py
"""
import json
import os

import torch
from transformers import AutoModelForCausalLM

NAME = "smollm2-135m-instruct"
# 24 ids: any fixed sequence serves; these are in SmolLM2's 49152-token vocabulary.
# Not id 2: transformers builds SmolLM2's embedding with padding_idx = 2, whose lookup
# gradient PyTorch zeroes (entmin computes the true gradient; the two would differ).
IDS = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 30, 28, 198, 1, 4093, 198,
       504, 3781, 282, 1303, 10258, 17, 1033, 314]
WEIGHTS = [0.0] * 11 + [1.0] * 12 + [0.0]
WEIGHTS[15] = 0.5
TENSORS = [
    "model.embed_tokens.weight",
    "model.layers.0.input_layernorm.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.self_attn.k_proj.weight",
    "model.layers.0.self_attn.v_proj.weight",
    "model.layers.0.self_attn.o_proj.weight",
    "model.layers.0.mlp.gate_proj.weight",
    "model.layers.0.mlp.up_proj.weight",
    "model.layers.0.mlp.down_proj.weight",
    "model.layers.0.post_attention_layernorm.weight",
    "model.layers.15.self_attn.q_proj.weight",
    "model.layers.29.mlp.down_proj.weight",
    "model.norm.weight",
]


def main():
    home = os.environ.get("ENTMIN_HOME", os.path.expanduser("~/.cache/entmin"))
    path = os.path.join(home, "models", NAME, "model.gguf")
    d, f = os.path.split(path)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).double()
    model.eval()
    assert model.model.embed_tokens.padding_idx not in IDS
    ids = torch.tensor([IDS])
    logits = model(input_ids=ids).logits[0]
    logq = torch.log_softmax(logits, -1)
    h = -(logq.exp() * logq).sum(-1)
    loss = (torch.tensor(WEIGHTS, dtype=torch.float64) * h).sum()
    loss.backward()
    params = dict(model.named_parameters())
    out = {"model": NAME, "ids": IDS, "weights": WEIGHTS, "loss": loss.item(), "entropies": h.tolist(),
           "torch": torch.__version__, "tensors": {}}
    for name in TENSORS:
        g = params[name].grad.flatten()
        idx = [(i * 7919) % g.numel() for i in range(16)]
        out["tensors"][name] = {"norm": g.norm().item(), "indices": idx, "values": [g[i].item() for i in idx]}
    dst = os.path.join(os.path.dirname(__file__), "grad", NAME + ".json")
    with open(dst, "w") as fh:
        json.dump(out, fh, indent=1)
    print(dst, "loss", out["loss"])


if __name__ == "__main__":
    main()
