//! Run-time CPU feature dispatch. Hot loops are written once as plain Rust marked
//! `#[inline(always)]`; [`vectorized!`] runs them inside a function compiled for
//! AVX-512 or AVX2+FMA when the CPU has it, so the same source auto-vectorises to
//! 512- or 256-bit code there and still runs on any x86-64 (or other) CPU. The loops
//! keep `LANES` independent accumulators, and a multiply and an add are fused only
//! where the source says `mul_add`, so every level computes the same bits; only the
//! width changes.

use half::{bf16, f16};

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
unsafe fn run_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn run_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Runs `f` compiled for the widest vector level this CPU has. Call it through
/// [`vectorized!`], which marks the closure `#[inline(always)]`: only code inlined into
/// `run_avx512`/`run_avx2` is compiled for their features, and LLVM leaves a large
/// closure out of line when nothing tells it otherwise (the profile showed the
/// softmax-entropy loop running as baseline SSE2 code, 2× slower).
#[inline(always)]
pub fn run_vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx512() && !avx512_disabled() {
            // SAFETY: the CPU supports every feature run_avx512 is compiled for.
            return unsafe { run_avx512(f) };
        }
        if has_avx2() {
            // SAFETY: the CPU supports every feature run_avx2 is compiled for.
            return unsafe { run_avx2(f) };
        }
    }
    f()
}

/// `vectorized!(expr)`: `expr` evaluated inside [`run_vectorized`], inlined.
macro_rules! vectorized {
    ($($body:tt)*) => {
        $crate::cpu::simd::run_vectorized(#[inline(always)] || { $($body)* })
    };
}
pub(crate) use vectorized;

#[cfg(target_arch = "x86_64")]
pub fn has_avx512() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512dq")
        && has_avx2()
}

#[cfg(not(target_arch = "x86_64"))]
pub fn has_avx512() -> bool {
    false
}

/// `ENTMIN_NO_AVX512=1` keeps [`run_vectorized`] at AVX2: to compare the two widths on one
/// machine, and for CPUs that slow their clock under 512-bit code.
fn avx512_disabled() -> bool {
    static DISABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DISABLED.get_or_init(|| std::env::var_os("ENTMIN_NO_AVX512").is_some_and(|v| v != "0"))
}

#[cfg(target_arch = "x86_64")]
pub fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
}

#[cfg(not(target_arch = "x86_64"))]
pub fn has_avx2() -> bool {
    false
}

/// Ask for the cache lines of `data[start..start + len]` (clipped to the slice) ahead of
/// their use; a hint, a no-op off x86-64. Loops that spend long on each block (an
/// exponential per element) otherwise leave memory idle while they compute and wait for
/// it when they load the next block.
#[inline(always)]
pub fn prefetch_range<T>(data: &[T], start: usize, len: usize) {
    #[cfg(target_arch = "x86_64")]
    if start < data.len() {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let part = &data[start..data.len().min(start + len)];
        let base = part.as_ptr() as *const i8;
        for off in (0..std::mem::size_of_val(part)).step_by(64) {
            // SAFETY: prefetching never faults; the address lies inside `data`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(base.add(off)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, start, len);
}

/// Widening load of one stored element.
pub trait Element: Copy + Send + Sync + 'static {
    fn to_f32(self) -> f32;
}

impl Element for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Element for bf16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f32::from_bits((self.to_bits() as u32) << 16)
    }
}

impl Element for f16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

pub const LANES: usize = 16;

/// Dot product with 16 independent accumulators so the loop vectorises.
#[inline(always)]
pub fn dot<W: Element>(x: &[f32], w: &[W]) -> f32 {
    debug_assert_eq!(x.len(), w.len());
    let mut acc = [0f32; LANES];
    let mut xc = x.chunks_exact(LANES);
    let mut wc = w.chunks_exact(LANES);
    for (xs, ws) in (&mut xc).zip(&mut wc) {
        for l in 0..LANES {
            acc[l] += xs[l] * ws[l].to_f32();
        }
    }
    let mut tail = 0f32;
    for (a, b) in xc.remainder().iter().zip(wc.remainder()) {
        tail += a * b.to_f32();
    }
    acc.iter().sum::<f32>() + tail
}

/// 1.5 · 2²³: a float of this size has a unit last place, so adding it to |v| < 2²²
/// rounds v to the nearest integer (ties to even, the default rounding mode) and leaves
/// that integer in the low mantissa bits.
const ROUND_SHIFT: f32 = 12_582_912.0;

/// `v.round_ties_even()` for |v| < 2²², in plain adds: they vectorise on every x86-64
/// level, where `round_ties_even` needs SSE4.1's `roundps` and, in code compiled for the
/// baseline, becomes a libm `rintf` call per element.
#[inline(always)]
pub fn round_small(v: f32) -> f32 {
    (v + ROUND_SHIFT) - ROUND_SHIFT
}

/// `v.round_ties_even() as i32` for |v| < 2²², read from the mantissa bits. `as i32`
/// saturates and maps NaN to 0, which LLVM cannot vectorise: every lane would go
/// through a scalar convert-and-compare. Outside the range (or for NaN) the result is
/// some integer, never undefined behaviour.
#[inline(always)]
pub fn round_small_i32(v: f32) -> i32 {
    ((v + ROUND_SHIFT).to_bits() as i32).wrapping_sub(ROUND_SHIFT.to_bits() as i32)
}

/// exp(x) for f32 in straight-line arithmetic (no libm call) so that loops over it
/// vectorise. Cephes-style: x = n·ln2 + r, |r| ≤ ln2/2, degree-6 polynomial in fused
/// multiply-adds (one instruction each under AVX2/AVX-512; correctly rounded `fmaf`
/// elsewhere, so every level gives the same bits). Relative error < 2e-7 on [-87, 88];
/// inputs below -87 return 0, NaN stays NaN.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Only the upper bound is clamped, by a compare that keeps NaN: below −87 the result
    // is replaced by 0 at the end, whatever n and r were.
    let xc = if x > 88.0 { 88.0 } else { x };
    let n = round_small(xc * LOG2E);
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, xc));
    let mut p = 1.987_569_1e-4f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 5e-1);
    let y = p.mul_add(r * r, r) + 1.0;
    // n is an integer in [-126, 127] here; NaN x gives NaN in y, whatever the scale.
    let scale = f32::from_bits((round_small_i32(xc * LOG2E).wrapping_add(127) as u32) << 23);
    if x < -87.0 {
        0.0
    } else {
        y * scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_small_is_round_ties_even() {
        let mut v = -200.0f32;
        while v < 200.0 {
            for x in [v, v + 0.5, -v - 0.5, v.trunc() + 0.5] {
                assert_eq!(round_small(x).to_bits() & 0x7FFF_FFFF, x.round_ties_even().to_bits() & 0x7FFF_FFFF, "{x}");
                assert_eq!(round_small_i32(x), x.round_ties_even() as i32, "{x}");
            }
            v += 0.173;
        }
        assert_eq!((round_small_i32(4_000_000.25), round_small_i32(-4_000_001.0)), (4_000_000, -4_000_001));
    }

    #[test]
    fn exp_matches_f64_exp() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-1000.0), 0.0);
    }

    #[test]
    fn dot_widens_every_dtype() {
        let x: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..37).map(|i| (i as f32 * 0.11).cos()).collect();
        let want: f64 = x.iter().zip(&w).map(|(a, b)| *a as f64 * *b as f64).sum();
        let wb: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
        let wh: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
        let want_b: f64 = x.iter().zip(&wb).map(|(a, b)| *a as f64 * b.to_f64()).sum();
        let want_h: f64 = x.iter().zip(&wh).map(|(a, b)| *a as f64 * b.to_f64()).sum();
        assert!((vectorized!(dot(&x, &w)) as f64 - want).abs() < 1e-5);
        assert!((vectorized!(dot(&x, &wb)) as f64 - want_b).abs() < 1e-5);
        assert!((dot(&x, &wh) as f64 - want_h).abs() < 1e-5);
    }
}
