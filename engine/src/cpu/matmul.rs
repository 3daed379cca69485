//! `linear`: y = x · wᵀ + b with w stored [n, k] (the PyTorch / GGUF layout).
//!
//! Decode (few rows) is memory-bound: a rayon GEMV streams each weight row once
//! and dots it with every input row, widening bf16/f16 in registers. Prefill
//! (many rows) is compute-bound: the `gemm` crate's blocked SIMD kernel, fed
//! f32 panels of w converted on the fly (see benches/RESULTS.md for the choice).

use rayon::prelude::*;

use super::simd::{dot, vectorized, Element};
use super::{f32_data, f32_data_mut, output, CpuStorage, CpuTensor};
use crate::{Backend, Result};

/// At or below this many input rows the GEMV path wins: gemm packs the whole weight
/// matrix on every call, which small batches cannot amortise (benches/kernels.rs).
const GEMV_MAX_ROWS: usize = 16;
/// Rows of w converted to f32 per gemm call when w is stored in 16 bits.
const PANEL_ROWS: usize = 512;

pub fn linear(x: &CpuTensor, w: &CpuTensor, bias: Option<&CpuTensor>) -> Result<CpuTensor> {
    let (m, k, n) = crate::checks::linear(x.shape(), w.shape(), bias.map(|b| b.len()))?;
    let bias = bias.map(|b| super::CpuBackend.to_host_f32(b)).transpose()?;
    let xs = f32_data("linear", x)?;
    let mut out = vec![0f32; m * n];
    if m > 0 && n > 0 {
        match w.storage() {
            CpuStorage::F32(ws) => matmul(xs, ws, &mut out, m, n, k),
            CpuStorage::F16(ws) => matmul(xs, ws, &mut out, m, n, k),
            CpuStorage::BF16(ws) => matmul(xs, ws, &mut out, m, n, k),
            CpuStorage::Blocks(ws) => out = super::quant_linear::linear(xs, w, ws, m, n, k)?,
        }
    }
    if let Some(b) = bias {
        out.chunks_mut(n).for_each(|row| row.iter_mut().zip(&b).for_each(|(o, b)| *o += b));
    }
    Ok(output(out, &[m, n]))
}

fn matmul<W: Element>(x: &[f32], w: &[W], out: &mut [f32], m: usize, n: usize, k: usize) {
    if m <= GEMV_MAX_ROWS {
        gemv(x, w, out, m, n, k);
    } else if let Some(wf) = as_f32(w) {
        gemm_f32(x, wf, out, m, n, k, 0, n);
    } else {
        // Convert one panel of rows at a time so the f32 copy stays cache-sized.
        let mut panel = vec![0f32; PANEL_ROWS * k];
        for start in (0..n).step_by(PANEL_ROWS) {
            let rows = PANEL_ROWS.min(n - start);
            let dst = &mut panel[..rows * k];
            dst.par_chunks_mut(k).zip(w[start * k..(start + rows) * k].par_chunks(k)).for_each(|(d, s)| {
                d.iter_mut().zip(s).for_each(|(d, s)| *d = s.to_f32());
            });
            gemm_f32(x, dst, out, m, n, k, start, rows);
        }
    }
}

fn as_f32<W: Element>(w: &[W]) -> Option<&[f32]> {
    (std::any::TypeId::of::<W>() == std::any::TypeId::of::<f32>())
        // SAFETY: W is f32, checked just above.
        .then(|| unsafe { std::slice::from_raw_parts(w.as_ptr() as *const f32, w.len()) })
}

/// Each task owns a block of output columns (weight rows) and computes them for all m
/// inputs: each group of four weight rows is widened once into f32 scratch (in L1/L2)
/// and the AVX2 4×2 register tile runs over it (a portable dot product where AVX2 is
/// missing, and for a block's last rows). Every (input, weight row) pair gets the same
/// arithmetic whatever m is, so a sequence's logits do not depend on its batch mates
/// (the server's batch invariance; a one-row call takes the tile too).
fn gemv<W: Element>(x: &[f32], w: &[W], out: &mut [f32], m: usize, n: usize, k: usize) {
    const BLOCK: usize = 64;
    let mut cols = vec![0f32; m * n];
    let tiled = super::simd::has_avx2();
    cols.par_chunks_mut(BLOCK * m).enumerate().for_each(|(b, chunk)| {
        let rows = chunk.len() / m;
        let first = b * BLOCK;
        let mut scratch = if tiled && as_f32(w).is_none() { vec![0f32; 4 * k] } else { Vec::new() };
        let mut done = 0;
        if tiled {
            let mut tile = vec![[0f32; 4]; m];
            while done + 4 <= rows {
                let row0 = first + done;
                let wrows = &w[row0 * k..(row0 + 4) * k];
                let wf: &[f32] = match as_f32(wrows) {
                    Some(f) => f,
                    None => {
                        vectorized!(scratch.iter_mut().zip(wrows).for_each(|(d, s)| *d = s.to_f32()));
                        &scratch
                    }
                };
                let four = [&wf[..k], &wf[k..2 * k], &wf[2 * k..3 * k], &wf[3 * k..]];
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `tiled` implies AVX2 and FMA; x holds m·k values, each weight row k.
                unsafe {
                    super::gemv_tile::tile4(x, k, four, &mut tile)
                };
                for (r, dst) in chunk[done * m..(done + 4) * m].chunks_mut(m).enumerate() {
                    for (i, d) in dst.iter_mut().enumerate() {
                        *d = tile[i][r];
                    }
                }
                done += 4;
            }
        }
        vectorized!({
            for (r, dst) in chunk.chunks_mut(m).enumerate().skip(done) {
                let wrow = &w[(first + r) * k..(first + r + 1) * k];
                for (i, d) in dst.iter_mut().enumerate() {
                    *d = dot(&x[i * k..(i + 1) * k], wrow);
                }
            }
        })
    });
    // cols is [n, m]; transpose into out [m, n].
    for (row, c) in cols.chunks(m).enumerate() {
        for (i, &v) in c.iter().enumerate() {
            out[i * n + row] = v;
        }
    }
}

/// out[:, col0..col0+cols] = x · w_panelᵀ, where w_panel holds rows col0.. of w.
#[allow(clippy::too_many_arguments)]
fn gemm_f32(x: &[f32], w_panel: &[f32], out: &mut [f32], m: usize, n: usize, k: usize, col0: usize, cols: usize) {
    strided_gemm((m, cols, k), (&mut out[col0..], n, 1), (x, k, 1), (w_panel, 1, k), false, true);
}

/// dx = dy · w, dw += dyᵀ · x, dbias += Σ_rows dy, each one `gemm` call (strided
/// views, no transposed copies; dw accumulates inside the GEMM); w must be f32
/// (training's master weights).
pub fn linear_backward(
    x: &CpuTensor,
    w: &CpuTensor,
    dy: &CpuTensor,
    dw: &mut CpuTensor,
    d_bias: Option<&mut CpuTensor>,
) -> Result<CpuTensor> {
    const OP: &str = "linear_backward";
    let (m, k, n) = crate::checks::linear_backward(
        x.shape(),
        w.shape(),
        dy.shape(),
        dw.shape(),
        d_bias.as_ref().map(|b| b.shape()),
    )?;
    let (xs, ws, dys) = (f32_data(OP, x)?, f32_data(OP, w)?, f32_data(OP, dy)?);
    let dws = f32_data_mut(OP, dw)?;
    let mut dx = vec![0f32; m * k];
    if m > 0 && n > 0 && k > 0 {
        // (rows, cols) strides of each operand: element (r, c) sits at r·rs + c·cs.
        strided_gemm((m, k, n), (&mut dx, k, 1), (dys, n, 1), (ws, k, 1), false, true);
        strided_gemm((n, k, m), (dws, k, 1), (dys, 1, n), (xs, k, 1), true, true);
    }
    if let Some(d_bias) = d_bias {
        let db = f32_data_mut(OP, d_bias)?;
        for row in dys.chunks(n.max(1)) {
            db.iter_mut().zip(row).for_each(|(b, d)| *b += d);
        }
    }
    Ok(output(dx, &[m, k]))
}

/// dst [rows, cols] = lhs [rows, inner] · rhs [inner, cols] (`+=` with `accumulate`),
/// each given as (data, row stride, column stride); on all rayon threads when `parallel`
/// (callers already inside a parallel loop pass false).
pub(crate) fn strided_gemm(
    (rows, cols, inner): (usize, usize, usize),
    dst: (&mut [f32], usize, usize),
    lhs: (&[f32], usize, usize),
    rhs: (&[f32], usize, usize),
    accumulate: bool,
    parallel: bool,
) {
    let threads = rayon::current_num_threads();
    let par = if parallel && threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the callers' strides describe row-major buffers of exactly these shapes.
    unsafe {
        gemm::gemm(
            rows,
            cols,
            inner,
            dst.0.as_mut_ptr(),
            dst.2 as isize,
            dst.1 as isize,
            accumulate,
            lhs.0.as_ptr(),
            lhs.2 as isize,
            lhs.1 as isize,
            rhs.0.as_ptr(),
            rhs.2 as isize,
            rhs.1 as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}
