#!/usr/bin/env python3
"""Independent PyTorch reference for EM-INF and the entropy gradient (see README.md).

Run: /root/.cache/entmin/peer-venv/bin/python tests/reference/em_inf_reference.py
Writes tests/reference/em_inf/traces.json. Needs only a CPU torch (float64 throughout).
"""
import json, math, os
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "em_inf", "traces.json")
MASK64 = (1 << 64) - 1


def f32(x):  # every stored input is exactly representable in f32 (the runtime's dtype)
    return torch.as_tensor(x, dtype=torch.float64).to(torch.float32).to(torch.float64)


def splitmix64_normal(seed, n, scale):
    """Bit-reproducible N(0, scale^2)-like logits: Irwin-Hall sum of 12 uniforms, no libm."""
    s, out = seed, []
    for _ in range(n):
        acc = 0.0
        for _ in range(12):
            s = (s + 0x9E3779B97F4A7C15) & MASK64
            x = s
            x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
            x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
            x ^= x >> 31
            acc += (x >> 11) * 2.0 ** -53  # uniform in [0,1), exact
        out.append(scale * (acc - 6.0))
    return f32(out)


def sine_logits(n):  # math.sin is the C library's sin, like Rust's f64::sin
    return f32([6.0 * math.sin(0.7 * i) + 0.001 * i for i in range(n)])


def entropy(logits):  # H of softmax(logits); logits are finite; q = 0 terms contribute 0
    logq = torch.log_softmax(logits, -1)
    return -(logq.exp() * logq).sum()


def em_inf(z, delta, lr, K, lam, dtype=torch.float64):
    """Official EM-INF loop; only finite entries are optimised, -inf ones stay -inf."""
    z = z.to(dtype)
    fin = torch.isfinite(z)
    zf = z[fin].clone().requires_grad_()
    logp = torch.log_softmax(zf.detach(), -1)
    p = logp.exp()
    opt = torch.optim.Adam([zf], lr=lr)  # betas=(0.9, 0.999), eps=1e-8
    steps, zs, stopped = [], [], False
    for _ in range(K):
        if zf.numel() == 0:
            stopped = True; break
        logq = torch.log_softmax(zf, -1)
        H = -(logq.exp() * logq).sum()
        if H.item() < delta:  # checked before each step
            stopped = True; break
        kl = torch.where(p > 0, p * (logp - logq), torch.zeros_like(p)).sum()
        loss = H + lam * kl
        opt.zero_grad(); loss.backward(); opt.step()
        steps.append({"H": H.item() + 0.0, "kl": kl.item(), "loss": loss.item()})
        zs.append(scatter(z, fin, zf.detach()))
    return scatter(z, fin, zf.detach()), steps, zs, stopped


def scatter(z, fin, zf):
    out = z.clone(); out[fin] = zf
    return out


def manual_adam(z, lr, K, lam, b1=0.9, b2=0.999, eps=1e-8):
    """Hand-written Adam with analytic gradients (finite rows, no early stop), to pin the formula."""
    p = torch.softmax(z, -1); m = torch.zeros_like(z); v = torch.zeros_like(z); x = z.clone()
    for t in range(1, K + 1):
        q = torch.softmax(x, -1); logq = torch.log_softmax(x, -1); H = -(q * logq).sum()
        g = -q * (logq + H) + lam * (q - p)  # dH/dz' + lam * dKL(p||q)/dz'
        m = b1 * m + (1 - b1) * g; v = b2 * v + (1 - b2) * g * g
        x = x - (lr / (1 - b1 ** t)) * m / ((v.sqrt() / math.sqrt(1 - b2 ** t)) + eps)
    return x


def vec(t):  # JSON has no -inf: masked entries are written as null
    return [None if not math.isfinite(v) else v for v in t.tolist()]


def summary(z):
    fin = torch.isfinite(z); vals, idx = torch.topk(torch.where(fin, z, -math.inf), min(16, z.numel()))
    stride = [int(i) for i in torch.linspace(0, z.numel() - 1, 32).round()]
    return {"first16": vec(z[:16]), "strided32": [[i, z[i].item()] for i in stride], "top16": [[int(i), float(v)] for i, v in zip(idx, vals)],
            "sum": z[fin].sum().item(), "max": z[fin].max().item(), "entropy": entropy(z[fin]).item()}


def run_case(name, desc, z, delta, lr, K, lam, inp=None):
    V = z.numel(); fin = torch.isfinite(z)
    zf, steps, zs, stopped = em_inf(z, delta, lr, K, lam)
    for s, zk in zip(steps, zs):
        s["z_after" if V <= 16 else "z_after_first16"] = vec(zk[:16])
    if steps:  # independent check of torch's Adam
        assert torch.allclose(manual_adam(z[fin], lr, len(steps), lam), zf[fin], rtol=0, atol=1e-12), name
    assert torch.equal(torch.isfinite(zf), fin) and not torch.isnan(zf).any(), name
    z32, steps32, _, _ = em_inf(z, delta, lr, K, lam, torch.float32)
    d32 = (z32.double()[fin] - zf[fin]).abs()
    case = {"name": name, "description": desc, "V": V, "n_masked": int((~fin).sum()),
            "params": {"delta": delta, "lr": lr, "K": K, "lambda": lam},
            "input": inp if inp is not None else {"logits": vec(z)},
            "steps_taken": len(steps), "stopped_by_threshold": stopped, "steps": steps,
            "final_entropy": entropy(zf[fin]).item() + 0.0 if fin.any() else 0.0,
            "final": {"z": vec(zf)} if V <= 1000 else summary(zf)}
    if steps:
        d1 = (zs[0][fin] - z[fin]).abs()
        case["step1_abs_delta_min_max"] = [d1.min().item(), d1.max().item()]
        case["step1_n_abs_delta_ge_0.999lr"] = int((d1 >= 0.999 * lr).sum())  # |g| >~ 1e-5
        case["step1_n_abs_delta_lt_0.5lr"] = int((d1 < 0.5 * lr).sum())  # |g| < eps = 1e-8
    case["torch_f32_comparison"] = {"steps_taken": len(steps32),
        "max_abs_diff_final_z": d32.max().item() if d32.numel() else 0.0,
        "n_entries_diff_gt_1e-3": int((d32 > 1e-3).sum())}
    print(f"{name:28s} V={V:6d} steps={len(steps)} stopped={stopped} H0={steps[0]['H'] if steps else None} "
          f"Hfinal={case['final_entropy']:.6g} f32maxdiff={case['torch_f32_comparison']['max_abs_diff_final_z']:.3g}")
    return case


def grad_row(name, z, T):
    fin = torch.isfinite(z); g = torch.zeros_like(z); H = 0.0
    if fin.any():
        zf = z[fin].clone().requires_grad_()
        Ht = entropy(zf / T); Ht.backward(); g[fin] = zf.grad; H = Ht.item()
        x = z[fin] / T; p = torch.softmax(x, -1)  # docs/methods.md, "Entropy gradient", as a cross-check
        assert torch.allclose(g[fin], -(1 / T) * p * (x - (p * x).sum()), rtol=0, atol=1e-14)
    return {"name": name, "V": z.numel(), "T": T, "logits": vec(z), "H": H, "grad": g.tolist()}


def normal(seed, V, std):
    return f32(torch.randn(V, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * std)


def masked(seed, V, frac, std):
    z = normal(seed, V, std)
    z[torch.randperm(V, generator=torch.Generator().manual_seed(seed + 1))[: int(frac * V)]] = -math.inf
    return z


def main():
    torch.set_num_threads(1)
    D = dict(delta=0.3, lr=0.1, K=5, lam=0.001)
    zf_ = sine_logits(151936); ze = splitmix64_normal(2025, 32000, 4.0)
    check = lambda z: {"first16": vec(z[:16]), "sum": z.sum().item(), "max": z.max().item(), "argmax": int(z.argmax())}
    boosted = normal(26, 7, 2.0); boosted[0] += 7.5; boosted = f32(boosted)
    peaked = torch.zeros(100, dtype=torch.float64); peaked[42] = 30.0
    cases = [
        run_case("a_v7_defaults", "V=7, N(0,2), seed 1", normal(1, 7, 2.0), **D),
        run_case("b_v7_delta0_k10", "V=7, N(0,2), seed 2, never stops early", normal(2, 7, 2.0), 0.0, 0.1, 10, 0.05),
        run_case("c_v1000_defaults", "V=1000, N(0,3), seed 3", normal(3, 1000, 3.0), **D),
        run_case("d_v1000_masked30", "V=1000, N(0,3), seed 4, 300 entries -inf (randperm seed 5)",
                 masked(4, 1000, 0.3, 3.0), 0.1, 0.1, 5, 0.05),
        run_case("e_v32000_math_eval", "V=32000, splitmix64 Irwin-Hall N(0,4)", ze, 0.3, 0.1, 3, 0.05,
                 inp={"formula": "splitmix64_irwin_hall", "seed": 2025, "scale": 4.0, "check": check(ze)}),
        run_case("f_v151936_sine_defaults", "V=151936, z_i = 6 sin(0.7 i) + 0.001 i", zf_, **D,
                 inp={"formula": "sine", "expr": "f32(6.0*sin(0.7*i) + 0.001*i), f64 arithmetic, i = 0..V-1",
                      "check": check(zf_)}),
        run_case("k_v7_early_stop", "V=7, N(0,2) seed 26 then z[0] += 7.5 (f32): stops before step 4",
                 boosted, **D),
        run_case("g_v100_peaked", "V=100, z[42]=30, rest 0: already below delta", peaked, **D),
        run_case("h_v1", "V=1: H=0, zero steps", f32([1.5]), **D),
        run_case("i_v1_delta0", "extra: V=1, delta=0: 3 steps with zero gradient, z unchanged", f32([1.5]), 0.0, 0.1, 3, 0.05),
        run_case("j_all_masked", "extra: V=4, all -inf: H=0, zero steps, stays -inf", torch.full((4,), -math.inf, dtype=torch.float64), **D),
    ]
    rows = [("v7", normal(11, 7, 2.0)), ("v1000", normal(12, 1000, 3.0)),
            ("v100_masked30", masked(13, 100, 0.3, 2.0)), ("v4_all_masked", torch.full((4,), -math.inf, dtype=torch.float64))]
    grads = [grad_row(n, z, T) for n, z in rows for T in (1.0, 0.5)]
    doc = {"generated_by": "tests/reference/em_inf_reference.py", "torch": torch.__version__, "dtype": "float64",
           "splitmix64_irwin_hall": "state=seed; per draw: state+=0x9E3779B97F4A7C15; x=state; x=(x^(x>>30))*0xBF58476D1CE4E5B9; "
               "x=(x^(x>>27))*0x94D049BB133111EB; x^=x>>31 (all mod 2^64); u=(x>>11)*2^-53. z_i = f32(scale*((u_0+...+u_11) - 6)), "
               "12 consecutive draws per logit, summed left to right in f64 from 0.0",
           "adam": "torch.optim.Adam defaults: m=b1*m+(1-b1)g; v=b2*v+(1-b2)g^2; z-=(lr/(1-b1^t))*m/(sqrt(v)/sqrt(1-b2^t)+eps), "
               "b1=0.9, b2=0.999, eps=1e-8",
           "null_means": "-inf (masked logit)", "em_inf": cases, "entropy_grad": grads}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write(dumps(doc) + "\n")
    print(OUT, os.path.getsize(OUT), "bytes")


def dumps(o, ind=0):  # indented objects, number lists on one line
    pad = " " * (ind + 1)
    if isinstance(o, dict):
        return "{\n" + ",\n".join(pad + json.dumps(k) + ": " + dumps(v, ind + 1) for k, v in o.items()) + "\n" + " " * ind + "}"
    if isinstance(o, list) and any(isinstance(x, dict) for x in o):
        return "[\n" + ",\n".join(pad + dumps(x, ind + 1) for x in o) + "\n" + " " * ind + "]"
    return json.dumps(o, allow_nan=False)


if __name__ == "__main__":
    main()
