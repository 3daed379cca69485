//! ∂H/∂z for H = entropy of softmax(z/T): −(1/T)·p_i·(x_i − Σ p x), with the row mean
//! Σ p x = lse − H taken from the forward pass — never from log p_i, which
//! underflows for tiny probabilities (PAPER.md "Numerics").

use rayon::prelude::*;

use super::simd::{exp_f32, vectorized, Element};
use super::{dims2, output, CpuStorage, CpuTensor};
use crate::{Backend, Result};

pub fn entropy_grad(
    logits: &CpuTensor,
    lse: &CpuTensor,
    entropy: &CpuTensor,
    upstream: &CpuTensor,
    inv_t: f32,
) -> Result<CpuTensor> {
    let (rows, cols) = dims2("entropy_grad", logits)?;
    crate::checks::entropy_grad(rows, lse.len(), entropy.len(), upstream.len())?;
    let b = super::CpuBackend;
    let (lse, ent, up) = (b.to_host_f32(lse)?, b.to_host_f32(entropy)?, b.to_host_f32(upstream)?);
    let mut out = vec![0f32; rows * cols];
    fn run<E: Element>(z: &[E], out: &mut [f32], cols: usize, inv_t: f32, lse: &[f32], ent: &[f32], up: &[f32]) {
        out.par_chunks_mut(cols.max(1)).enumerate().for_each(|(r, g)| {
            if lse[r] == f32::NEG_INFINITY {
                return; // fully masked row: zero gradient
            }
            let mean = lse[r] - ent[r];
            let scale = -inv_t * up[r];
            vectorized(|| {
                for (g, zi) in g.iter_mut().zip(&z[r * cols..(r + 1) * cols]) {
                    let x = zi.to_f32() * inv_t;
                    let p = exp_f32(x - lse[r]);
                    *g = if p > 0.0 { scale * p * (x - mean) } else { 0.0 };
                }
            });
        });
    }
    match logits.storage() {
        CpuStorage::F32(z) => run(z, &mut out, cols, inv_t, &lse, &ent, &up),
        CpuStorage::F16(z) => run(z, &mut out, cols, inv_t, &lse, &ent, &up),
        CpuStorage::BF16(z) => run(z, &mut out, cols, inv_t, &lse, &ent, &up),
    }
    Ok(output(out, &[rows, cols]))
}
