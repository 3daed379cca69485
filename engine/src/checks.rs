//! Argument checks shared by every backend, so that each op rejects the same inputs
//! with the same message whatever runs it.

use crate::{AttentionShape, EngineError, Result};

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
