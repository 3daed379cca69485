//! The 32-element block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL): their
//! dequantisation, following ggml's reference `dequantize_row_*` operation by
//! operation, so results are bit-identical to ggml's scalar path and to gguf-py
//! (checked by the fixtures in `tests/reference/dequant/`).

/// Little-endian f16 at `x[at..at + 2]`, widened (exactly) to f32.
#[inline(always)]
pub(crate) fn f16le(x: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([x[at], x[at + 1]]))
}

/// f16 bits widened exactly to f32, in straight-line integer code the kernels inline
/// (the `half` crate's conversion is an out-of-line call per value). Subnormal f16
/// (common for Q6_K scales) go through an exact int→float conversion, not through f32
/// subnormal arithmetic, which would take the CPU's slow microcode path.
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let magnitude = (h & 0x7FFF) as u32;
    let value = if magnitude < 0x0400 {
        magnitude as f32 * f32::from_bits(0x3380_0000) // × 2⁻²⁴
    } else if magnitude < 0x7C00 {
        f32::from_bits((magnitude << 13) + (112 << 23)) // rebias the exponent 15 → 127
    } else {
        f32::from_bits((magnitude << 13) | 0x7F80_0000) // infinity, NaN with its payload
    };
    f32::from_bits(value.to_bits() | sign)
}

/// `kvalues_iq4nl` (ggml-common.h), shared by IQ4_NL and IQ4_XS.
pub(crate) const KVALUES_IQ4NL: [i8; 16] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

pub(super) fn row_f32(x: &[u8], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x.chunks_exact(4)) {
        *y = f32::from_le_bytes([x[0], x[1], x[2], x[3]]);
    }
}

pub(super) fn row_f16(x: &[u8], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x.chunks_exact(2)) {
        *y = f16_to_f32(u16::from_le_bytes([x[0], x[1]]));
    }
}

/// ggml_compute_bf16_to_fp32: the bf16 bits are the top half of an f32.
pub(super) fn row_bf16(x: &[u8], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x.chunks_exact(2)) {
        *y = f32::from_bits((u16::from_le_bytes([x[0], x[1]]) as u32) << 16);
    }
}

/// block_q4_0 { f16 d; u8 qs[16] }: y = (nibble - 8) * d; low nibbles are
/// elements 0..16, high nibbles 16..32.
pub(super) fn row_q4_0(x: &[u8], y: &mut [f32]) {
    for (x, y) in x.chunks_exact(18).zip(y.chunks_exact_mut(32)) {
        let d = f16le(x, 0);
        let qs = &x[2..18];
        for j in 0..16 {
            y[j] = ((qs[j] & 0x0F) as i32 - 8) as f32 * d;
            y[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
        }
    }
}

/// block_q4_1 { f16 d; f16 m; u8 qs[16] }: y = nibble * d + m.
pub(super) fn row_q4_1(x: &[u8], y: &mut [f32]) {
    for (x, y) in x.chunks_exact(20).zip(y.chunks_exact_mut(32)) {
        let d = f16le(x, 0);
        let m = f16le(x, 2);
        let qs = &x[4..20];
        for j in 0..16 {
            y[j] = (qs[j] & 0x0F) as f32 * d + m;
            y[j + 16] = (qs[j] >> 4) as f32 * d + m;
        }
    }
}

/// block_q5_0 { f16 d; u8 qh[4]; u8 qs[16] }: bit j of qh (LE u32) is the
/// fifth bit of element j; y = (q - 16) * d.
pub(super) fn row_q5_0(x: &[u8], y: &mut [f32]) {
    for (x, y) in x.chunks_exact(22).zip(y.chunks_exact_mut(32)) {
        let d = f16le(x, 0);
        let qh = u32::from_le_bytes([x[2], x[3], x[4], x[5]]);
        let qs = &x[6..22];
        for j in 0..16 {
            let xh0 = (((qh >> j) << 4) & 0x10) as u8;
            let xh1 = ((qh >> (j + 12)) & 0x10) as u8;
            let x0 = ((qs[j] & 0x0F) | xh0) as i32 - 16;
            let x1 = ((qs[j] >> 4) | xh1) as i32 - 16;
            y[j] = x0 as f32 * d;
            y[j + 16] = x1 as f32 * d;
        }
    }
}

/// block_q5_1 { f16 d; f16 m; u8 qh[4]; u8 qs[16] }: y = q * d + m.
pub(super) fn row_q5_1(x: &[u8], y: &mut [f32]) {
    for (x, y) in x.chunks_exact(24).zip(y.chunks_exact_mut(32)) {
        let d = f16le(x, 0);
        let m = f16le(x, 2);
        let qh = u32::from_le_bytes([x[4], x[5], x[6], x[7]]);
        let qs = &x[8..24];
        for j in 0..16 {
            let xh0 = (((qh >> j) << 4) & 0x10) as u8;
            let xh1 = ((qh >> (j + 12)) & 0x10) as u8;
            let x0 = (qs[j] & 0x0F) | xh0;
            let x1 = (qs[j] >> 4) | xh1;
            y[j] = x0 as f32 * d + m;
            y[j + 16] = x1 as f32 * d + m;
        }
    }
}

/// block_q8_0 { f16 d; i8 qs[32] }: y = q * d.
pub(super) fn row_q8_0(x: &[u8], y: &mut [f32]) {
    for (x, y) in x.chunks_exact(34).zip(y.chunks_exact_mut(32)) {
        let d = f16le(x, 0);
        for (y, &q) in y.iter_mut().zip(&x[2..34]) {
            *y = q as i8 as f32 * d;
        }
    }
}

/// block_iq4_nl { f16 d; u8 qs[16] }: y = d * kvalues[nibble], low nibbles
/// first.
pub(super) fn row_iq4_nl(x: &[u8], y: &mut [f32]) {
    for (x, y) in x.chunks_exact(18).zip(y.chunks_exact_mut(32)) {
        let d = f16le(x, 0);
        let qs = &x[2..18];
        for j in 0..16 {
            y[j] = d * KVALUES_IQ4NL[(qs[j] & 0x0F) as usize] as f32;
            y[j + 16] = d * KVALUES_IQ4NL[(qs[j] >> 4) as usize] as f32;
        }
    }
}
