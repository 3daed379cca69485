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
use super::simd::{exp_f32, vectorized, LANES};
use super::{dims2, output, CpuTensor};
use crate::Backend;
use crate::{EmInfParams, EmInfRowStats, EngineError, Result};

pub fn em_inf(logits: &CpuTensor, params: &EmInfParams) -> Result<(CpuTensor, Vec<EmInfRowStats>)> {
    params.validate()?;
    let (rows, cols) = dims2("em_inf", logits)?;
    // z′ is f32 whatever the logits' storage; 16-bit logits are widened once here.
    let mut z = super::CpuBackend.to_host_f32(logits)?;
    let stats: Vec<Result<EmInfRowStats, EngineError>> = z
        .par_chunks_mut(cols.max(1))
        .enumerate()
        .map(|(r, row)| {
            vectorized(|| em_inf_row(row, params)).ok_or(EngineError::NonFinite { row: r, what: "NaN or +inf" })
        })
        .collect();
    let stats = stats.into_iter().collect::<Result<Vec<_>>>()?;
    Ok((output(z, &[rows, cols]), stats))
}

thread_local! {
    /// Per-thread scratch (original row, Adam moments) reused across calls: decoding
    /// calls em_inf once per token, and fresh 1.8 MB buffers would page-fault each time.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
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
    // Taken out of the thread-local (not borrowed in a closure) so that the loop below is
    // compiled inside the caller's AVX2 context rather than in `LocalKey::with`.
    let mut scratch = SCRATCH.with_borrow_mut(std::mem::take);
    {
        let n = z.len();
        scratch.clear();
        scratch.extend_from_slice(z);
        scratch.resize(3 * n, 0.0);
        let (orig, moments) = scratch.split_at_mut(n);
        let (m, v) = moments.split_at_mut(n);
        let (mut lse, mut h) = (lse0, h0);
        while stats.steps < prm.max_steps && h >= prm.threshold {
            stats.steps += 1;
            let t = stats.steps as i32;
            let c = StepConsts {
                mean: lse - h,
                lse,
                lse0,
                lambda: prm.kl_weight,
                b1: prm.beta1,
                b2: prm.beta2,
                step: prm.lr / (1.0 - prm.beta1.powi(t)),
                inv_sqrt_bc2: 1.0 / (1.0 - prm.beta2.powi(t)).sqrt(),
                eps: prm.eps,
            };
            let mut zc = z.chunks_exact_mut(LANES);
            let mut oc = orig.chunks_exact(LANES);
            let mut mc = m.chunks_exact_mut(LANES);
            let mut vc = v.chunks_exact_mut(LANES);
            for (((zs, os), ms), vs) in (&mut zc).zip(&mut oc).zip(&mut mc).zip(&mut vc) {
                for l in 0..LANES {
                    adam_update(&c, &mut zs[l], os[l], &mut ms[l], &mut vs[l]);
                }
            }
            let tails =
                zc.into_remainder().iter_mut().zip(oc.remainder()).zip(mc.into_remainder()).zip(vc.into_remainder());
            for (((zi, &oi), mi), vi) in tails {
                adam_update(&c, zi, oi, mi, vi);
            }
            (lse, h) = softmax_entropy_row(z, 1.0);
        }
        stats.entropy_after = h;
    }
    SCRATCH.with_borrow_mut(|s| *s = scratch);
    Some(stats)
}

/// What one Adam step needs besides the per-element state.
struct StepConsts {
    mean: f32,
    lse: f32,
    lse0: f32,
    lambda: f32,
    b1: f32,
    b2: f32,
    step: f32,
    inv_sqrt_bc2: f32,
    eps: f32,
}

/// One element: gradient of H + λ·KL, then torch.optim.Adam's update
/// z −= lr/bc1 · m / (√v/√bc2 + ε). Branch-free so the loop vectorises.
#[inline(always)]
fn adam_update(c: &StepConsts, z: &mut f32, orig: f32, m: &mut f32, v: &mut f32) {
    let x = *z;
    let q = exp_f32(x - c.lse);
    let p = exp_f32(orig - c.lse0);
    // Masked (−inf) entries have q = 0: their gradient and moments stay 0 and x stays −inf.
    let g = if q > 0.0 { -q * (x - c.mean) + c.lambda * (q - p) } else { 0.0 };
    *m = c.b1 * *m + (1.0 - c.b1) * g;
    *v = c.b2 * *v + (1.0 - c.b2) * g * g;
    *z = x - c.step * *m / (v.sqrt() * c.inv_sqrt_bc2 + c.eps);
}
