#!/usr/bin/env python3
"""Peer benchmark for the CUDA softmax-entropy and EM-INF kernels: PyTorch eager on
the GPU, timed with CUDA events in the same run as `cargo bench ... cuda/`.

  * entropy: H = -(softmax(z) * log_softmax(z)).sum(-1) on [rows, 151936] logits
    (f32 and bf16 storage, computed in f32 as entmin does), rows 1 .. 4096;
    GB/s counts the logits read once, like entmin's figure.
  * em_inf: the official per-token loop on one f32 row (Adam on z', K = 5 steps,
    lr 0.1, KL weight 0.001, no early stop so that every step runs), µs per row.

Prints one JSON line. Needs torch with CUDA (the GPU machine has it).

    python3 benches/peers/torch_entropy_gpu.py
"""
import json
import torch

V = 151936


def cuda_time(fn, reps):
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / reps / 1e3  # seconds per call


def entropy(z):
    z = z.float()
    return -(torch.softmax(z, -1) * torch.log_softmax(z, -1)).sum(-1)


def em_inf(logits, steps=5, lr=0.1, kl=0.001):
    z = logits.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    p = torch.softmax(logits, -1).detach()
    for _ in range(steps):
        logq = torch.log_softmax(z, -1)
        h = -(logq.exp() * logq).sum()
        loss = h + kl * torch.nn.functional.kl_div(logq, p, reduction="sum")
        opt.zero_grad()
        loss.backward()
        opt.step()
    return z.detach()


def main():
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(0)
    out = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "entropy": []}
    for dtype in (torch.float32, torch.bfloat16):
        for rows in (1, 16, 256, 4096):
            z = (torch.rand(rows, V, device=dev, generator=gen) * 16 - 8).to(dtype)
            s = cuda_time(lambda: entropy(z), 20)
            out["entropy"].append({
                "dtype": str(dtype).removeprefix("torch."), "rows": rows,
                "us": s * 1e6, "gb_s": rows * V * z.element_size() / s / 1e9,
            })
    row = torch.rand(1, V, device=dev, generator=gen) * 16 - 8
    out["em_inf_us_per_row_k5"] = cuda_time(lambda: em_inf(row), 20) * 1e6
    print(json.dumps(out))


if __name__ == "__main__":
    main()
