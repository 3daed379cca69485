//! The fused EM-INF loop (docs/methods.md, "EM-INF"): z′, the Adam moments and the row's
//! original logits stay in buffers reused across calls for all K steps. Each step is
//! one pass over the row — gradient and Adam update, then the online softmax-entropy
//! of the updated segment — because the gradient needs only Σ q z′ = lse − H from the
//! previous step's entropy. Each row is cut into the fixed segments of softmax-entropy
//! (`entropy::SEGMENT`), spread over the threads and merged in row order, so a single
//! row (decoding: one row per token) uses every core and a row's result is the same
//! bits whatever the thread count or the number of rows in the call.
//!
//! ∂/∂z′_i [H(q) + λ·KL(p‖q)] = −q_i (z′_i − Σ q z′) + λ (q_i − p_i),
//! with q = softmax(z′), p = softmax(z).

use std::sync::Mutex;

use rayon::prelude::*;

use super::entropy::{merge_in_order, row_state_parallel, segment_state, Online, SEGMENT};
use super::simd::{exp_f32, vectorized, LANES};
use super::{dims2, output, CpuTensor};
use crate::Backend;
use crate::{EmInfParams, EmInfRowStats, EngineError, Result};

pub fn em_inf(logits: &CpuTensor, params: &EmInfParams) -> Result<(CpuTensor, Vec<EmInfRowStats>)> {
    params.validate()?;
    let (rows, cols) = dims2("em_inf", logits)?;
    // z′ is f32 whatever the logits' storage; 16-bit logits are widened once here.
    let mut z = super::CpuBackend.to_host_f32(logits)?;
    let stats: Vec<Result<EmInfRowStats>> = z
        .par_chunks_mut(cols.max(1))
        .enumerate()
        .map(|(r, row)| em_inf_row(row, params).ok_or(EngineError::NonFinite { row: r, what: "NaN or +inf" }))
        .collect();
    let stats = stats.into_iter().collect::<Result<Vec<_>>>()?;
    Ok((output(z, &[rows, cols]), stats))
}

/// Scratch (original row, Adam moments) reused across calls: decoding calls em_inf once
/// per token, and fresh 1.8 MB buffers would page-fault each time. Rows running at the
/// same time each take a buffer from the pool and give it back.
static SCRATCH: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// Optimise one row in place, its segments processed in parallel; None if the row holds
/// NaN or +inf.
pub fn em_inf_row(z: &mut [f32], prm: &EmInfParams) -> Option<EmInfRowStats> {
    let (lse0, h0) = row_state_parallel(z, 1.0).finish();
    if h0.is_nan() {
        return None;
    }
    let mut stats = EmInfRowStats { steps: 0, entropy_before: h0, entropy_after: h0 };
    if lse0 == f32::NEG_INFINITY || h0 < prm.threshold || prm.max_steps == 0 {
        return Some(stats);
    }
    let mut scratch = SCRATCH.lock().expect("scratch pool").pop().unwrap_or_default();
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
        let parts: Vec<Online> = z
            .par_chunks_mut(SEGMENT)
            .zip(orig.par_chunks(SEGMENT))
            .zip(m.par_chunks_mut(SEGMENT))
            .zip(v.par_chunks_mut(SEGMENT))
            .map(|(((zs, os), ms), vs)| vectorized!(step_segment(&c, zs, os, ms, vs)))
            .collect();
        (lse, h) = merge_in_order(parts).finish();
    }
    stats.entropy_after = h;
    SCRATCH.lock().expect("scratch pool").push(scratch);
    Some(stats)
}

/// One Adam step over a segment, then the online entropy state of its new values.
#[inline(always)]
fn step_segment(c: &StepConsts, z: &mut [f32], orig: &[f32], m: &mut [f32], v: &mut [f32]) -> Online {
    // A local copy: through the reference LLVM cannot prove the stores below leave the
    // constants alone, reloads them per element and does not vectorise (3× slower).
    let c = &c.clone();
    let mut zc = z.chunks_exact_mut(LANES);
    let mut oc = orig.chunks_exact(LANES);
    let mut mc = m.chunks_exact_mut(LANES);
    let mut vc = v.chunks_exact_mut(LANES);
    for (((zs, os), ms), vs) in (&mut zc).zip(&mut oc).zip(&mut mc).zip(&mut vc) {
        for l in 0..LANES {
            adam_update(c, &mut zs[l], os[l], &mut ms[l], &mut vs[l]);
        }
    }
    let tails = zc.into_remainder().iter_mut().zip(oc.remainder()).zip(mc.into_remainder()).zip(vc.into_remainder());
    for (((zi, &oi), mi), vi) in tails {
        adam_update(c, zi, oi, mi, vi);
    }
    segment_state(z, 1.0)
}

/// What one Adam step needs besides the per-element state.
#[derive(Clone, Copy)]
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
