//! The decoder's forward ops on wgpu: host-side shape checks, binding windows and
//! dispatch geometry around the kernels in `kernels/wgsl/`.

use super::device::Binding;
use super::kernels::{Kernel, GEMV_MAX_ROWS};
use super::{buf, dims2, require_f32, row_bytes, rows_of, whole, WgpuBackend, WgpuTensor};
use crate::{AttentionShape, DType, EngineError, Result};

const WG: usize = 256;
/// Output columns per GEMV workgroup (gemv.wgsl: WG / SLICES).
const GEMV_COLS: usize = 64;
/// Output tile edge of the prefill matmul (matmul.wgsl).
const TILE: usize = 64;

pub fn embedding(b: &WgpuBackend, table: &WgpuTensor, ids: &[u32]) -> Result<WgpuTensor> {
    let (vocab, dim) = dims2("embedding", table)?;
    if let Some(&bad) = ids.iter().find(|&&i| i as usize >= vocab) {
        return Err(EngineError::invalid("embedding", format!("token id {bad} outside the {vocab}-row table")));
    }
    let out = b.empty(&[ids.len(), dim], DType::F32)?;
    if ids.is_empty() || dim == 0 {
        return Ok(out);
    }
    let id_buf = b.gpu.storage_buffer_with(bytemuck::cast_slice(ids))?;
    let row_bytes = row_bytes("embedding", table, dim)?;
    for w in b.gpu.row_windows("embedding", vocab, &[row_bytes])? {
        let params = [dim as u32, ids.len() as u32, w.start as u32, (w.end - w.start) as u32];
        b.gpu.dispatch(
            Kernel::Embedding,
            table.dtype(),
            0,
            &[rows_of(table, dim, &w), Binding::whole(&id_buf), whole(&out)],
            &params,
            (ids.len() * dim).div_ceil(WG),
        )?;
    }
    Ok(out)
}

pub fn rms_norm(b: &WgpuBackend, x: &WgpuTensor, weight: &WgpuTensor, eps: f32) -> Result<WgpuTensor> {
    let (rows, cols) = dims2("rms_norm", x)?;
    require_f32("rms_norm", x)?;
    require_f32("rms_norm", weight)?;
    if weight.len() != cols {
        return Err(EngineError::shape("rms_norm", format!("weight of {} for rows of {cols}", weight.len())));
    }
    let out = b.empty(&[rows, cols], DType::F32)?;
    let params = [rows as u32, cols as u32, eps.to_bits()];
    b.gpu.dispatch(Kernel::RmsNorm, DType::F32, 0, &[whole(x), whole(weight), whole(&out)], &params, rows)?;
    Ok(out)
}

/// `x [m, k] · wᵀ + bias` with `w [n, k]` of any dtype. The weight is bound in windows
/// of rows and x / y in windows of rows, each within the adapter's binding limit.
pub fn linear(b: &WgpuBackend, x: &WgpuTensor, w: &WgpuTensor, bias: Option<&WgpuTensor>) -> Result<WgpuTensor> {
    let (m, k, n) = crate::checks::linear(x.shape(), w.shape(), bias.map(|b| b.len()))?;
    require_f32("linear", x)?;
    if let Some(bias) = bias {
        require_f32("linear", bias)?;
    }
    let y = b.empty(&[m, n], DType::F32)?;
    if m == 0 || n == 0 {
        return Ok(y);
    }
    let (bias_binding, has_bias) = match bias {
        Some(t) => (whole(t), 1),
        None => (Binding::whole(&b.gpu.dummy), 0),
    };
    let w_windows = b.gpu.row_windows("linear", n, &[row_bytes("linear", w, k)?])?;
    let x_windows = b.gpu.row_windows("linear", m, &[(k * 4) as u64, (n * 4) as u64])?;
    for xw in &x_windows {
        let rows = xw.end - xw.start;
        for ww in &w_windows {
            let cols = ww.end - ww.start;
            let (kernel, groups, tiles_n) = if rows <= GEMV_MAX_ROWS as usize {
                (Kernel::Gemv, cols.div_ceil(GEMV_COLS), 0)
            } else {
                let tiles_n = cols.div_ceil(TILE);
                (Kernel::Matmul, rows.div_ceil(TILE) * tiles_n, tiles_n)
            };
            let params = [rows as u32, cols as u32, k as u32, n as u32, ww.start as u32, has_bias, tiles_n as u32];
            b.gpu.dispatch(
                kernel,
                w.dtype(),
                if kernel == Kernel::Gemv { rows as u32 } else { 0 },
                &[rows_of(w, k, ww), rows_of(x, k, xw), bias_binding, rows_of(&y, n, xw)],
                &params[..if kernel == Kernel::Gemv { 6 } else { 7 }],
                groups,
            )?;
        }
    }
    Ok(y)
}

/// Rotates by +angle, or by −angle when `inverse` (rope's backward: the rotation is
/// orthogonal, so its gradient is the inverse rotation).
pub fn rope(
    b: &WgpuBackend,
    x: &mut WgpuTensor,
    head_dim: usize,
    positions: &[u32],
    theta: f32,
    inverse: bool,
) -> Result<()> {
    let (rows, cols) = dims2("rope", x)?;
    require_f32("rope", x)?;
    let inv_freq = crate::checks::rope(rows, cols, head_dim, positions.len(), theta)?;
    let cos_sin = crate::checks::rope_table(positions, &inv_freq, inverse);
    if rows == 0 {
        return Ok(());
    }
    let table = b.gpu.storage_buffer_with(bytemuck::cast_slice(&cos_sin))?;
    let params = [rows as u32, cols as u32, head_dim as u32];
    b.gpu.dispatch(
        Kernel::Rope,
        DType::F32,
        0,
        &[whole(x), Binding::whole(&table)],
        &params,
        (rows * cols / 2).div_ceil(WG),
    )
}

pub fn write_kv(b: &WgpuBackend, cache: &mut WgpuTensor, x: &WgpuTensor, start_pos: usize) -> Result<()> {
    let (capacity, dim) = dims2("write_kv", cache)?;
    let (t, xdim) = dims2("write_kv", x)?;
    require_f32("write_kv", cache)?;
    require_f32("write_kv", x)?;
    crate::checks::write_kv(capacity, dim, t, xdim, start_pos)?;
    b.gpu.copy(buf(x), 0, buf(cache), (start_pos * dim * 4) as u64, (t * dim * 4) as u64);
    Ok(())
}

pub fn attention(
    b: &WgpuBackend,
    q: &WgpuTensor,
    k: &WgpuTensor,
    v: &WgpuTensor,
    s: AttentionShape,
) -> Result<WgpuTensor> {
    let (t, qdim) = dims2("attention", q)?;
    let kvdim = k.cols();
    for x in [q, k, v] {
        require_f32("attention", x)?;
    }
    crate::checks::attention(q.shape(), k.shape(), v.shape(), s)?;
    let AttentionShape { n_heads, n_kv_heads, head_dim, start_pos } = s;
    if head_dim > WG {
        return Err(EngineError::shape("attention", format!("head_dim {head_dim}: at most {WG} on wgpu")));
    }
    let out = b.empty(&[t, qdim], DType::F32)?;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let params = [
        t as u32,
        n_heads as u32,
        (n_heads / n_kv_heads) as u32,
        head_dim as u32,
        kvdim as u32,
        start_pos as u32,
        scale.to_bits(),
    ];
    b.gpu.dispatch(
        Kernel::Attention,
        DType::F32,
        0,
        &[whole(q), whole(k), whole(v), whole(&out)],
        &params,
        t * n_heads,
    )?;
    Ok(out)
}

pub(super) fn same_shape(op: &'static str, a: &WgpuTensor, c: &WgpuTensor) -> Result<()> {
    require_f32(op, a)?;
    require_f32(op, c)?;
    if a.shape() != c.shape() {
        return Err(EngineError::shape(op, format!("{:?} and {:?}", a.shape(), c.shape())));
    }
    Ok(())
}

pub fn silu_mul(b: &WgpuBackend, gate: &WgpuTensor, up: &WgpuTensor) -> Result<WgpuTensor> {
    same_shape("silu_mul", gate, up)?;
    let out = b.empty(gate.shape(), DType::F32)?;
    let n = gate.len();
    b.gpu.dispatch(
        Kernel::SiluMul,
        DType::F32,
        0,
        &[whole(gate), whole(up), whole(&out)],
        &[n as u32],
        n.div_ceil(WG),
    )?;
    Ok(out)
}

pub fn add_assign(b: &WgpuBackend, x: &mut WgpuTensor, y: &WgpuTensor) -> Result<()> {
    same_shape("add_assign", x, y)?;
    let n = x.len();
    b.gpu.dispatch(Kernel::Add, DType::F32, 0, &[whole(x), whole(y)], &[n as u32], n.div_ceil(WG))
}
