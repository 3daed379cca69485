//! The fused EM-INF loop (PAPER.md "EM-INF"), one row per task: z′, the Adam
//! moments and the row's original logits stay in one task's buffers for all K
//! steps. Each step is two passes over the row: the online softmax-entropy (which
//! also decides the early stop), then gradient and Adam update together. The
//! gradient needs Σ q x, which is lse − H, so no third pass.
//!
//! ∂/∂z′_i [H(q) + λ·KL(p‖q)] = −q_i (z′_i − Σ q z′) + λ (q_i − p_i),
//! with q = softmax(z′), p = softmax(z).

use rayon::prelude::*;

use super::entropy::softmax_entropy_row;
use super::simd::{exp_f32, vectorized};
use super::{dims2, f32_data, output, CpuTensor};
use crate::{EmInfParams, EmInfRowStats, EngineError, Result};

pub fn em_inf(logits: &CpuTensor, params: &EmInfParams) -> Result<(CpuTensor, Vec<EmInfRowStats>)> {
    params.validate()?;
    let (rows, cols) = dims2("em_inf", logits)?;
    let mut z = f32_data("em_inf", logits)?.to_vec();
    let stats: Vec<Result<EmInfRowStats, EngineError>> = z
        .par_chunks_mut(cols.max(1))
        .enumerate()
        .map(|(r, row)| {
            vectorized(|| em_inf_row(row, params)).ok_or(EngineError::NonFinite { row: r, what: "NaN or +inf" })
        })
        .collect();
    let stats = stats.into_iter().collect::<Result<Vec<_>>>()?;
    Ok((output(z, &[rows, cols]), stats[..rows.min(stats.len())].to_vec()))
}

/// Optimise one row in place; None if the row holds NaN or +inf.
#[inline(always)]
pub fn em_inf_row(z: &mut [f32], prm: &EmInfParams) -> Option<EmInfRowStats> {
    let (lse0, h0) = softmax_entropy_row(z, 1.0);
    if h0.is_nan() {
        return None;
    }
    let mut stats = EmInfRowStats { steps: 0, entropy_before: h0, entropy_after: h0 };
    if lse0 == f32::NEG_INFINITY || h0 < prm.threshold || prm.max_steps == 0 {
        return Some(stats);
    }
    let orig = z.to_vec();
    let mut m = vec![0f32; z.len()];
    let mut v = vec![0f32; z.len()];
    let (mut lse, mut h) = (lse0, h0);
    let (b1, b2, lambda) = (prm.beta1, prm.beta2, prm.kl_weight);
    while stats.steps < prm.max_steps && h >= prm.threshold {
        stats.steps += 1;
        let t = stats.steps as i32;
        let step = prm.lr / (1.0 - b1.powi(t));
        let inv_sqrt_bc2 = 1.0 / (1.0 - b2.powi(t)).sqrt();
        let mean = lse - h;
        for (((zi, &oi), mi), vi) in z.iter_mut().zip(&orig).zip(m.iter_mut()).zip(v.iter_mut()) {
            let x = *zi;
            let q = exp_f32(x - lse);
            let p = exp_f32(oi - lse0);
            // q = 0 covers masked (−inf) entries: their gradient and moments stay 0 and x stays −inf.
            let g = if x > f32::NEG_INFINITY { -q * (x - mean) + lambda * (q - p) } else { 0.0 };
            *mi = b1 * *mi + (1.0 - b1) * g;
            *vi = b2 * *vi + (1.0 - b2) * g * g;
            // torch.optim.Adam: z −= lr/bc1 · m / (√v/√bc2 + ε)
            let upd = step * *mi / ((*vi).sqrt() * inv_sqrt_bc2 + prm.eps);
            *zi = if x > f32::NEG_INFINITY { x - upd } else { x };
        }
        (lse, h) = softmax_entropy_row(z, 1.0);
    }
    stats.entropy_after = h;
    Some(stats)
}
