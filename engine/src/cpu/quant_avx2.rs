//! AVX2 + FMA kernels of the block-format `linear` (with AVX-VNNI where the CPU has it):
//! the arithmetic of `quant_linear.rs` (read its header first), 32 values per
//! instruction. A piece's codes are unpacked into one 256-bit register of bytes; signed
//! codes enter the u8 × i8 dot product as |w| · (x · sign w), which gives the eight
//! exact lane sums either way.

use std::arch::x86_64::*;

use super::quant_linear::XRow;
use crate::quant::activation::BLOCK;
use crate::quant::formats::{Factors, Format, MAX_PIECES};
use crate::DType;

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load16(p: *const u8) -> __m128i {
    _mm_loadu_si128(p as *const __m128i)
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load32(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

/// 16 bytes of nibbles → 32 bytes: low nibbles first, then high nibbles.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn split_nibbles(p: *const u8) -> __m256i {
    let q = load16(p);
    let mask = _mm_set1_epi8(0x0F);
    _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), mask), _mm_and_si128(q, mask))
}

/// Byte e is 0x10 where bit e of `qh` is set, else 0.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn high_bits(qh: u32) -> __m256i {
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(qh as i32),
        _mm256_setr_epi64x(0, 0x0101_0101_0101_0101, 0x0202_0202_0202_0202, 0x0303_0303_0303_0303),
    );
    // Byte b of each group of eight keeps bit b: all ones exactly when it was set.
    let set =
        _mm256_cmpeq_epi8(_mm256_or_si256(spread, _mm256_set1_epi64x(0x7FBF_DFEF_F7FB_FDFE)), _mm256_set1_epi8(-1));
    _mm256_and_si256(set, _mm256_set1_epi8(0x10))
}

/// The codes of piece `p` of the block at `b`, as `F::codes` gives them.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn codes<F: Format>(b: *const u8, p: usize) -> __m256i {
    let nib_mask = _mm256_set1_epi8(0x0F);
    let qh32 = |at: usize| (b.add(at) as *const u32).read_unaligned().to_le();
    match F::DTYPE {
        DType::Q8_0 => load32(b.add(2)),
        DType::Q4_0 => split_nibbles(b.add(2)),
        DType::Q4_1 => split_nibbles(b.add(4)),
        DType::Q5_0 => _mm256_or_si256(split_nibbles(b.add(6)), high_bits(qh32(2))),
        DType::Q5_1 => _mm256_or_si256(split_nibbles(b.add(8)), high_bits(qh32(4))),
        DType::Q4K | DType::Q5K => {
            let base = if F::DTYPE == DType::Q4K { 16 } else { 48 };
            let q = load32(b.add(base + 32 * (p / 2)));
            let shift = _mm_cvtsi32_si128(4 * (p as i32 % 2));
            let nib = _mm256_and_si256(_mm256_srl_epi16(q, shift), nib_mask);
            if F::DTYPE == DType::Q4K {
                nib
            } else {
                let bit = _mm256_set1_epi8(1 << p);
                let set = _mm256_cmpeq_epi8(_mm256_and_si256(load32(b.add(16)), bit), bit);
                _mm256_or_si256(nib, _mm256_and_si256(set, _mm256_set1_epi8(0x10)))
            }
        }
        DType::Q6K => {
            let (n, c) = (p / 4, p % 4);
            let ql = load32(b.add(64 * n + 32 * (c % 2)));
            let low = _mm256_and_si256(_mm256_srl_epi16(ql, _mm_cvtsi32_si128(4 * (c as i32 / 2))), nib_mask);
            let qh = load32(b.add(128 + 32 * n));
            let high = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c as i32)), _mm256_set1_epi8(3));
            _mm256_sub_epi8(_mm256_or_si256(low, _mm256_slli_epi16(high, 4)), _mm256_set1_epi8(32))
        }
        other => unreachable!("no AVX2 codes for {other}: CPU_FORMATS lists the formats with kernels"),
    }
}

/// `F::factors`, with the f16 scale (and min) of the single-piece formats widened by
/// F16C (exact, as the scalar conversion: same values) instead of integer code.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn factors<F: Format>(bp: *const u8) -> [Factors; MAX_PIECES] {
    if F::PIECES != 1 {
        return F::factors(std::slice::from_raw_parts(bp, F::BYTES));
    }
    // Single-piece blocks start with f16 d, then f16 min where the format has one. An
    // 8-byte load (every single-piece block is at least 18 bytes) that the conversion
    // takes as its memory operand: from a 32-bit load LLVM made `vpinsrw` into whatever
    // register was free, the accumulator, which chained every block's conversion to the
    // previous block's FMA (22 instead of ~8 cycles per Q5_0 block).
    const { assert!(F::PIECES != 1 || F::BYTES >= 8) };
    let v = _mm_cvtph_ps(_mm_loadl_epi64(bp as *const __m128i));
    let d = _mm_cvtss_f32(v);
    let min = if F::OFFSET > 0 {
        -(F::OFFSET as f32) * d
    } else if F::HAS_MIN {
        _mm_cvtss_f32(_mm_shuffle_ps(v, v, 1))
    } else {
        0.0
    };
    let mut f = [Factors::default(); MAX_PIECES];
    f[0] = Factors { lo: d, hi: d, min };
    f
}

/// The fixed-order horizontal sum of `quant_linear::hsum8`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn hsum8(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
}

/// `quant_linear::row_dots_scalar`, vectorised, once per instruction set: `$dot` turns
/// |w| codes and (signed) x codes into the eight exact i32 lane sums.
macro_rules! row_dots_kernel {
    ($(#[$doc:meta])* $name:ident, $features:literal, |$wa:ident, $xv:ident| $dot:expr) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The CPU must have the features named; `w` holds whole blocks of F and every
        /// activation row covers them.
        #[target_feature(enable = $features)]
        pub unsafe fn $name<F: Format, const MT: usize>(w: &[u8], xs: [XRow<'_>; MT]) -> [f32; MT] {
            let mut acc = [_mm256_setzero_ps(); MT];
            let mut macc = [0f32; MT];
            let blocks = w.len() / F::BYTES;
            debug_assert!(xs.iter().all(|x| x.0.len() >= blocks * F::PIECES * BLOCK));
            for b in 0..blocks {
                let bp = w.as_ptr().add(b * F::BYTES);
                let factors = factors::<F>(bp);
                for (p, f) in factors.iter().enumerate().take(F::PIECES) {
                    let wv = codes::<F>(bp, p);
                    let $wa = if F::SIGNED { _mm256_sign_epi8(wv, wv) } else { wv };
                    let j = b * F::PIECES + p;
                    for i in 0..MT {
                        let (xc, xd, xsum) = xs[i];
                        let xv = load32(xc.as_ptr().add(j * BLOCK) as *const u8);
                        let $xv = if F::SIGNED { _mm256_sign_epi8(xv, wv) } else { xv };
                        let lanes = _mm256_cvtepi32_ps($dot);
                        let dx = *xd.get_unchecked(j);
                        let scale = if F::SPLIT {
                            _mm256_set_m128(_mm_set1_ps(f.hi * dx), _mm_set1_ps(f.lo * dx))
                        } else {
                            _mm256_set1_ps(f.lo * dx)
                        };
                        acc[i] = _mm256_fmadd_ps(scale, lanes, acc[i]);
                        if F::HAS_MIN {
                            macc[i] = f.min.mul_add(*xsum.get_unchecked(j), macc[i]);
                        }
                    }
                }
            }
            std::array::from_fn(|i| hsum8(acc[i]) + macc[i])
        }
    };
}

row_dots_kernel!(
    /// AVX2: `maddubs` (u8 × i8 pairs into i16, which cannot saturate for these codes)
    /// then `madd` with ones.
    row_dots, "avx2,fma,f16c", |wa, xv| _mm256_madd_epi16(_mm256_maddubs_epi16(wa, xv), _mm256_set1_epi16(1))
);

row_dots_kernel!(
    /// AVX-VNNI: one `vpdpbusd` gives the same lane sums.
    row_dots_vnni, "avx2,fma,f16c,avxvnni", |wa, xv| _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), wa, xv)
);
