//! Causal grouped-query attention over a KV cache of shape [capacity, kv_heads · head_dim].

use rayon::prelude::*;

use super::simd::{dot, vectorized};
use super::{dims2, f32_data, f32_data_mut, output, CpuTensor};
use crate::{AttentionShape, Result};

pub fn write_kv(cache: &mut CpuTensor, x: &CpuTensor, start_pos: usize) -> Result<()> {
    let (capacity, dim) = dims2("write_kv", cache)?;
    let (t, xdim) = dims2("write_kv", x)?;
    crate::checks::write_kv(capacity, dim, t, xdim, start_pos)?;
    let src = f32_data("write_kv", x)?;
    f32_data_mut("write_kv", cache)?[start_pos * dim..(start_pos + t) * dim].copy_from_slice(src);
    Ok(())
}

pub fn attention(q: &CpuTensor, k: &CpuTensor, v: &CpuTensor, s: AttentionShape) -> Result<CpuTensor> {
    let (t, qdim) = dims2("attention", q)?;
    let kvdim = k.cols();
    crate::checks::attention(q.shape(), k.shape(), v.shape(), s)?;
    let AttentionShape { n_heads, n_kv_heads, head_dim, start_pos } = s;
    let (qs, ks, vs) = (f32_data("attention", q)?, f32_data("attention", k)?, f32_data("attention", v)?);
    let group = n_heads / n_kv_heads;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let mut out = vec![0f32; t * qdim];
    out.par_chunks_mut(head_dim).enumerate().for_each(|(idx, o)| {
        let (i, h) = (idx / n_heads, idx % n_heads);
        let kv_off = (h / group) * head_dim;
        let qrow = &qs[i * qdim + h * head_dim..][..head_dim];
        let n_keys = start_pos + i + 1;
        vectorized(|| {
            let mut scores: Vec<f32> =
                (0..n_keys).map(|j| dot(qrow, &ks[j * kvdim + kv_off..][..head_dim]) * scale).collect();
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for s in scores.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            let inv = 1.0 / sum;
            for (j, &p) in scores.iter().enumerate() {
                let vrow = &vs[j * kvdim + kv_off..][..head_dim];
                let w = p * inv;
                for (o, &v) in o.iter_mut().zip(vrow) {
                    *o += w * v;
                }
            }
        });
    });
    Ok(output(out, &[t, qdim]))
}
