//! Small-batch matrix-vector tile for AVX2 + FMA: 4 weight rows × 2 input rows per
//! inner loop, 8 accumulators in registers, so each weight load feeds two FMAs
//! and each input load four. Used for 2–16 input rows (batched decoding), where
//! a general GEMM spends its time packing the weight matrix.

use std::arch::x86_64::*;

/// Horizontal sum of 8 lanes.
#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

/// `out[i][j] = x[i·k .. (i+1)·k] · w[j]` for the `out.len()` input rows of `x` and
/// the four weight rows `w` (each `k` long).
///
/// # Safety
/// The CPU must support AVX2 and FMA; `x` must hold `out.len() · k` values and every
/// `w[j]` at least `k`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn tile4(x: &[f32], k: usize, w: [&[f32]; 4], out: &mut [[f32; 4]]) {
    let m = out.len();
    debug_assert!(x.len() >= m * k && w.iter().all(|r| r.len() >= k));
    let k8 = k / 8 * 8;
    let wp = [w[0].as_ptr(), w[1].as_ptr(), w[2].as_ptr(), w[3].as_ptr()];
    let tail = |xr: *const f32, j: usize| -> f32 { (k8..k).map(|c| *xr.add(c) * *wp[j].add(c)).sum() };
    let mut i = 0;
    while i + 2 <= m {
        let (x0, x1) = (x.as_ptr().add(i * k), x.as_ptr().add((i + 1) * k));
        let mut a = [_mm256_setzero_ps(); 8];
        let mut c = 0;
        while c < k8 {
            let xv0 = _mm256_loadu_ps(x0.add(c));
            let xv1 = _mm256_loadu_ps(x1.add(c));
            for j in 0..4 {
                let wv = _mm256_loadu_ps(wp[j].add(c));
                a[j] = _mm256_fmadd_ps(xv0, wv, a[j]);
                a[4 + j] = _mm256_fmadd_ps(xv1, wv, a[4 + j]);
            }
            c += 8;
        }
        for j in 0..4 {
            out[i][j] = hsum(a[j]) + tail(x0, j);
            out[i + 1][j] = hsum(a[4 + j]) + tail(x1, j);
        }
        i += 2;
    }
    if i < m {
        let x0 = x.as_ptr().add(i * k);
        let mut a = [_mm256_setzero_ps(); 4];
        let mut c = 0;
        while c < k8 {
            let xv0 = _mm256_loadu_ps(x0.add(c));
            for j in 0..4 {
                a[j] = _mm256_fmadd_ps(xv0, _mm256_loadu_ps(wp[j].add(c)), a[j]);
            }
            c += 8;
        }
        for j in 0..4 {
            out[i][j] = hsum(a[j]) + tail(x0, j);
        }
    }
}
