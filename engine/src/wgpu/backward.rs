//! The backward ops on wgpu (training): host-side checks, binding windows and dispatch
//! geometry around the backward kernels in `kernels/wgsl/`. Weight gradients accumulate
//! into the caller's tensors, as on the CPU backend. The GEMMs of linear's backward and
//! the row sums of dweight / dbias are one strided kernel (matmul_strided.wgsl).

use super::device::Binding;
use super::kernels::Kernel;
use super::{dims2, require_f32, rows_of, whole, WgpuBackend, WgpuTensor};
use crate::{AttentionShape, Backend, DType, EngineError, Result};

const WG: usize = 256;
/// Output tile edge of matmul_strided.wgsl.
const TILE: usize = 64;
/// The longest reduction one matmul_strided workgroup runs.
const K_CHUNK: usize = 4096;

/// One operand of a strided GEMM: element (r, c) sits at `off + r·rs + c·cs` of `binding`.
struct Operand<'a> {
    binding: Binding<'a>,
    off: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Operand<'a> {
    fn rows(binding: Binding<'a>, cols: usize) -> Self {
        Operand { binding, off: 0, rs: cols, cs: 1 }
    }
}

/// `c [m, n] (+)= a [m, k] · b [k, n]`, c contiguous. A reduction longer than K_CHUNK
/// is split: one dispatch writes each chunk's partial product to a scratch, a second
/// sums the chunks into c. Besides the parallelism, this keeps every workgroup's loop
/// short: on lavapipe a workgroup whose loop ran 4096 times or more (k ≥ 65536)
/// returned wrong sums.
fn gemm(
    b: &WgpuBackend,
    (m, n, k): (usize, usize, usize),
    a: Operand<'_>,
    bm: Operand<'_>,
    c: Binding<'_>,
    accumulate: bool,
) -> Result<()> {
    if m == 0 || n == 0 {
        return Ok(());
    }
    let chunks = k.div_ceil(K_CHUNK).max(1);
    if chunks == 1 {
        return dispatch_gemm(b, (m, n, k), &a, &bm, c, accumulate, (k, 1));
    }
    let partial = b.empty(&[chunks, m * n], DType::F32)?;
    dispatch_gemm(b, (m, n, k), &a, &bm, whole(&partial), false, (K_CHUNK, chunks))?;
    dispatch_gemm(
        b,
        (1, m * n, chunks),
        &ones_row(b),
        &Operand::rows(whole(&partial), m * n),
        c,
        accumulate,
        (chunks, 1),
    )
}

/// One matmul_strided dispatch over `chunks` chunks of `k_chunk` of the reduction.
fn dispatch_gemm(
    b: &WgpuBackend,
    (m, n, k): (usize, usize, usize),
    a: &Operand<'_>,
    bm: &Operand<'_>,
    c: Binding<'_>,
    accumulate: bool,
    (k_chunk, chunks): (usize, usize),
) -> Result<()> {
    let tiles_n = n.div_ceil(TILE);
    let words = [m, n, k, a.off, a.rs, a.cs, bm.off, bm.rs, bm.cs, n, accumulate as usize, tiles_n, k_chunk, m * n];
    let params: Vec<u32> = words.iter().map(|&w| w as u32).collect();
    let groups = m.div_ceil(TILE) * tiles_n * chunks;
    b.gpu.dispatch(Kernel::MatmulStrided, DType::F32, 0, &[a.binding, bm.binding, c], &params, groups)
}

/// The all-ones row (the device's 1.0 read with strides 0).
fn ones_row(b: &WgpuBackend) -> Operand<'_> {
    Operand { binding: Binding::whole(&b.gpu.one), off: 0, rs: 0, cs: 0 }
}

pub fn rms_norm_backward(
    b: &WgpuBackend,
    x: &WgpuTensor,
    weight: &WgpuTensor,
    dy: &WgpuTensor,
    eps: f32,
    d_weight: &mut WgpuTensor,
) -> Result<WgpuTensor> {
    let (rows, cols) = crate::checks::rms_norm_backward(x.shape(), weight.shape(), dy.shape(), d_weight.shape())?;
    for t in [x, weight, dy, &*d_weight] {
        require_f32("rms_norm_backward", t)?;
    }
    let dx = b.empty(&[rows, cols], DType::F32)?;
    let dw_rows = b.empty(&[rows, cols], DType::F32)?;
    let params = [rows as u32, cols as u32, eps.to_bits()];
    b.gpu.dispatch(
        Kernel::RmsNormBackward,
        DType::F32,
        0,
        &[whole(x), whole(weight), whole(dy), whole(&dx), whole(&dw_rows)],
        &params,
        rows,
    )?;
    gemm(b, (1, cols, rows), ones_row(b), Operand::rows(whole(&dw_rows), cols), whole(d_weight), true)?;
    Ok(dx)
}

/// dx = dy·w, dw += dyᵀ·x, dbias += 1ᵀ·dy. x, dy and dx are bound in windows of rows,
/// w, dw and dbias in windows of w's rows, each within the adapter's binding limit.
pub fn linear_backward(
    b: &WgpuBackend,
    x: &WgpuTensor,
    w: &WgpuTensor,
    dy: &WgpuTensor,
    dw: &mut WgpuTensor,
    d_bias: Option<&mut WgpuTensor>,
) -> Result<WgpuTensor> {
    let bias_shape = d_bias.as_ref().map(|t| t.shape());
    let (m, k, n) = crate::checks::linear_backward(x.shape(), w.shape(), dy.shape(), dw.shape(), bias_shape)?;
    for t in [x, w, dy, &*dw].into_iter().chain(d_bias.as_deref()) {
        require_f32("linear_backward", t)?;
    }
    let dx = b.zeros(&[m, k], DType::F32)?;
    if m == 0 || n == 0 || k == 0 {
        return Ok(dx);
    }
    let x_windows = b.gpu.row_windows("linear_backward", m, &[(k * 4) as u64, (n * 4) as u64])?;
    let w_windows = b.gpu.row_windows("linear_backward", n, &[(k * 4) as u64, 4])?;
    for xw in &x_windows {
        let rows = xw.end - xw.start;
        for (i, ww) in w_windows.iter().enumerate() {
            let outs = ww.end - ww.start;
            let dy_rows = || rows_of(dy, n, xw);
            let dy_block = Operand { binding: dy_rows(), off: ww.start, rs: n, cs: 1 };
            let w_block = Operand::rows(rows_of(w, k, ww), k);
            gemm(b, (rows, k, outs), dy_block, w_block, rows_of(&dx, k, xw), i > 0)?;
            let dy_t = Operand { binding: dy_rows(), off: ww.start, rs: 1, cs: n };
            gemm(b, (outs, k, rows), dy_t, Operand::rows(rows_of(x, k, xw), k), rows_of(dw, k, ww), true)?;
            if let Some(db) = d_bias.as_deref() {
                let dy_block = Operand { binding: dy_rows(), off: ww.start, rs: n, cs: 1 };
                gemm(b, (1, outs, rows), ones_row(b), dy_block, rows_of(db, 1, ww), true)?;
            }
        }
    }
    Ok(dx)
}

pub fn silu_mul_backward(
    b: &WgpuBackend,
    gate: &WgpuTensor,
    up: &WgpuTensor,
    dy: &WgpuTensor,
) -> Result<(WgpuTensor, WgpuTensor)> {
    super::forward::same_shape("silu_mul_backward", gate, up)?;
    super::forward::same_shape("silu_mul_backward", gate, dy)?;
    let n = gate.len();
    let d_gate = b.empty(gate.shape(), DType::F32)?;
    let d_up = b.empty(gate.shape(), DType::F32)?;
    b.gpu.dispatch(
        Kernel::SiluMulBackward,
        DType::F32,
        0,
        &[whole(gate), whole(up), whole(dy), whole(&d_gate), whole(&d_up)],
        &[n as u32],
        n.div_ceil(WG),
    )?;
    Ok((d_gate, d_up))
}

/// The table is bound in windows of rows; each window's dispatch adds the ids it holds.
pub fn embedding_backward(b: &WgpuBackend, ids: &[u32], dy: &WgpuTensor, d_table: &mut WgpuTensor) -> Result<()> {
    let (vocab, dim) = crate::checks::embedding_backward(ids, dy.shape(), d_table.shape())?;
    require_f32("embedding_backward", dy)?;
    require_f32("embedding_backward", d_table)?;
    if ids.is_empty() || dim == 0 {
        return Ok(());
    }
    let id_buf = b.gpu.storage_buffer_with(bytemuck::cast_slice(ids))?;
    for w in b.gpu.row_windows("embedding_backward", vocab, &[(dim * 4) as u64])? {
        let params = [dim as u32, ids.len() as u32, w.start as u32, (w.end - w.start) as u32];
        b.gpu.dispatch(
            Kernel::EmbeddingBackward,
            DType::F32,
            0,
            &[Binding::whole(&id_buf), whole(dy), rows_of(d_table, dim, &w)],
            &params,
            dim.div_ceil(WG),
        )?;
    }
    Ok(())
}

/// dq and the rows' (lse, δ) first, one workgroup per (query row, head); then dk and dv,
/// one workgroup per (cache row, kv head), each owning its output rows (no atomics).
pub fn attention_backward(
    b: &WgpuBackend,
    q: &WgpuTensor,
    k: &WgpuTensor,
    v: &WgpuTensor,
    dout: &WgpuTensor,
    s: AttentionShape,
) -> Result<(WgpuTensor, WgpuTensor, WgpuTensor)> {
    crate::checks::attention_backward(q.shape(), k.shape(), v.shape(), dout.shape(), s)?;
    for t in [q, k, v, dout] {
        require_f32("attention_backward", t)?;
    }
    let AttentionShape { n_heads, n_kv_heads, head_dim, start_pos } = s;
    if head_dim > WG {
        return Err(EngineError::shape("attention_backward", format!("head_dim {head_dim}: at most {WG} on wgpu")));
    }
    let (t, qdim) = dims2("attention_backward", q)?;
    let (capacity, kvdim) = dims2("attention_backward", k)?;
    let dq = b.empty(&[t, qdim], DType::F32)?;
    let stats = b.empty(&[t * n_heads, 2], DType::F32)?;
    let dk = b.empty(&[capacity, kvdim], DType::F32)?;
    let dv = b.empty(&[capacity, kvdim], DType::F32)?;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let geometry = [t, n_heads, n_heads / n_kv_heads, head_dim, kvdim, start_pos]
        .map(|d| d as u32)
        .into_iter()
        .chain([scale.to_bits()]);
    let params: Vec<u32> = geometry.collect();
    b.gpu.dispatch(
        Kernel::AttentionBackwardQuery,
        DType::F32,
        0,
        &[whole(q), whole(k), whole(v), whole(dout), whole(&dq), whole(&stats)],
        &params,
        t * n_heads,
    )?;
    let kv_params: Vec<u32> = params.iter().copied().chain([capacity as u32]).collect();
    b.gpu.dispatch(
        Kernel::AttentionBackwardKv,
        DType::F32,
        0,
        &[whole(q), whole(k), whole(v), whole(dout), whole(&stats), whole(&dk), whole(&dv)],
        &kv_params,
        capacity * n_kv_heads,
    )?;
    Ok((dq, dk, dv))
}
