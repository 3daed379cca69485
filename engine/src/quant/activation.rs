//! Activation rows quantised to 8 bits for the integer dot products of the quantised
//! `linear`: each 32-value block gets `d = amax / 127` and codes `round(x / d)` in
//! ±127 (never −128, so the AVX2 `maddubs` products cannot saturate).
//!
//! The error this adds to an output is at most `Σ_blocks (d / 2) · ‖w_block‖₁` (each
//! code is within half a step of x / d): the bound the parity tests assert.

use rayon::prelude::*;

/// Values per activation block: the 32-element pieces every weight format splits into.
pub const BLOCK: usize = 32;

/// `rows` activation rows of `k` values (k a multiple of [`BLOCK`]), quantised.
pub struct Q8Rows {
    pub k: usize,
    /// `rows · k` codes.
    pub codes: Vec<i8>,
    /// One scale per block (`rows · k / 32`); NaN where the block holds a NaN or an
    /// infinity, so that the outputs it feeds are NaN rather than silently finite.
    pub scales: Vec<f32>,
    /// `scale · Σ codes` per block: what a weight block's constant term (Q4_1's min,
    /// the K-quants' dmin) multiplies.
    pub scaled_sums: Vec<f32>,
}

impl Q8Rows {
    pub fn rows(&self) -> usize {
        self.codes.len().checked_div(self.k).unwrap_or(0)
    }

    /// Codes, scales and scaled sums of row `i`.
    pub fn row(&self, i: usize) -> (&[i8], &[f32], &[f32]) {
        let nb = self.k / BLOCK;
        (
            &self.codes[i * self.k..(i + 1) * self.k],
            &self.scales[i * nb..(i + 1) * nb],
            &self.scaled_sums[i * nb..(i + 1) * nb],
        )
    }
}

/// Quantise one block of 32 values into `codes`; returns (scale, scale · Σ codes).
#[inline(always)]
pub fn quantise_block(x: &[f32], codes: &mut [i8]) -> (f32, f32) {
    let mut amax = 0f32;
    let mut finite = true;
    for &v in x {
        amax = amax.max(v.abs());
        finite &= v.is_finite();
    }
    if !finite {
        codes.fill(0);
        return (f32::NAN, f32::NAN);
    }
    let d = amax / 127.0;
    let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut sum = 0i32;
    for (c, &v) in codes.iter_mut().zip(x) {
        let q = crate::cpu::simd::round_small_i32(v * inv).clamp(-127, 127) as i8;
        *c = q;
        sum += q as i32;
    }
    (d, d * sum as f32)
}

/// Quantise `x` (`rows · k` values, row-major) block by block; parallel over rows when
/// there are many.
pub fn quantise_rows(x: &[f32], k: usize) -> Q8Rows {
    debug_assert!(k.is_multiple_of(BLOCK) && x.len().is_multiple_of(k.max(1)));
    let blocks = x.len() / BLOCK;
    let mut q = Q8Rows { k, codes: vec![0; x.len()], scales: vec![0.0; blocks], scaled_sums: vec![0.0; blocks] };
    type Part<'a> = (&'a [f32], (&'a mut [i8], (&'a mut [f32], &'a mut [f32])));
    let work = |(xs, (codes, (d, s))): Part<'_>| {
        crate::cpu::simd::vectorized!({
            for (b, (xb, cb)) in xs.chunks_exact(BLOCK).zip(codes.chunks_exact_mut(BLOCK)).enumerate() {
                (d[b], s[b]) = quantise_block(xb, cb);
            }
        })
    };
    let per_task = k.max(BLOCK) * 8;
    let nb = per_task / BLOCK;
    if x.len() > 4 * per_task {
        let outs =
            q.codes.par_chunks_mut(per_task).zip(q.scales.par_chunks_mut(nb).zip(q.scaled_sums.par_chunks_mut(nb)));
        x.par_chunks(per_task).zip(outs).for_each(work);
    } else {
        let outs = q.codes.chunks_mut(per_task).zip(q.scales.chunks_mut(nb).zip(q.scaled_sums.chunks_mut(nb)));
        x.chunks(per_task).zip(outs).for_each(work);
    }
    q
}
