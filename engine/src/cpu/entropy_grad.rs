//! ∂H/∂z for H = entropy of softmax(z/T): −(1/T)·p_i·(x_i − Σ p x), with the row mean
//! Σ p x = lse − H taken from the forward pass — never from log p_i, which
//! underflows for tiny probabilities (docs/methods.md, "Entropy gradient"). The policy gradient adds
//! the log-probability term of a target token, (1/T)·d_logp·(1[i = target] − p_i), in the
//! same pass; `token_logprobs` is its forward.

use rayon::prelude::*;

use super::entropy::{BLOCK, PREFETCH_BLOCKS, SEGMENT};
use super::simd::{exp_f32, prefetch_range, vectorized, Element};
use super::{dims2, output, CpuStorage, CpuTensor};
use crate::{Backend, EngineError, Result};

/// The log-probability term of [`grad`]: each row's target and its upstream d_logp.
struct LogProbTerm<'a> {
    targets: &'a [u32],
    d_logp: Vec<f32>,
}

pub fn entropy_grad(
    logits: &CpuTensor,
    lse: &CpuTensor,
    entropy: &CpuTensor,
    upstream: &CpuTensor,
    inv_t: f32,
) -> Result<CpuTensor> {
    let (rows, _) = dims2("entropy_grad", logits)?;
    crate::checks::entropy_grad(rows, lse.len(), entropy.len(), upstream.len())?;
    grad(logits, lse, entropy, upstream, None, inv_t)
}

#[allow(clippy::too_many_arguments)]
pub fn policy_grad(
    logits: &CpuTensor,
    lse: &CpuTensor,
    entropy: &CpuTensor,
    targets: &[u32],
    d_logp: &CpuTensor,
    d_entropy: &CpuTensor,
    inv_t: f32,
) -> Result<CpuTensor> {
    let (rows, cols) = dims2("policy_grad", logits)?;
    crate::checks::policy_grad(rows, cols, targets, [lse.len(), entropy.len(), d_logp.len(), d_entropy.len()])?;
    let term = LogProbTerm { targets, d_logp: super::CpuBackend.to_host_f32(d_logp)? };
    grad(logits, lse, entropy, d_entropy, Some(term), inv_t)
}

pub fn token_logprobs(logits: &CpuTensor, lse: &CpuTensor, targets: &[u32], inv_t: f32) -> Result<CpuTensor> {
    let (rows, cols) = dims2("token_logprobs", logits)?;
    crate::checks::token_targets("token_logprobs", rows, cols, targets, &[("lse", lse.len())])?;
    let lse = super::CpuBackend.to_host_f32(lse)?;
    fn gather<E: Element>(z: &[E], cols: usize, targets: &[u32], lse: &[f32], inv_t: f32) -> Vec<f32> {
        let at = |r: usize| z[r * cols + targets[r] as usize].to_f32() as f64;
        (0..targets.len()).map(|r| (at(r) * inv_t as f64 - lse[r] as f64) as f32).collect()
    }
    let out = match logits.storage() {
        CpuStorage::F32(z) => gather(z, cols, targets, &lse, inv_t),
        CpuStorage::F16(z) => gather(z, cols, targets, &lse, inv_t),
        CpuStorage::BF16(z) => gather(z, cols, targets, &lse, inv_t),
        CpuStorage::Blocks(_) => return Err(EngineError::DType { op: "token_logprobs", dtype: logits.dtype() }),
    };
    Ok(output(out, &[rows]))
}

fn grad(
    logits: &CpuTensor,
    lse: &CpuTensor,
    entropy: &CpuTensor,
    d_entropy: &CpuTensor,
    log_prob: Option<LogProbTerm<'_>>,
    inv_t: f32,
) -> Result<CpuTensor> {
    let (rows, cols) = dims2("entropy_grad", logits)?;
    let b = super::CpuBackend;
    let (lse, ent, up) = (b.to_host_f32(lse)?, b.to_host_f32(entropy)?, b.to_host_f32(d_entropy)?);
    let mut out = vec![0f32; rows * cols];
    fn run<E: Element>(
        z: &[E],
        out: &mut [f32],
        cols: usize,
        inv_t: f32,
        (lse, ent, up): (&[f32], &[f32], &[f32]),
        log_prob: Option<&LogProbTerm<'_>>,
    ) {
        out.par_chunks_mut(cols.max(1)).enumerate().for_each(|(r, g)| {
            if lse[r] == f32::NEG_INFINITY {
                return; // fully masked row: zero gradient
            }
            let (lse, mean) = (lse[r], lse[r] - ent[r]);
            let scale = -inv_t * up[r];
            let d_logp = log_prob.map_or(0.0, |t| t.d_logp[r]);
            let c = RowConsts { inv_t, lse, mean, scale, d_logp };
            // Elementwise, so the segments (one row uses every core) change no bit.
            g.par_chunks_mut(SEGMENT)
                .zip(z[r * cols..(r + 1) * cols].par_chunks(SEGMENT))
                .for_each(|(g, z)| vectorized!(grad_segment(c, g, z)));
            if let Some(t) = log_prob {
                let target = t.targets[r] as usize;
                // A masked target gets no gradient, like every masked logit.
                if z[r * cols + target].to_f32() != f32::NEG_INFINITY {
                    g[target] += inv_t * d_logp;
                }
            }
        });
    }
    let stats = (&lse[..], &ent[..], &up[..]);
    let log_prob = log_prob.as_ref();
    match logits.storage() {
        CpuStorage::F32(z) => run(z, &mut out, cols, inv_t, stats, log_prob),
        CpuStorage::F16(z) => run(z, &mut out, cols, inv_t, stats, log_prob),
        CpuStorage::BF16(z) => run(z, &mut out, cols, inv_t, stats, log_prob),
        CpuStorage::Blocks(_) => return Err(EngineError::DType { op: "policy_grad", dtype: logits.dtype() }),
    }
    Ok(output(out, &[rows, cols]))
}

/// What a row's gradient needs besides its logits.
#[derive(Clone, Copy)]
struct RowConsts {
    inv_t: f32,
    lse: f32,
    mean: f32,
    scale: f32,
    d_logp: f32,
}

/// One segment of a row's gradient. A function of values and slices, not a closure over
/// references: through captured references LLVM could not keep the constants in
/// registers and vectorised the loop into a gather (3× slower).
#[inline(always)]
fn grad_segment<E: Element>(c: RowConsts, g: &mut [f32], z: &[E]) {
    for (i, (g, zb)) in g.chunks_mut(BLOCK).zip(z.chunks(BLOCK)).enumerate() {
        prefetch_range(z, (i + PREFETCH_BLOCKS) * BLOCK, BLOCK);
        for (g, zi) in g.iter_mut().zip(zb) {
            let x = zi.to_f32() * c.inv_t;
            let p = exp_f32(x - c.lse);
            *g = if p > 0.0 { c.scale * p * (x - c.mean) - c.inv_t * c.d_logp * p } else { 0.0 };
        }
    }
}
