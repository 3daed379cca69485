//! The decoder's forward ops on CUDA: host-side checks and launch geometry around the
//! kernels in `kernels/cuda/` (docs/cuda.md), and cuBLAS for f32-weight prefill GEMMs.

use cudarc::cublas::{Gemm, GemmConfig};

use super::device::launch;
use super::{buf, dims2, require_f32, u32_of, CudaBackend, CudaTensor};
use crate::kernel::Kernel;
use crate::{AttentionShape, DType, EngineError, Result};

const WG: u32 = 256;
const ROW_WG: u32 = 1024;
/// Rows of x up to which a linear layer runs as a GEMV (gemv.cu keeps 8 accumulators).
const GEMV_MAX_ROWS: usize = 8;
/// Output columns per GEMV block: one warp each.
const GEMV_COLS: usize = 8;
/// Output tile edge of matmul.cu.
const TILE: usize = 64;

fn blocks(n: usize, per_block: u32) -> (usize, usize) {
    (n.div_ceil(per_block as usize), 1)
}

pub fn embedding(b: &CudaBackend, table: &CudaTensor, ids: &[u32]) -> Result<CudaTensor> {
    let (vocab, dim) = dims2("embedding", table)?;
    crate::checks::row_bytes("embedding", table.dtype(), dim)?;
    if let Some(&bad) = ids.iter().find(|&&i| i as usize >= vocab) {
        return Err(EngineError::invalid("embedding", format!("token id {bad} outside the {vocab}-row table")));
    }
    let out = b.empty(&[ids.len(), dim], DType::F32)?;
    let total = ids.len() * dim;
    if total == 0 {
        return Ok(out);
    }
    let id_buf = b.dev.upload(bytemuck::cast_slice(ids))?;
    let (dim, n_ids) = (u32_of("embedding", dim)?, u32_of("embedding", ids.len())?);
    u32_of("embedding", total)?;
    launch!(
        b.dev,
        Kernel::Embedding,
        table.dtype(),
        blocks(total, WG),
        WG,
        [buf(table), &id_buf, buf(&out), &dim, &n_ids]
    )?;
    Ok(out)
}

pub fn rms_norm(b: &CudaBackend, x: &CudaTensor, weight: &CudaTensor, eps: f32) -> Result<CudaTensor> {
    let (rows, cols) = dims2("rms_norm", x)?;
    require_f32("rms_norm", x)?;
    require_f32("rms_norm", weight)?;
    if weight.len() != cols {
        return Err(EngineError::shape("rms_norm", format!("weight of {} for rows of {cols}", weight.len())));
    }
    let out = b.empty(&[rows, cols], DType::F32)?;
    if rows == 0 {
        return Ok(out);
    }
    let (r, c) = (u32_of("rms_norm", rows)?, u32_of("rms_norm", cols)?);
    launch!(b.dev, Kernel::RmsNorm, DType::F32, (rows, 1), ROW_WG, [buf(x), buf(weight), buf(&out), &r, &c, &eps])?;
    Ok(out)
}

/// `x [m, k] · wᵀ + bias` with `w [n, k]` of any dtype (rows of whole blocks): gemv.cu when decoding (m ≤ 8),
/// cuBLAS SGEMM for larger f32 problems, matmul.cu otherwise (cuBLAS takes no mixed
/// bf16 × f32 inputs, and rounding activations to 16 bits would change the model).
pub fn linear(b: &CudaBackend, x: &CudaTensor, w: &CudaTensor, bias: Option<&CudaTensor>) -> Result<CudaTensor> {
    let (m, k, n) = crate::checks::linear(x.shape(), w.shape(), bias.map(|b| b.len()))?;
    crate::checks::row_bytes("linear", w.dtype(), k)?;
    require_f32("linear", x)?;
    if let Some(bias) = bias {
        require_f32("linear", bias)?;
    }
    if m == 0 || n == 0 {
        return b.empty(&[m, n], DType::F32);
    }
    if let (Some(blas), true) = (&b.dev.blas, m > GEMV_MAX_ROWS && w.dtype() == DType::F32) {
        return sgemm(b, blas, x, w, bias, (m, n, k));
    }
    let y = b.empty(&[m, n], DType::F32)?;
    let has_bias = bias.is_some() as u32;
    // An unused bias pointer still needs a valid address.
    let bias_buf = bias.map(buf).unwrap_or(buf(&y));
    let (mm, nn, kk) = (u32_of("linear", m)?, u32_of("linear", n)?, u32_of("linear", k)?);
    u32_of("linear", m * n)?;
    let (kernel, grid) = if m <= GEMV_MAX_ROWS {
        (Kernel::Gemv, (n.div_ceil(GEMV_COLS), 1))
    } else {
        (Kernel::Matmul, (n.div_ceil(TILE), m.div_ceil(TILE)))
    };
    launch!(b.dev, kernel, w.dtype(), grid, WG, [buf(w), buf(x), bias_buf, buf(&y), &mm, &nn, &kk, &has_bias])?;
    Ok(y)
}

/// Row-major y = x · wᵀ is column-major yᵀ = w · xᵀ with w read transposed. The bias
/// rows are laid down first (an embedding gather of row 0 of the bias, m times) and
/// the product is accumulated onto them (β = 1).
fn sgemm(
    b: &CudaBackend,
    blas: &cudarc::cublas::CudaBlas,
    x: &CudaTensor,
    w: &CudaTensor,
    bias: Option<&CudaTensor>,
    (m, n, k): (usize, usize, usize),
) -> Result<CudaTensor> {
    let too_big = |d: usize| i32::try_from(d).map_err(|_| EngineError::shape("linear", format!("{d} exceeds cuBLAS")));
    let (mi, ni, ki) = (too_big(m)?, too_big(n)?, too_big(k)?);
    let mut y = match bias {
        Some(bias) => {
            let y = b.empty(&[m, n], DType::F32)?;
            let zeros = b.dev.alloc_zeros(m * 4)?;
            let (dim, rows) = (u32_of("linear", n)?, u32_of("linear", m)?);
            u32_of("linear", m * n)?;
            launch!(
                b.dev,
                Kernel::Embedding,
                DType::F32,
                blocks(m * n, WG),
                WG,
                [buf(bias), &zeros, buf(&y), &dim, &rows]
            )?;
            y
        }
        // β = 0: cuBLAS does not read C.
        None => b.empty(&[m, n], DType::F32)?,
    };
    let cfg = GemmConfig {
        transa: cudarc::cublas::sys::cublasOperation_t::CUBLAS_OP_T,
        transb: cudarc::cublas::sys::cublasOperation_t::CUBLAS_OP_N,
        m: ni,
        n: mi,
        k: ki,
        alpha: 1.0f32,
        lda: ki,
        ldb: ki,
        beta: if bias.is_some() { 1.0 } else { 0.0 },
        ldc: ni,
    };
    // SAFETY: the views cover exactly n·k, m·k and m·n f32 values of their buffers.
    unsafe {
        let a = buf(w).transmute::<f32>(n * k).expect("weight holds n·k f32");
        let bx = buf(x).transmute::<f32>(m * k).expect("x holds m·k f32");
        let mut c = y.storage_mut().buf.transmute_mut::<f32>(m * n).expect("y holds m·n f32");
        blas.gemm(cfg, &a, &bx, &mut c)
    }
    .map_err(|e| EngineError::Device { backend: "cuda", detail: format!("cuBLAS SGEMM {m}×{n}×{k}: {e:?}") })?;
    Ok(y)
}

/// Rotates by +angle, or by −angle when `inverse` (rope's backward: the rotation is
/// orthogonal, so its gradient is the inverse rotation).
pub fn rope(
    b: &CudaBackend,
    x: &mut CudaTensor,
    head_dim: usize,
    positions: &[u32],
    theta: f32,
    inverse: bool,
) -> Result<()> {
    let (rows, cols) = dims2("rope", x)?;
    require_f32("rope", x)?;
    let inv_freq = crate::checks::rope(rows, cols, head_dim, positions.len(), theta)?;
    if rows == 0 {
        return Ok(());
    }
    let cos_sin = crate::checks::rope_table(positions, &inv_freq, inverse);
    let table = b.dev.upload(bytemuck::cast_slice(&cos_sin))?;
    let pairs = rows * cols / 2;
    let (r, c, h) = (u32_of("rope", rows)?, u32_of("rope", cols)?, u32_of("rope", head_dim)?);
    u32_of("rope", rows * cols)?;
    launch!(b.dev, Kernel::Rope, DType::F32, blocks(pairs, WG), WG, [buf(x), &table, &r, &c, &h])
}

pub fn attention(
    b: &CudaBackend,
    q: &CudaTensor,
    k: &CudaTensor,
    v: &CudaTensor,
    s: AttentionShape,
) -> Result<CudaTensor> {
    let (t, qdim) = dims2("attention", q)?;
    let kvdim = k.cols();
    for x in [q, k, v] {
        require_f32("attention", x)?;
    }
    crate::checks::attention(q.shape(), k.shape(), v.shape(), s)?;
    let AttentionShape { n_heads, n_kv_heads, head_dim, start_pos } = s;
    if head_dim > WG as usize {
        return Err(EngineError::shape("attention", format!("head_dim {head_dim}: at most {WG} on cuda")));
    }
    let out = b.empty(&[t, qdim], DType::F32)?;
    if t == 0 || n_heads == 0 {
        return Ok(out);
    }
    let scale = 1.0 / (head_dim as f32).sqrt();
    let u = |n| u32_of("attention", n);
    let (rows, heads, group, hd, kvd, start) =
        (u(t)?, u(n_heads)?, u(n_heads / n_kv_heads)?, u(head_dim)?, u(kvdim)?, u(start_pos)?);
    u(k.len())?;
    launch!(
        b.dev,
        Kernel::Attention,
        DType::F32,
        (t * n_heads, 1),
        WG,
        [buf(q), buf(k), buf(v), buf(&out), &rows, &heads, &group, &hd, &kvd, &start, &scale]
    )?;
    Ok(out)
}

pub(super) fn same_shape(op: &'static str, a: &CudaTensor, c: &CudaTensor) -> Result<u32> {
    require_f32(op, a)?;
    require_f32(op, c)?;
    if a.shape() != c.shape() {
        return Err(EngineError::shape(op, format!("{:?} and {:?}", a.shape(), c.shape())));
    }
    u32_of(op, a.len())
}

pub fn silu_mul(b: &CudaBackend, gate: &CudaTensor, up: &CudaTensor) -> Result<CudaTensor> {
    let n = same_shape("silu_mul", gate, up)?;
    let out = b.empty(gate.shape(), DType::F32)?;
    if n > 0 {
        launch!(b.dev, Kernel::SiluMul, DType::F32, blocks(n as usize, WG), WG, [buf(gate), buf(up), buf(&out), &n])?;
    }
    Ok(out)
}

pub fn add_assign(b: &CudaBackend, x: &mut CudaTensor, y: &CudaTensor) -> Result<()> {
    let n = same_shape("add_assign", x, y)?;
    if n == 0 {
        return Ok(());
    }
    launch!(b.dev, Kernel::Add, DType::F32, blocks(n as usize, WG), WG, [buf(x), buf(y), &n])
}
