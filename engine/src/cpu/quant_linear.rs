//! `linear` and `embedding` on block-format weights, without widening them.
//!
//! Each call quantises its activation rows once to 8-bit blocks of 32
//! ([`crate::quant::activation`]); every output is then one fixed sequence of
//! operations per (weight row, activation row) pair:
//!
//! - for each 32-value piece j of the row, in k order: eight exact integer sums
//!   `s_l = Σ_{e=4l}^{4l+3} code_w[e] · code_x[e]` (the lanes of AVX2's
//!   `maddubs` + `madd`), then `acc_l = fma(factor_l · d_x[j], s_l, acc_l)` with
//!   factor_l the piece's `lo` (lanes 0–3) or `hi` (4–7), and, for formats with a
//!   constant term, `m = fma(min, d_x[j]·Σcode_x, m)`;
//! - the result is `((acc0+acc4)+(acc2+acc6)) + ((acc1+acc5)+(acc3+acc7)) + m`.
//!
//! The scalar code below and the AVX2 kernel (`quant_avx2.rs`) perform exactly these
//! operations, so they agree bit for bit (a test checks it), and the number of rows in
//! a call only changes how many pairs share each weight load, never a pair's
//! arithmetic: a row's output is the same in a 1-row decode, a batch of 16 or a
//! 512-row prefill (batch invariance, tested bit for bit).

use rayon::prelude::*;

use super::{output, CpuTensor};
use crate::quant::activation::{quantise_rows, Q8Rows, BLOCK};
use crate::quant::formats::{self, Format, MAX_PIECES};
use crate::{DType, EngineError, Result};

/// One activation row as the kernels read it: codes, block scales, scaled code sums.
pub(crate) type XRow<'a> = (&'a [i8], &'a [f32], &'a [f32]);

/// The block formats the CPU computes with directly (others are converted at load).
pub const CPU_FORMATS: [DType; 8] =
    [DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q4K, DType::Q5K, DType::Q6K];

/// The horizontal sum in the fixed order AVX2's halving reduction uses.
#[inline(always)]
pub(crate) fn hsum8(a: [f32; 8]) -> f32 {
    let t = [a[0] + a[4], a[1] + a[5], a[2] + a[6], a[3] + a[7]];
    (t[0] + t[2]) + (t[1] + t[3])
}

/// Dots of one weight row (whole blocks of F) with MT activation rows, scalar.
#[inline(always)]
fn row_dots_scalar<F: Format, const MT: usize>(w: &[u8], xs: [XRow<'_>; MT]) -> [f32; MT] {
    let mut acc = [[0f32; 8]; MT];
    let mut macc = [0f32; MT];
    for (b, block) in w.chunks_exact(F::BYTES).enumerate() {
        let factors = F::factors(block);
        for (p, &f) in factors.iter().enumerate().take(F::PIECES) {
            let codes = F::codes(block, p);
            let j = b * F::PIECES + p;
            for (i, &(xc, xd, xsum)) in xs.iter().enumerate() {
                let xcb = &xc[j * BLOCK..(j + 1) * BLOCK];
                let (lo, hi) = (f.lo * xd[j], f.hi * xd[j]);
                for (l, a) in acc[i].iter_mut().enumerate() {
                    let s: i32 = (4 * l..4 * l + 4).map(|e| codes[e] as i32 * xcb[e] as i32).sum();
                    *a = (if l < 4 { lo } else { hi }).mul_add(s as f32, *a);
                }
                if F::HAS_MIN {
                    macc[i] = f.min.mul_add(xsum[j], macc[i]);
                }
            }
        }
    }
    std::array::from_fn(|i| hsum8(acc[i]) + macc[i])
}

/// Which implementation of the pair arithmetic runs (both give the same bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx2Vnni,
}

impl Kernel {
    /// Every kernel this CPU can run, fastest last.
    pub fn available() -> Vec<Kernel> {
        let mut out = vec![Kernel::Scalar];
        #[cfg(target_arch = "x86_64")]
        if super::simd::has_avx2() {
            out.push(Kernel::Avx2);
            if std::arch::is_x86_feature_detected!("avxvnni") {
                out.push(Kernel::Avx2Vnni);
            }
        }
        out
    }

    pub fn best() -> Kernel {
        static BEST: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| *Kernel::available().last().expect("the scalar kernel is always there"))
    }
}

#[inline(always)]
fn row_dots<F: Format, const MT: usize>(kernel: Kernel, w: &[u8], xs: [XRow<'_>; MT]) -> [f32; MT] {
    match kernel {
        Kernel::Scalar => row_dots_scalar::<F, MT>(w, xs),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Kernel::Avx2 is only chosen when the CPU has AVX2 and FMA; w holds whole
        // blocks and each activation row covers them (checked by the callers).
        Kernel::Avx2 => unsafe { super::quant_avx2::row_dots::<F, MT>(w, xs) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, and Kernel::Avx2Vnni is only chosen when the CPU has AVX-VNNI.
        Kernel::Avx2Vnni => unsafe { super::quant_avx2::row_dots_vnni::<F, MT>(w, xs) },
    }
}

/// One weight row against every activation row, in groups of 8, 4, 2 and 1 rows that
/// share the weight row's decoding.
fn row_against_all<F: Format>(kernel: Kernel, w: &[u8], q: &Q8Rows, out: &mut [f32]) {
    let mut i = 0;
    let m = q.rows();
    macro_rules! group {
        ($mt:literal) => {
            while m - i >= $mt {
                let xs: [XRow<'_>; $mt] = std::array::from_fn(|t| q.row(i + t));
                out[i..i + $mt].copy_from_slice(&row_dots::<F, $mt>(kernel, w, xs));
                i += $mt;
            }
        };
    }
    group!(8);
    group!(4);
    group!(2);
    group!(1);
}

/// `out [m, n] = x [m, k] · wᵀ` with w `[n, k]` in blocks of F.
fn matmul<F: Format>(kernel: Kernel, q: &Q8Rows, w: &[u8], n: usize, out: &mut [f32]) {
    let m = q.rows();
    let row_bytes = q.k / (BLOCK * F::PIECES) * F::BYTES;
    // Enough tasks for rayon to balance, each a run of whole weight rows.
    let rows_per_task = (n / (8 * rayon::current_num_threads())).clamp(4, 64);
    let mut cols = vec![0f32; n * m];
    cols.par_chunks_mut(rows_per_task * m).zip(w.par_chunks(rows_per_task * row_bytes)).for_each(|(dst, ws)| {
        for (d, wr) in dst.chunks_mut(m).zip(ws.chunks_exact(row_bytes)) {
            row_against_all::<F>(kernel, wr, q, d);
        }
    });
    if m == 1 {
        out.copy_from_slice(&cols);
    } else {
        for (r, c) in cols.chunks(m).enumerate() {
            for (i, &v) in c.iter().enumerate() {
                out[i * n + r] = v;
            }
        }
    }
}

/// Call `$f::<Format>($args)` for a CPU block format.
macro_rules! with_format {
    ($dtype:expr, $f:ident, $($arg:expr),*) => {
        match $dtype {
            DType::Q4_0 => $f::<formats::Q4_0>($($arg),*),
            DType::Q4_1 => $f::<formats::Q4_1>($($arg),*),
            DType::Q5_0 => $f::<formats::Q5_0>($($arg),*),
            DType::Q5_1 => $f::<formats::Q5_1>($($arg),*),
            DType::Q8_0 => $f::<formats::Q8_0>($($arg),*),
            DType::Q4K => $f::<formats::Q4K>($($arg),*),
            DType::Q5K => $f::<formats::Q5K>($($arg),*),
            DType::Q6K => $f::<formats::Q6K>($($arg),*),
            other => return Err(EngineError::DType { op: "linear", dtype: other }),
        }
    };
}

/// `x [m, k] · wᵀ` for weights `w [n, k]` stored as `dtype` blocks, with `kernel`.
pub fn linear_with(
    kernel: Kernel,
    x: &[f32],
    w: &[u8],
    dtype: DType,
    m: usize,
    n: usize,
    k: usize,
) -> Result<Vec<f32>> {
    let block = dtype.block().ok_or(EngineError::DType { op: "linear", dtype })?;
    if !k.is_multiple_of(block.elements) || dtype.bytes_for(n * k) != Some(w.len()) || x.len() != m * k {
        return Err(EngineError::shape(
            "linear",
            format!("{m}×{k} activations with {n}×{k} {dtype} weights in {} bytes", w.len()),
        ));
    }
    let mut out = vec![0f32; m * n];
    if m > 0 && n > 0 {
        let q = quantise_rows(x, k);
        with_format!(dtype, matmul, kernel, &q, w, n, &mut out);
    }
    Ok(out)
}

pub fn linear(x: &[f32], w: &CpuTensor, bytes: &[u8], m: usize, n: usize, k: usize) -> Result<Vec<f32>> {
    linear_with(Kernel::best(), x, bytes, w.dtype(), m, n, k)
}

/// Rows `ids` (checked by the caller) of a `[vocab, dim]` table of blocks, dequantised.
pub fn embedding(table: &CpuTensor, bytes: &[u8], ids: &[u32]) -> Result<CpuTensor> {
    let (_, dim) = super::dims2("embedding", table)?;
    let row_bytes = table.dtype().bytes_for(dim).ok_or_else(|| {
        EngineError::shape("embedding", format!("rows of {dim} are not whole {} blocks", table.dtype()))
    })?;
    let mut out = vec![0f32; ids.len() * dim];
    for (row, &id) in out.chunks_mut(dim.max(1)).zip(ids) {
        let at = id as usize * row_bytes;
        crate::quant::dequantize(table.dtype(), &bytes[at..at + row_bytes], row)
            .map_err(|e| EngineError::invalid("embedding", e.to_string()))?;
    }
    Ok(output(out, &[ids.len(), dim]))
}

/// Unused-piece guard: the largest block must fit the factor arrays.
const _: () = assert!(MAX_PIECES * BLOCK == crate::quant::QK_K);
