//! Decoders for ggml's 256-element super-block types (k-quants, IQ4_XS),
//! following ggml-quants.c `dequantize_row_*` operation by operation. Used
//! through `quant::dequantize`.

use super::legacy::{f16le, KVALUES_IQ4NL};
use super::QK_K;

/// ggml's `get_scale_min_k4`: the eight 6-bit (scale, min) pairs of a Q4_K /
/// Q5_K block, packed into 12 bytes.
#[inline(always)]
pub(crate) fn get_scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        let d = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
        let m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        (d, m)
    }
}

/// block_q2_K { u8 scales[16]; u8 qs[64]; f16 d; f16 dmin } (84 bytes).
/// Each scales byte: low nibble scale, high nibble min, per 16 elements.
pub(super) fn row_q2_k(x: &[u8], y: &mut [f32]) {
    for (x, y) in x.chunks_exact(84).zip(y.chunks_exact_mut(QK_K)) {
        let scales = &x[0..16];
        let d = f16le(x, 80);
        let min = f16le(x, 82);
        let mut out = y.iter_mut();
        let mut is = 0;
        for n in 0..2 {
            let q = &x[16 + 32 * n..16 + 32 * n + 32];
            for shift in [0, 2, 4, 6] {
                for half in 0..2 {
                    let sc = scales[is];
                    is += 1;
                    let dl = d * (sc & 0x0F) as f32;
                    let ml = min * (sc >> 4) as f32;
                    for &ql in &q[16 * half..16 * half + 16] {
                        *out.next().unwrap() = dl * ((ql >> shift) & 3) as f32 - ml;
                    }
                }
            }
        }
    }
}

/// block_q3_K { u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d } (110 bytes).
/// Sixteen 6-bit signed scales (offset 32); the 3rd bit of each quant comes
/// from hmask, and a *clear* bit subtracts 4.
pub(super) fn row_q3_k(x: &[u8], y: &mut [f32]) {
    for (x, y) in x.chunks_exact(110).zip(y.chunks_exact_mut(QK_K)) {
        let hm = &x[0..32];
        let packed = &x[96..108];
        let d_all = f16le(x, 108);
        // Same result as ggml's kmask1/kmask2 shuffle of three u32 words.
        let mut scales = [0i8; 16];
        for (i, s) in scales.iter_mut().enumerate() {
            let lo = (packed[i % 8] >> (4 * (i / 8))) & 0x0F;
            let hi = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
            *s = (lo | (hi << 4)) as i8;
        }
        let mut out = y.iter_mut();
        let mut is = 0;
        let mut m = 1u8;
        for n in 0..2 {
            let q = &x[32 + 32 * n..32 + 32 * n + 32];
            for shift in [0, 2, 4, 6] {
                for half in 0..2 {
                    let dl = d_all * (scales[is] as i32 - 32) as f32;
                    is += 1;
                    for l in 16 * half..16 * half + 16 {
                        let v = ((q[l] >> shift) & 3) as i32 - if hm[l] & m != 0 { 0 } else { 4 };
                        *out.next().unwrap() = dl * v as f32;
                    }
                }
                m <<= 1;
            }
        }
    }
}

/// block_q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128] } (144 bytes).
/// Per 64 elements: 32 low nibbles (scale pair 2j), then 32 high nibbles
/// (pair 2j+1); y = d*sc * q - dmin*m.
pub(super) fn row_q4_k(x: &[u8], y: &mut [f32]) {
    for (x, y) in x.chunks_exact(144).zip(y.chunks_exact_mut(QK_K)) {
        let d = f16le(x, 0);
        let min = f16le(x, 2);
        let sc = &x[4..16];
        for (j, y) in y.chunks_exact_mut(64).enumerate() {
            let q = &x[16 + 32 * j..16 + 32 * j + 32];
            let (s1, m1) = get_scale_min_k4(2 * j, sc);
            let (d1, m1) = (d * s1 as f32, min * m1 as f32);
            let (s2, m2) = get_scale_min_k4(2 * j + 1, sc);
            let (d2, m2) = (d * s2 as f32, min * m2 as f32);
            for l in 0..32 {
                y[l] = d1 * (q[l] & 0x0F) as f32 - m1;
                y[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
            }
        }
    }
}

/// block_q5_K { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128] }
/// (176 bytes). As Q4_K, with bit (2j) / (2j+1) of qh[l] adding 16.
pub(super) fn row_q5_k(x: &[u8], y: &mut [f32]) {
    for (x, y) in x.chunks_exact(176).zip(y.chunks_exact_mut(QK_K)) {
        let d = f16le(x, 0);
        let min = f16le(x, 2);
        let sc = &x[4..16];
        let qh = &x[16..48];
        for (j, y) in y.chunks_exact_mut(64).enumerate() {
            let ql = &x[48 + 32 * j..48 + 32 * j + 32];
            let (u1, u2) = (1u8 << (2 * j), 2u8 << (2 * j));
            let (s1, m1) = get_scale_min_k4(2 * j, sc);
            let (d1, m1) = (d * s1 as f32, min * m1 as f32);
            let (s2, m2) = get_scale_min_k4(2 * j + 1, sc);
            let (d2, m2) = (d * s2 as f32, min * m2 as f32);
            for l in 0..32 {
                let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
                let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
                y[l] = d1 * ((ql[l] & 0x0F) + h1) as f32 - m1;
                y[l + 32] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
            }
        }
    }
}

/// block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d } (210 bytes).
/// y = d * scale * (q - 32), q = 4 low bits from ql, 2 high bits from qh.
pub(super) fn row_q6_k(x: &[u8], y: &mut [f32]) {
    for (x, y) in x.chunks_exact(210).zip(y.chunks_exact_mut(QK_K)) {
        let d = f16le(x, 208);
        for (n, y) in y.chunks_exact_mut(128).enumerate() {
            let ql = &x[64 * n..64 * n + 64];
            let qh = &x[128 + 32 * n..128 + 32 * n + 32];
            let sc = &x[192 + 8 * n..192 + 8 * n + 8];
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
                let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                y[l] = d * sc[is] as i8 as f32 * q1 as f32;
                y[l + 32] = d * sc[is + 2] as i8 as f32 * q2 as f32;
                y[l + 64] = d * sc[is + 4] as i8 as f32 * q3 as f32;
                y[l + 96] = d * sc[is + 6] as i8 as f32 * q4 as f32;
            }
        }
    }
}

/// block_q8_K { f32 d; i8 qs[256]; i16 bsums[16] } (292 bytes): y = d * q.
pub(super) fn row_q8_k(x: &[u8], y: &mut [f32]) {
    for (x, y) in x.chunks_exact(292).zip(y.chunks_exact_mut(QK_K)) {
        let d = f32::from_le_bytes([x[0], x[1], x[2], x[3]]);
        for (y, &q) in y.iter_mut().zip(&x[4..4 + QK_K]) {
            *y = d * q as i8 as f32;
        }
    }
}

/// block_iq4_xs { f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128] }
/// (136 bytes). Eight 6-bit scales (offset 32), one per 32 elements, each
/// decoded like IQ4_NL.
pub(super) fn row_iq4_xs(x: &[u8], y: &mut [f32]) {
    for (x, y) in x.chunks_exact(136).zip(y.chunks_exact_mut(QK_K)) {
        let d = f16le(x, 0);
        let scales_h = u16::from_le_bytes([x[2], x[3]]);
        let scales_l = &x[4..8];
        for (ib, y) in y.chunks_exact_mut(32).enumerate() {
            let lo = (scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F;
            let hi = ((scales_h >> (2 * ib)) & 3) as u8;
            let dl = d * ((lo | (hi << 4)) as i32 - 32) as f32;
            let qs = &x[8 + 16 * ib..8 + 16 * ib + 16];
            for j in 0..16 {
                y[j] = dl * KVALUES_IQ4NL[(qs[j] & 0x0F) as usize] as f32;
                y[j + 16] = dl * KVALUES_IQ4NL[(qs[j] >> 4) as usize] as f32;
            }
        }
    }
}
