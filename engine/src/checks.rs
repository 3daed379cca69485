//! Argument checks shared by every backend, so that each op rejects the same inputs
//! with the same message whatever runs it.

use crate::{AttentionShape, DType, EngineError, Result};

/// `q [t, heads·head_dim]` against caches `k`, `v` `[capacity, kv_heads·head_dim]`.
pub fn attention(q: &[usize], k: &[usize], v: &[usize], s: AttentionShape) -> Result<()> {
    let AttentionShape { n_heads, n_kv_heads, head_dim, start_pos } = s;
    let ok = match (q, k) {
        ([t, qdim], [capacity, kvdim]) => {
            n_kv_heads != 0
                && n_heads % n_kv_heads == 0
                && *qdim == n_heads * head_dim
                && *kvdim == n_kv_heads * head_dim
                && v == k
                && start_pos + t <= *capacity
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(EngineError::shape("attention", format!("q {q:?}, k {k:?}, v {v:?}, {s:?}")))
    }
}

/// `x [m, k] · wᵀ` with `w [n, k]` and an optional bias of `n`: returns (m, k, n).
pub fn linear(x: &[usize], w: &[usize], bias: Option<usize>) -> Result<(usize, usize, usize)> {
    let (&[m, k], &[n, wk]) = (x, w) else {
        return Err(EngineError::shape("linear", format!("x {x:?} and weight {w:?} must be 2-D")));
    };
    if wk != k {
        return Err(EngineError::shape("linear", format!("x {x:?} · wᵀ with w {w:?}")));
    }
    match bias {
        Some(len) if len != n => Err(EngineError::shape("linear", format!("bias of {len} for {n} outputs"))),
        _ => Ok((m, k, n)),
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
/// Bytes of a row of `cols` elements of a `dtype` weight, or an error naming `op` when
/// a row is not a whole number of the dtype's blocks (the GPU kernels address rows by
/// whole blocks).
pub fn row_bytes(op: &'static str, dtype: DType, cols: usize) -> Result<usize> {
    match dtype.block() {
        Some(block) if !cols.is_multiple_of(block.elements) => Err(EngineError::shape(
            op,
            format!("rows of {cols} {dtype} elements are not whole blocks of {}", block.elements),
        )),
        _ => Ok(dtype.bytes_for(cols).expect("whole blocks")),
    }
}

/// RoPE on `rows × cols` with `positions.len()` positions; returns the inverse
/// frequencies θ^(−2i/head_dim), i < head_dim/2, in f64 (angles stay precise at long
/// positions).
pub fn rope(rows: usize, cols: usize, head_dim: usize, positions: usize, theta: f32) -> Result<Vec<f64>> {
    if head_dim == 0 || !head_dim.is_multiple_of(2) || !cols.is_multiple_of(head_dim) {
        return Err(EngineError::shape("rope", format!("head_dim {head_dim} must be even and divide {cols}")));
    }
    if positions != rows {
        return Err(EngineError::shape("rope", format!("{positions} positions for {rows} rows")));
    }
    Ok((0..head_dim / 2).map(|i| 1.0 / (theta as f64).powf(2.0 * i as f64 / head_dim as f64)).collect())
}

/// The (cos, sin) pairs the GPU rope kernels read, `[positions, head_dim / 2]`, computed
/// in f64 (f32 sin/cos of angles in the thousands of radians lose digits); with `inverse`
/// the rotation by −angle, rope's backward.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub fn rope_table(positions: &[u32], inv_freq: &[f64], inverse: bool) -> Vec<f32> {
    let sign = if inverse { -1.0 } else { 1.0 };
    positions
        .iter()
        .flat_map(|&pos| {
            inv_freq.iter().flat_map(move |f| {
                let a = pos as f64 * f;
                [a.cos() as f32, (sign * a.sin()) as f32]
            })
        })
        .collect()
}

/// One lse, entropy and upstream value per row of logits.
pub fn entropy_grad(rows: usize, lse: usize, entropy: usize, upstream: usize) -> Result<()> {
    if lse != rows || entropy != rows || upstream != rows {
        return Err(EngineError::shape(
            "entropy_grad",
            format!("{rows} rows but lse {lse}, entropy {entropy}, upstream {upstream}"),
        ));
    }
    Ok(())
}

/// One target column per row, inside the row, and one value per row for each of `per_row`.
pub fn token_targets(
    op: &'static str,
    rows: usize,
    cols: usize,
    targets: &[u32],
    per_row: &[(&str, usize)],
) -> Result<()> {
    if targets.len() != rows {
        return Err(EngineError::shape(op, format!("{} targets for {rows} rows", targets.len())));
    }
    if let Some(t) = targets.iter().find(|&&t| t as usize >= cols) {
        return Err(EngineError::shape(op, format!("target {t} outside a row of {cols}")));
    }
    for (name, n) in per_row {
        if *n != rows {
            return Err(EngineError::shape(op, format!("{rows} rows but {name} has {n} values")));
        }
    }
    Ok(())
}

/// [`token_targets`] for `policy_grad`: one lse, entropy, d_logp and d_entropy per row.
pub fn policy_grad(rows: usize, cols: usize, targets: &[u32], lens: [usize; 4]) -> Result<()> {
    let names = ["lse", "entropy", "d_logp", "d_entropy"];
    let per_row: Vec<(&str, usize)> = names.into_iter().zip(lens).collect();
    token_targets("policy_grad", rows, cols, targets, &per_row)
}

/// `t × dim` rows written at `start_pos` into a `capacity × cache_dim` cache.
pub fn write_kv(capacity: usize, cache_dim: usize, t: usize, dim: usize, start_pos: usize) -> Result<()> {
    if dim != cache_dim || start_pos + t > capacity {
        return Err(EngineError::shape(
            "write_kv",
            format!("{t}×{dim} rows at {start_pos} into a {capacity}×{cache_dim} cache"),
        ));
    }
    Ok(())
}

/// `x [rows, dim]`, `weight [dim]`, `dy` like x and `d_weight` like the weight: returns (rows, dim).
pub fn rms_norm_backward(x: &[usize], weight: &[usize], dy: &[usize], d_weight: &[usize]) -> Result<(usize, usize)> {
    match x {
        &[rows, dim] if weight == [dim] && dy == x && d_weight == weight => Ok((rows, dim)),
        _ => Err(EngineError::shape(
            "rms_norm_backward",
            format!("x {x:?}, weight {weight:?}, dy {dy:?}, dweight {d_weight:?}"),
        )),
    }
}

/// `x [m, k]`, `w [n, k]`, `dy [m, n]`, `dw` like w and `d_bias [n]`: returns (m, k, n).
pub fn linear_backward(
    x: &[usize],
    w: &[usize],
    dy: &[usize],
    dw: &[usize],
    d_bias: Option<&[usize]>,
) -> Result<(usize, usize, usize)> {
    let (m, k, n) = linear(x, w, None)?;
    if dy != [m, n] || dw != [n, k] || d_bias.is_some_and(|s| s != [n]) {
        return Err(EngineError::shape(
            "linear_backward",
            format!("dy {dy:?}, dw {dw:?}, dbias {d_bias:?} for y [{m}, {n}] and w [{n}, {k}]"),
        ));
    }
    Ok((m, k, n))
}

/// One row of `dy [ids, dim]` per id, each id a row of `d_table [vocab, dim]`: returns (vocab, dim).
pub fn embedding_backward(ids: &[u32], dy: &[usize], d_table: &[usize]) -> Result<(usize, usize)> {
    const OP: &str = "embedding_backward";
    let (&[n, dim], &[vocab, table_dim]) = (dy, d_table) else {
        return Err(EngineError::shape(OP, format!("dy {dy:?} and table {d_table:?} must be 2-D")));
    };
    if n != ids.len() || table_dim != dim {
        return Err(EngineError::shape(OP, format!("{} ids, dy {dy:?}, table {d_table:?}", ids.len())));
    }
    if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(EngineError::invalid(OP, format!("token id {bad} ≥ vocabulary size {vocab}")));
    }
    Ok((vocab, dim))
}

/// [`attention`]'s shapes, and `dout` shaped like `q`.
pub fn attention_backward(q: &[usize], k: &[usize], v: &[usize], dout: &[usize], s: AttentionShape) -> Result<()> {
    attention(q, k, v, s)?;
    if dout != q {
        return Err(EngineError::shape("attention_backward", format!("dout {dout:?}, q {q:?}")));
    }
    Ok(())
}
