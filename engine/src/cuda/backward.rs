//! The backward ops on CUDA (training): host-side checks and launch geometry around the
//! backward kernels in `kernels/cuda/` (docs/cuda.md). Linear's two GEMMs run on cuBLAS
//! when it loaded (dw accumulates through β = 1), on matmul_strided.cu otherwise; the
//! row sums of dweight and dbias are matmul_strided.cu with a broadcast row of ones.

use cudarc::cublas::sys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
use cudarc::cublas::{Gemm, GemmConfig};
use cudarc::driver::CudaSlice;

use super::device::launch;
use super::{buf, dims2, require_f32, u32_of, CudaBackend, CudaTensor};
use crate::kernel::Kernel;
use crate::{AttentionShape, DType, EngineError, Result};

const WG: u32 = 256;
const ROW_WG: u32 = 1024;
/// Output tile edge of matmul_strided.cu.
const TILE: usize = 64;

/// One operand of a strided GEMM: element (r, c) sits at `r·rs + c·cs` of `buffer`.
struct Operand<'a> {
    buffer: &'a CudaSlice<u8>,
    rs: usize,
    cs: usize,
}

fn row_major(t: &CudaTensor, cols: usize) -> Operand<'_> {
    Operand { buffer: buf(t), rs: cols, cs: 1 }
}

/// `c [m, n] (+)= a [m, k] · b [k, n]` with matmul_strided.cu, c contiguous.
fn strided_gemm(
    b: &CudaBackend,
    (m, n, k): (usize, usize, usize),
    a: Operand<'_>,
    bm: Operand<'_>,
    c: &CudaSlice<u8>,
    accumulate: bool,
) -> Result<()> {
    if m == 0 || n == 0 {
        return Ok(());
    }
    let u = |v| u32_of("matmul_strided", v);
    let (mm, nn, kk, a_rs, a_cs, b_rs, b_cs) = (u(m)?, u(n)?, u(k)?, u(a.rs)?, u(a.cs)?, u(bm.rs)?, u(bm.cs)?);
    let acc = accumulate as u32;
    launch!(
        b.dev,
        Kernel::MatmulStrided,
        DType::F32,
        (n.div_ceil(TILE), m.div_ceil(TILE)),
        WG,
        [a.buffer, bm.buffer, c, &mm, &nn, &kk, &a_rs, &a_cs, &b_rs, &b_cs, &nn, &acc]
    )
}

/// The all-ones row (the device's 1.0 read with strides 0).
fn ones_row(b: &CudaBackend) -> Operand<'_> {
    Operand { buffer: &b.dev.one, rs: 0, cs: 0 }
}

pub fn rms_norm_backward(
    b: &CudaBackend,
    x: &CudaTensor,
    weight: &CudaTensor,
    dy: &CudaTensor,
    eps: f32,
    d_weight: &mut CudaTensor,
) -> Result<CudaTensor> {
    let (rows, cols) = crate::checks::rms_norm_backward(x.shape(), weight.shape(), dy.shape(), d_weight.shape())?;
    for t in [x, weight, dy, &*d_weight] {
        require_f32("rms_norm_backward", t)?;
    }
    let dx = b.empty(&[rows, cols], DType::F32)?;
    if rows == 0 || cols == 0 {
        return Ok(dx);
    }
    let dw_rows = b.empty(&[rows, cols], DType::F32)?;
    let (r, c) = (u32_of("rms_norm_backward", rows)?, u32_of("rms_norm_backward", cols)?);
    launch!(
        b.dev,
        Kernel::RmsNormBackward,
        DType::F32,
        (rows, 1),
        ROW_WG,
        [buf(x), buf(weight), buf(dy), buf(&dx), buf(&dw_rows), &r, &c, &eps]
    )?;
    strided_gemm(b, (1, cols, rows), ones_row(b), row_major(&dw_rows, cols), buf(d_weight), true)?;
    Ok(dx)
}

/// dx = dy·w, dw += dyᵀ·x, dbias += 1ᵀ·dy.
pub fn linear_backward(
    b: &CudaBackend,
    x: &CudaTensor,
    w: &CudaTensor,
    dy: &CudaTensor,
    dw: &mut CudaTensor,
    d_bias: Option<&mut CudaTensor>,
) -> Result<CudaTensor> {
    let bias_shape = d_bias.as_ref().map(|t| t.shape());
    let (m, k, n) = crate::checks::linear_backward(x.shape(), w.shape(), dy.shape(), dw.shape(), bias_shape)?;
    for t in [x, w, dy, &*dw].into_iter().chain(d_bias.as_deref()) {
        require_f32("linear_backward", t)?;
    }
    let mut dx = b.empty(&[m, k], DType::F32)?;
    if m == 0 || k == 0 {
        return Ok(dx);
    }
    match &b.dev.blas {
        Some(blas) if n > 0 => cublas_grads(blas, x, w, dy, &mut dx, dw, (m, n, k))?,
        _ => {
            strided_gemm(b, (m, k, n), row_major(dy, n), row_major(w, k), buf(&dx), false)?;
            let dy_t = Operand { buffer: buf(dy), rs: 1, cs: n };
            strided_gemm(b, (n, k, m), dy_t, row_major(x, k), buf(dw), true)?;
        }
    }
    if let Some(db) = d_bias {
        strided_gemm(b, (1, n, m), ones_row(b), row_major(dy, n), buf(db), true)?;
    }
    Ok(dx)
}

/// Row-major matrices are column-major transposes: dxᵀ [k, m] = wᵀ · dyᵀ and
/// dwᵀ [k, n] += xᵀ · dy, with w, dy and x read as stored.
fn cublas_grads(
    blas: &cudarc::cublas::CudaBlas,
    x: &CudaTensor,
    w: &CudaTensor,
    dy: &CudaTensor,
    dx: &mut CudaTensor,
    dw: &mut CudaTensor,
    (m, n, k): (usize, usize, usize),
) -> Result<()> {
    let too_big =
        |d: usize| i32::try_from(d).map_err(|_| EngineError::shape("linear_backward", format!("{d} exceeds cuBLAS")));
    let (mi, ni, ki) = (too_big(m)?, too_big(n)?, too_big(k)?);
    let gemm_error = |what: &str, e| EngineError::Device {
        backend: "cuda",
        detail: format!("cuBLAS SGEMM ({what}) {m}×{n}×{k}: {e:?}"),
    };
    let cfg = |transb, (rows, cols, inner), (lda, ldb), beta| GemmConfig {
        transa: CUBLAS_OP_N,
        transb,
        m: rows,
        n: cols,
        k: inner,
        alpha: 1.0f32,
        lda,
        ldb,
        beta,
        ldc: rows,
    };
    // SAFETY: each view covers exactly the f32 values of its tensor.
    unsafe {
        let wv = buf(w).transmute::<f32>(n * k).expect("w holds n·k f32");
        let dyv = buf(dy).transmute::<f32>(m * n).expect("dy holds m·n f32");
        let xv = buf(x).transmute::<f32>(m * k).expect("x holds m·k f32");
        let mut dxv = dx.storage_mut().buf.transmute_mut::<f32>(m * k).expect("dx holds m·k f32");
        blas.gemm(cfg(CUBLAS_OP_N, (ki, mi, ni), (ki, ni), 0.0), &wv, &dyv, &mut dxv)
            .map_err(|e| gemm_error("dx", e))?;
        let mut dwv = dw.storage_mut().buf.transmute_mut::<f32>(n * k).expect("dw holds n·k f32");
        blas.gemm(cfg(CUBLAS_OP_T, (ki, ni, mi), (ki, ni), 1.0), &xv, &dyv, &mut dwv)
            .map_err(|e| gemm_error("dw", e))?;
    }
    Ok(())
}

pub fn silu_mul_backward(
    b: &CudaBackend,
    gate: &CudaTensor,
    up: &CudaTensor,
    dy: &CudaTensor,
) -> Result<(CudaTensor, CudaTensor)> {
    let n = super::forward::same_shape("silu_mul_backward", gate, up)?;
    super::forward::same_shape("silu_mul_backward", gate, dy)?;
    let d_gate = b.empty(gate.shape(), DType::F32)?;
    let d_up = b.empty(gate.shape(), DType::F32)?;
    if n > 0 {
        launch!(
            b.dev,
            Kernel::SiluMulBackward,
            DType::F32,
            ((n as usize).div_ceil(WG as usize), 1),
            WG,
            [buf(gate), buf(up), buf(dy), buf(&d_gate), buf(&d_up), &n]
        )?;
    }
    Ok((d_gate, d_up))
}

pub fn embedding_backward(b: &CudaBackend, ids: &[u32], dy: &CudaTensor, d_table: &mut CudaTensor) -> Result<()> {
    let (_, dim) = crate::checks::embedding_backward(ids, dy.shape(), d_table.shape())?;
    require_f32("embedding_backward", dy)?;
    require_f32("embedding_backward", d_table)?;
    if ids.is_empty() || dim == 0 {
        return Ok(());
    }
    u32_of("embedding_backward", d_table.len())?;
    let id_buf = b.dev.upload(bytemuck::cast_slice(ids))?;
    let (d, n) = (u32_of("embedding_backward", dim)?, u32_of("embedding_backward", ids.len())?);
    launch!(
        b.dev,
        Kernel::EmbeddingBackward,
        DType::F32,
        (dim.div_ceil(WG as usize), 1),
        WG,
        [&id_buf, buf(dy), buf(d_table), &d, &n]
    )
}

/// dq and the rows' (lse, δ) first, one block per (query row, head); then dk and dv, one
/// block per (cache row, kv head), each owning its output rows (no atomics).
pub fn attention_backward(
    b: &CudaBackend,
    q: &CudaTensor,
    k: &CudaTensor,
    v: &CudaTensor,
    dout: &CudaTensor,
    s: AttentionShape,
) -> Result<(CudaTensor, CudaTensor, CudaTensor)> {
    crate::checks::attention_backward(q.shape(), k.shape(), v.shape(), dout.shape(), s)?;
    for t in [q, k, v, dout] {
        require_f32("attention_backward", t)?;
    }
    let AttentionShape { n_heads, n_kv_heads, head_dim, start_pos } = s;
    if head_dim > WG as usize {
        return Err(EngineError::shape("attention_backward", format!("head_dim {head_dim}: at most {WG} on cuda")));
    }
    let (t, qdim) = dims2("attention_backward", q)?;
    let (capacity, kvdim) = dims2("attention_backward", k)?;
    let dq = b.empty(&[t, qdim], DType::F32)?;
    let dk = b.empty(&[capacity, kvdim], DType::F32)?;
    let dv = b.empty(&[capacity, kvdim], DType::F32)?;
    if capacity == 0 || n_heads == 0 {
        return Ok((dq, dk, dv));
    }
    let stats = b.empty(&[t * n_heads, 2], DType::F32)?;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let u = |n| u32_of("attention_backward", n);
    let (rows, heads, group, hd, kvd, start, kv_rows) =
        (u(t)?, u(n_heads)?, u(n_heads / n_kv_heads)?, u(head_dim)?, u(kvdim)?, u(start_pos)?, u(capacity)?);
    u(k.len())?;
    u(q.len())?;
    if t > 0 {
        launch!(
            b.dev,
            Kernel::AttentionBackwardQuery,
            DType::F32,
            (t * n_heads, 1),
            WG,
            [
                buf(q),
                buf(k),
                buf(v),
                buf(dout),
                buf(&dq),
                buf(&stats),
                &rows,
                &heads,
                &group,
                &hd,
                &kvd,
                &start,
                &scale
            ]
        )?;
    }
    launch!(
        b.dev,
        Kernel::AttentionBackwardKv,
        DType::F32,
        (capacity * n_kv_heads, 1),
        WG,
        [
            buf(q),
            buf(k),
            buf(v),
            buf(dout),
            buf(&stats),
            buf(&dk),
            buf(&dv),
            &rows,
            &heads,
            &group,
            &hd,
            &kvd,
            &start,
            &scale,
            &kv_rows
        ]
    )?;
    Ok((dq, dk, dv))
}
