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

/// Per query row i and head h, with p = softmax(scale·q·kⱼ) over keys j ≤ start_pos + i:
/// dvⱼ += pⱼ·do, dsⱼ = pⱼ·(do·vⱼ − Σₗ pₗ·do·vₗ), dq = scale·Σⱼ dsⱼ·kⱼ, dkⱼ += scale·dsⱼ·q.
/// Work is split by kv head: each owns its columns of dk, dv and of dq (its query heads),
/// so no two threads write the same gradient.
pub fn attention_backward(
    q: &CpuTensor,
    k: &CpuTensor,
    v: &CpuTensor,
    dout: &CpuTensor,
    s: AttentionShape,
) -> Result<(CpuTensor, CpuTensor, CpuTensor)> {
    let (t, qdim) = dims2("attention_backward", q)?;
    let (capacity, kvdim) = dims2("attention_backward", k)?;
    crate::checks::attention(q.shape(), k.shape(), v.shape(), s)?;
    if dout.shape() != q.shape() {
        return Err(crate::EngineError::shape(
            "attention_backward",
            format!("dout {:?}, q {:?}", dout.shape(), q.shape()),
        ));
    }
    let AttentionShape { n_heads, n_kv_heads, head_dim, start_pos } = s;
    let f = |t| f32_data("attention_backward", t);
    let (qs, ks, vs, dos) = (f(q)?, f(k)?, f(v)?, f(dout)?);
    let group = n_heads / n_kv_heads;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let per_kv_head: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = (0..n_kv_heads)
        .into_par_iter()
        .map(|g| {
            let kv_off = g * head_dim;
            let mut dq = vec![0f32; t * group * head_dim];
            let (mut dk, mut dv) = (vec![0f32; capacity * head_dim], vec![0f32; capacity * head_dim]);
            for i in 0..t {
                let n_keys = start_pos + i + 1;
                for hg in 0..group {
                    let h = g * group + hg;
                    let qrow = &qs[i * qdim + h * head_dim..][..head_dim];
                    let drow = &dos[i * qdim + h * head_dim..][..head_dim];
                    let key = |j: usize| &ks[j * kvdim + kv_off..][..head_dim];
                    let val = |j: usize| &vs[j * kvdim + kv_off..][..head_dim];
                    let mut p: Vec<f32> = (0..n_keys).map(|j| dot(qrow, key(j)) * scale).collect();
                    let max = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0f32;
                    p.iter_mut().for_each(|x| {
                        *x = (*x - max).exp();
                        sum += *x;
                    });
                    p.iter_mut().for_each(|x| *x /= sum);
                    let dp: Vec<f32> = (0..n_keys).map(|j| dot(drow, val(j))).collect();
                    let mean: f32 = p.iter().zip(&dp).map(|(a, b)| a * b).sum();
                    let dqrow = &mut dq[(i * group + hg) * head_dim..][..head_dim];
                    // Whole-row zips (no per-element index checks) so the AVX2 build of
                    // `vectorized` turns these axpys into vector code.
                    vectorized(|| {
                        for j in 0..n_keys {
                            let ds = p[j] * (dp[j] - mean) * scale;
                            let (dkj, dvj) = (&mut dk[j * head_dim..][..head_dim], &mut dv[j * head_dim..][..head_dim]);
                            dqrow.iter_mut().zip(key(j)).for_each(|(a, &k)| *a += ds * k);
                            dkj.iter_mut().zip(qrow).for_each(|(a, &q)| *a += ds * q);
                            dvj.iter_mut().zip(drow).for_each(|(a, &d)| *a += p[j] * d);
                        }
                    });
                }
            }
            (dq, dk, dv)
        })
        .collect();
    let mut dq = vec![0f32; t * qdim];
    let (mut dk, mut dv) = (vec![0f32; capacity * kvdim], vec![0f32; capacity * kvdim]);
    for (g, (gq, gk, gv)) in per_kv_head.iter().enumerate() {
        for i in 0..t {
            let width = group * head_dim;
            dq[i * qdim + g * width..][..width].copy_from_slice(&gq[i * width..][..width]);
        }
        for j in 0..capacity {
            dk[j * kvdim + g * head_dim..][..head_dim].copy_from_slice(&gk[j * head_dim..][..head_dim]);
            dv[j * kvdim + g * head_dim..][..head_dim].copy_from_slice(&gv[j * head_dim..][..head_dim]);
        }
    }
    Ok((output(dq, &[t, qdim]), output(dk, &[capacity, kvdim]), output(dv, &[capacity, kvdim])))
}
