//! Plain f64 implementations of every op: the oracle each backend is tested
//! against. Written for clarity, not speed; inputs are f32 as the backends see
//! them, outputs f64.

use crate::{AttentionShape, EmInfParams};

pub fn rms_norm(x: &[f32], dim: usize, w: &[f32], eps: f32) -> Vec<f64> {
    x.chunks(dim)
        .flat_map(|row| {
            let ms = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / dim as f64;
            let inv = 1.0 / (ms + eps as f64).sqrt();
            row.iter().zip(w).map(move |(&v, &w)| v as f64 * inv * w as f64).collect::<Vec<_>>()
        })
        .collect()
}

/// y [m, n] = x [m, k] · w [n, k]ᵀ + b.
pub fn linear(x: &[f32], w: &[f32], bias: Option<&[f32]>, m: usize, n: usize, k: usize) -> Vec<f64> {
    let mut y = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let dot: f64 = (0..k).map(|p| x[i * k + p] as f64 * w[j * k + p] as f64).sum();
            y[i * n + j] = dot + bias.map_or(0.0, |b| b[j] as f64);
        }
    }
    y
}

/// Rotate-half RoPE: (a, b) = (x[i], x[i + d/2]) → (a cos − b sin, b cos + a sin).
pub fn rope(x: &[f32], cols: usize, head_dim: usize, positions: &[u32], theta: f32) -> Vec<f64> {
    let half = head_dim / 2;
    let mut y: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    for (r, &pos) in positions.iter().enumerate() {
        for h in 0..cols / head_dim {
            let base = r * cols + h * head_dim;
            for i in 0..half {
                let angle = pos as f64 / (theta as f64).powf(2.0 * i as f64 / head_dim as f64);
                let (a, b) = (x[base + i] as f64, x[base + i + half] as f64);
                y[base + i] = a * angle.cos() - b * angle.sin();
                y[base + i + half] = b * angle.cos() + a * angle.sin();
            }
        }
    }
    y
}

/// Causal GQA attention; k and v are [capacity, kv_heads · head_dim].
pub fn attention(q: &[f32], k: &[f32], v: &[f32], s: AttentionShape) -> Vec<f64> {
    let (h, kvh, d) = (s.n_heads, s.n_kv_heads, s.head_dim);
    let t = q.len() / (h * d);
    let mut out = vec![0f64; q.len()];
    for i in 0..t {
        for head in 0..h {
            let kv = head / (h / kvh);
            let qrow = &q[(i * h + head) * d..][..d];
            let n_keys = s.start_pos + i + 1;
            let scores: Vec<f64> = (0..n_keys)
                .map(|j| {
                    let krow = &k[(j * kvh + kv) * d..][..d];
                    qrow.iter().zip(krow).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>() / (d as f64).sqrt()
                })
                .collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let sum: f64 = exps.iter().sum();
            for (j, e) in exps.iter().enumerate() {
                let vrow = &v[(j * kvh + kv) * d..][..d];
                for (o, &vv) in out[(i * h + head) * d..][..d].iter_mut().zip(vrow) {
                    *o += e / sum * vv as f64;
                }
            }
        }
    }
    out
}

pub fn silu_mul(gate: &[f32], up: &[f32]) -> Vec<f64> {
    gate.iter().zip(up).map(|(&g, &u)| g as f64 / (1.0 + (-(g as f64)).exp()) * u as f64).collect()
}

/// Two-pass textbook (lse, H) in f64: lse = max + log Σ e^{x−max}, H = lse − Σ p·x.
/// Rows of only −inf (and empty rows) give (−inf, 0).
pub fn softmax_entropy(row: &[f32], inv_temperature: f32) -> (f64, f64) {
    let x: Vec<f64> = row.iter().map(|&z| z as f64 * inv_temperature as f64).collect();
    let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return (f64::NEG_INFINITY, 0.0);
    }
    let sum: f64 = x.iter().map(|&v| (v - max).exp()).sum();
    let lse = max + sum.ln();
    let mean: f64 = x.iter().filter(|v| v.is_finite()).map(|&v| (v - lse).exp() * v).sum();
    (lse, lse - mean)
}

/// Self-certainty KL(U ‖ p) of softmax(z·inv_t) in f64 from the definition, over the n
/// unmasked entries: −log n − (1/n)·Σ_j log p_j. Rows with nothing unmasked give 0.
pub fn self_certainty(row: &[f32], inv_temperature: f32) -> f64 {
    let (lse, _) = softmax_entropy(row, inv_temperature);
    let log_p: Vec<f64> =
        row.iter().filter(|z| z.is_finite()).map(|&z| z as f64 * inv_temperature as f64 - lse).collect();
    if log_p.is_empty() {
        return 0.0;
    }
    let n = log_p.len() as f64;
    -n.ln() - log_p.iter().sum::<f64>() / n
}

/// ∂H/∂z of H(softmax(z·inv_t)) in f64 from the definition: −inv_t·p_i·(log p_i + H).
/// Masked entries (p = 0) get 0.
pub fn entropy_grad(row: &[f32], inv_temperature: f32) -> Vec<f64> {
    let (lse, h) = softmax_entropy(row, inv_temperature);
    row.iter()
        .map(|&z| {
            let x = z as f64 * inv_temperature as f64;
            if x == f64::NEG_INFINITY || lse == f64::NEG_INFINITY {
                return 0.0;
            }
            let log_p = x - lse;
            -(inv_temperature as f64) * log_p.exp() * (log_p + h)
        })
        .collect()
}

/// log p(target) under softmax(z·inv_t), in f64.
pub fn token_logprob(row: &[f32], target: usize, inv_temperature: f32) -> f64 {
    row[target] as f64 * inv_temperature as f64 - softmax_entropy(row, inv_temperature).0
}

/// ∂/∂z of d_logp·log p(target) + d_entropy·H in f64 from the definitions:
/// d_logp·inv_t·(1[i = target] − p_i) + d_entropy·∂H/∂z_i; 0 at masked (−inf) logits,
/// a masked target included.
pub fn policy_grad(row: &[f32], target: usize, d_logp: f32, d_entropy: f32, inv_temperature: f32) -> Vec<f64> {
    let (lse, _) = softmax_entropy(row, inv_temperature);
    let inv_t = inv_temperature as f64;
    entropy_grad(row, inv_temperature)
        .into_iter()
        .zip(row)
        .enumerate()
        .map(|(i, (dh, &z))| {
            let p = (z as f64 * inv_t - lse).exp();
            if z == f32::NEG_INFINITY {
                return 0.0;
            }
            let one_hot = if i == target { 1.0 } else { 0.0 };
            d_logp as f64 * inv_t * (one_hot - p) + d_entropy as f64 * dh
        })
        .collect()
}

/// EM-INF in f64, written from the definition: full softmax each step, gradient of
/// H + λ·KL(p‖q) as −q(log q + H) + λ(q − p), torch.optim.Adam's update.
/// Returns (z′, steps, entropy per step before the step, final entropy).
pub fn em_inf(row: &[f32], prm: &EmInfParams) -> (Vec<f64>, u32, Vec<f64>, f64) {
    let z0: Vec<f64> = row.iter().map(|&v| v as f64).collect();
    let softmax = |z: &[f64]| -> Vec<f64> {
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = z.iter().map(|&v| (v - max).exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|v| v / s).collect()
    };
    let entropy = |q: &[f64]| -> f64 { q.iter().filter(|&&x| x > 0.0).map(|&x| -x * x.ln()).sum() };
    let p = softmax(&z0);
    let mut z = z0.clone();
    let (mut m, mut v) = (vec![0f64; z.len()], vec![0f64; z.len()]);
    let mut history = Vec::new();
    let mut steps = 0;
    let (b1, b2) = (prm.beta1 as f64, prm.beta2 as f64);
    loop {
        let q = softmax(&z);
        let h = entropy(&q);
        if steps == prm.max_steps || h < prm.threshold as f64 {
            return (z, steps, history, h);
        }
        history.push(h);
        steps += 1;
        for i in 0..z.len() {
            if q[i] == 0.0 {
                continue;
            }
            let g = -q[i] * (q[i].ln() + h) + prm.kl_weight as f64 * (q[i] - p[i]);
            m[i] = b1 * m[i] + (1.0 - b1) * g;
            v[i] = b2 * v[i] + (1.0 - b2) * g * g;
            let m_hat = m[i] / (1.0 - b1.powi(steps as i32));
            let v_hat = v[i] / (1.0 - b2.powi(steps as i32));
            z[i] -= prm.lr as f64 * m_hat / (v_hat.sqrt() + prm.eps as f64);
        }
    }
}
