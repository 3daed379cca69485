//! Causal grouped-query attention over a KV cache of shape [capacity, kv_heads · head_dim].

use rayon::prelude::*;

use super::matmul::strided_gemm;
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

/// Query rows per block of the blocked (GEMM) forward and backward: a block's scores are
/// [ROWS, keys] floats.
const ROWS: usize = 64;
/// Below this many query rows (decode) the forward dots each row with its keys directly.
const BLOCKED_MIN_ROWS: usize = 16;

pub fn attention(q: &CpuTensor, k: &CpuTensor, v: &CpuTensor, s: AttentionShape) -> Result<CpuTensor> {
    let (t, qdim) = dims2("attention", q)?;
    crate::checks::attention(q.shape(), k.shape(), v.shape(), s)?;
    let (qs, ks, vs) = (f32_data("attention", q)?, f32_data("attention", k)?, f32_data("attention", v)?);
    let out =
        if t >= BLOCKED_MIN_ROWS { attention_blocked(qs, ks, vs, t, s) } else { attention_rows(qs, ks, vs, t, s) };
    Ok(output(out, &[t, qdim]))
}

/// One task per (query row, head): scores, softmax and the weighted sum of values.
fn attention_rows(qs: &[f32], ks: &[f32], vs: &[f32], t: usize, s: AttentionShape) -> Vec<f32> {
    let AttentionShape { n_heads, n_kv_heads, head_dim, start_pos } = s;
    let (qdim, kvdim) = (n_heads * head_dim, n_kv_heads * head_dim);
    let group = n_heads / n_kv_heads;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let mut out = vec![0f32; t * qdim];
    out.par_chunks_mut(head_dim).enumerate().for_each(|(idx, o)| {
        let (i, h) = (idx / n_heads, idx % n_heads);
        let kv_off = (h / group) * head_dim;
        let qrow = &qs[i * qdim + h * head_dim..][..head_dim];
        let n_keys = start_pos + i + 1;
        vectorized!({
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
    out
}

/// One task per head, two GEMMs per block of ROWS query rows (scores, then p·v) over the
/// keys the block can see.
fn attention_blocked(qs: &[f32], ks: &[f32], vs: &[f32], t: usize, s: AttentionShape) -> Vec<f32> {
    let AttentionShape { n_heads, n_kv_heads, head_dim: d, .. } = s;
    let kvdim = n_kv_heads * d;
    let group = n_heads / n_kv_heads;
    let per_head: Vec<Vec<f32>> = (0..n_heads)
        .into_par_iter()
        .map(|h| {
            let kg = (h / group) * d;
            let mut o = vec![0f32; t * d];
            let mut p = Vec::new();
            for i0 in (0..t).step_by(ROWS) {
                let (rows, n) = block_probs(&mut p, qs, ks, s, h, i0, t);
                strided_gemm((rows, d, n), (&mut o[i0 * d..], d, 1), (&p, n, 1), (&vs[kg..], kvdim, 1), false, false);
            }
            o
        })
        .collect();
    interleave_heads(per_head.iter().map(Vec::as_slice), t, s)
}

/// Per-head `[t, head_dim]` blocks side by side as `[t, heads · head_dim]` rows.
fn interleave_heads<'a>(per_head: impl Iterator<Item = &'a [f32]>, t: usize, s: AttentionShape) -> Vec<f32> {
    let (d, qdim) = (s.head_dim, s.n_heads * s.head_dim);
    let mut out = vec![0f32; t * qdim];
    for (h, oh) in per_head.enumerate() {
        for (dst, src) in out.chunks_mut(qdim).zip(oh.chunks(d)) {
            dst[h * d..][..d].copy_from_slice(src);
        }
    }
    out
}

/// Attention probabilities of head `h` for the query rows i0.. (at most ROWS, up to `t`)
/// into `p`, one row per query over the `n` keys the block's last row sees: the scores
/// GEMM q·kᵀ, then [`causal_softmax`]. Returns (rows, n).
fn block_probs(
    p: &mut Vec<f32>,
    qs: &[f32],
    ks: &[f32],
    s: AttentionShape,
    h: usize,
    i0: usize,
    t: usize,
) -> (usize, usize) {
    let AttentionShape { n_heads, n_kv_heads, head_dim: d, start_pos } = s;
    let (qdim, kvdim) = (n_heads * d, n_kv_heads * d);
    let kg = (h / (n_heads / n_kv_heads)) * d;
    let rows = ROWS.min(t - i0);
    let n = start_pos + i0 + rows;
    p.clear();
    p.resize(rows * n, 0f32);
    // Kᵀ as a [d, n] view of the cache's [n, d] columns.
    strided_gemm((rows, n, d), (p, n, 1), (&qs[i0 * qdim + h * d..], qdim, 1), (&ks[kg..], 1, kvdim), false, false);
    causal_softmax(p, n, start_pos + i0, d);
    (rows, n)
}

/// Raw scores q·k of a block of query rows (`n` keys per row; row r sees keys
/// ..= `before` + r) into attention probabilities in place: scaled by 1/√head_dim,
/// softmaxed over the visible keys, zero beyond them.
fn causal_softmax(p: &mut [f32], n: usize, before: usize, head_dim: usize) {
    let scale = 1.0 / (head_dim as f32).sqrt();
    vectorized!({
        for (r, row) in p.chunks_mut(n).enumerate() {
            let visible = before + r + 1;
            let max = row[..visible].iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x * scale));
            let mut sum = 0f32;
            for x in &mut row[..visible] {
                *x = (*x * scale - max).exp();
                sum += *x;
            }
            let inv = 1.0 / sum;
            row[..visible].iter_mut().for_each(|x| *x *= inv);
            row[visible..].fill(0.0);
        }
    });
}

/// Per head h and query row i, with p = softmax(scale·q·kⱼ) over keys j ≤ start_pos + i:
/// dv += pᵀ·do, ds = p ⊙ (do·vᵀ − Σⱼ p·(do·vᵀ)), dq = scale·ds·k, dk += scale·dsᵀ·q —
/// five GEMMs per block of ROWS query rows, over the keys the block can see. Work is
/// split by query head (each owns its dq columns and a private dk, dv, summed over the
/// heads of a group at the end), so no two threads write the same gradient.
pub fn attention_backward(
    q: &CpuTensor,
    k: &CpuTensor,
    v: &CpuTensor,
    dout: &CpuTensor,
    s: AttentionShape,
) -> Result<(CpuTensor, CpuTensor, CpuTensor)> {
    let (t, qdim) = dims2("attention_backward", q)?;
    let (capacity, kvdim) = dims2("attention_backward", k)?;
    crate::checks::attention_backward(q.shape(), k.shape(), v.shape(), dout.shape(), s)?;
    let AttentionShape { n_heads, n_kv_heads, head_dim: d, start_pos } = s;
    let f = |t| f32_data("attention_backward", t);
    let (qs, ks, vs, dos) = (f(q)?, f(k)?, f(v)?, f(dout)?);
    let group = n_heads / n_kv_heads;
    let scale = 1.0 / (d as f32).sqrt();
    let seen = start_pos + t; // keys any query row sees
    let per_head: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = (0..n_heads)
        .into_par_iter()
        .map(|h| {
            let (qh, kg) = (h * d, (h / group) * d);
            let (mut dq, mut dk, mut dv) = (vec![0f32; t * d], vec![0f32; seen * d], vec![0f32; seen * d]);
            let (mut p, mut ds) = (Vec::new(), Vec::new());
            for i0 in (0..t).step_by(ROWS) {
                let (rows, n) = block_probs(&mut p, qs, ks, s, h, i0, t);
                ds.clear();
                ds.resize(rows * n, 0f32);
                let do_blk = (&dos[i0 * qdim + qh..], qdim, 1);
                // Vᵀ as a [d, n] view of the cache's [n, d] columns.
                strided_gemm((rows, n, d), (&mut ds, n, 1), do_blk, (&vs[kg..], 1, kvdim), false, false);
                vectorized!({
                    for (p, ds) in p.chunks(n).zip(ds.chunks_mut(n)) {
                        let mean: f32 = p.iter().zip(ds.iter()).map(|(a, b)| a * b).sum();
                        ds.iter_mut().zip(p).for_each(|(g, &p)| *g = p * (*g - mean) * scale);
                    }
                });
                let (k_rows, q_rows) = ((&ks[kg..], kvdim, 1), (&qs[i0 * qdim + qh..], qdim, 1));
                strided_gemm((rows, d, n), (&mut dq[i0 * d..], d, 1), (&ds, n, 1), k_rows, false, false);
                strided_gemm((n, d, rows), (&mut dk, d, 1), (&ds, 1, n), q_rows, true, false);
                strided_gemm((n, d, rows), (&mut dv, d, 1), (&p, 1, n), do_blk, true, false);
            }
            (dq, dk, dv)
        })
        .collect();
    let dq = interleave_heads(per_head.iter().map(|(hq, _, _)| hq.as_slice()), t, s);
    let (mut dk, mut dv) = (vec![0f32; capacity * kvdim], vec![0f32; capacity * kvdim]);
    for (h, (_, hk, hv)) in per_head.iter().enumerate() {
        let kg = (h / group) * d;
        for (j, (gk, gv)) in hk.chunks(d).zip(hv.chunks(d)).enumerate() {
            dk[j * kvdim + kg..][..d].iter_mut().zip(gk).for_each(|(a, b)| *a += b);
            dv[j * kvdim + kg..][..d].iter_mut().zip(gv).for_each(|(a, b)| *a += b);
        }
    }
    Ok((output(dq, &[t, qdim]), output(dk, &[capacity, kvdim]), output(dv, &[capacity, kvdim])))
}
