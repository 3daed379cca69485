//! The block formats the CPU's integer kernels read, each described once: how a block
//! splits into 32-value pieces, each piece's integer codes, and the f32 factors that
//! turn a piece's integer dot product with an activation block into a value.
//!
//! A piece's weights are `w_e = factor(e) · code_e + min`, where `factor` is `lo` for
//! the piece's first 16 values and `hi` for the last 16 (they differ only in Q6_K,
//! whose scales cover 16 values). The factors are computed exactly as ggml's
//! dequantisers compute them (`d · scale` rounded once to f32), so the codes and
//! factors reproduce [`super::dequantize`]'s values.

use super::get_scale_min_k4;
use super::legacy::f16le;
use crate::DType;

/// Factors of one 32-value piece.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Factors {
    pub lo: f32,
    pub hi: f32,
    pub min: f32,
}

/// Pieces in the largest block (a 256-value super-block).
pub const MAX_PIECES: usize = 8;

/// A block format. Single-piece formats (the 32-value ones) start with their f16 scale,
/// followed by their f16 min when they have one (the AVX2 kernel reads them there).
pub trait Format: Send + Sync + 'static {
    const DTYPE: DType;
    /// Bytes per block.
    const BYTES: usize;
    /// 32-value pieces per block.
    const PIECES: usize;
    /// Codes are signed (centred); else unsigned, 0..32, with a `min` term.
    const SIGNED: bool;
    /// What a single-piece format's stored codes are offset by (Q4_0: 8, Q5_0: 16).
    /// The kernels take those codes unsigned and fold the offset into the min term,
    /// w = d·q + (−offset·d) (exact: d·q needs at most 16 bits), so their u8 × i8 dot
    /// products need no sign trick per piece, only one more multiply-add per block.
    const OFFSET: u8 = 0;
    /// `Factors::min` is not zero for this format.
    const HAS_MIN: bool;
    /// `lo` and `hi` differ.
    const SPLIT: bool;
    /// The factors of every piece of `block`.
    fn factors(block: &[u8]) -> [Factors; MAX_PIECES];
    /// The 32 codes of piece `p` of `block`.
    fn codes(block: &[u8], p: usize) -> [i8; 32];
}

#[inline(always)]
fn single(d: f32, min: f32) -> [Factors; MAX_PIECES] {
    let mut f = [Factors::default(); MAX_PIECES];
    f[0] = Factors { lo: d, hi: d, min };
    f
}

/// Low nibbles are values 0..16, high nibbles 16..32 (the legacy formats' order).
#[inline(always)]
fn nibbles(qs: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for j in 0..16 {
        out[j] = qs[j] & 0x0F;
        out[j + 16] = qs[j] >> 4;
    }
    out
}

/// Value e of a Q5 block takes bit e of `qh` as its fifth bit.
#[inline(always)]
fn with_high_bits(mut q: [u8; 32], qh: u32) -> [u8; 32] {
    for (e, v) in q.iter_mut().enumerate() {
        *v |= (((qh >> e) & 1) as u8) << 4;
    }
    q
}

#[inline(always)]
fn as_codes(q: [u8; 32], offset: i8) -> [i8; 32] {
    q.map(|v| v as i8 - offset)
}

#[inline(always)]
fn qh32(block: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([block[at], block[at + 1], block[at + 2], block[at + 3]])
}

pub struct Q4_0;
impl Format for Q4_0 {
    const DTYPE: DType = DType::Q4_0;
    const BYTES: usize = 18;
    const PIECES: usize = 1;
    const SIGNED: bool = false;
    const OFFSET: u8 = 8;
    const HAS_MIN: bool = true;
    const SPLIT: bool = false;
    #[inline(always)]
    fn factors(b: &[u8]) -> [Factors; MAX_PIECES] {
        let d = f16le(b, 0);
        single(d, -(Self::OFFSET as f32) * d)
    }
    #[inline(always)]
    fn codes(b: &[u8], _: usize) -> [i8; 32] {
        as_codes(nibbles(&b[2..18]), 0)
    }
}

pub struct Q4_1;
impl Format for Q4_1 {
    const DTYPE: DType = DType::Q4_1;
    const BYTES: usize = 20;
    const PIECES: usize = 1;
    const SIGNED: bool = false;
    const HAS_MIN: bool = true;
    const SPLIT: bool = false;
    #[inline(always)]
    fn factors(b: &[u8]) -> [Factors; MAX_PIECES] {
        single(f16le(b, 0), f16le(b, 2))
    }
    #[inline(always)]
    fn codes(b: &[u8], _: usize) -> [i8; 32] {
        as_codes(nibbles(&b[4..20]), 0)
    }
}

pub struct Q5_0;
impl Format for Q5_0 {
    const DTYPE: DType = DType::Q5_0;
    const BYTES: usize = 22;
    const PIECES: usize = 1;
    const SIGNED: bool = false;
    const OFFSET: u8 = 16;
    const HAS_MIN: bool = true;
    const SPLIT: bool = false;
    #[inline(always)]
    fn factors(b: &[u8]) -> [Factors; MAX_PIECES] {
        let d = f16le(b, 0);
        single(d, -(Self::OFFSET as f32) * d)
    }
    #[inline(always)]
    fn codes(b: &[u8], _: usize) -> [i8; 32] {
        as_codes(with_high_bits(nibbles(&b[6..22]), qh32(b, 2)), 0)
    }
}

pub struct Q5_1;
impl Format for Q5_1 {
    const DTYPE: DType = DType::Q5_1;
    const BYTES: usize = 24;
    const PIECES: usize = 1;
    const SIGNED: bool = false;
    const HAS_MIN: bool = true;
    const SPLIT: bool = false;
    #[inline(always)]
    fn factors(b: &[u8]) -> [Factors; MAX_PIECES] {
        single(f16le(b, 0), f16le(b, 2))
    }
    #[inline(always)]
    fn codes(b: &[u8], _: usize) -> [i8; 32] {
        as_codes(with_high_bits(nibbles(&b[8..24]), qh32(b, 4)), 0)
    }
}

pub struct Q8_0;
impl Format for Q8_0 {
    const DTYPE: DType = DType::Q8_0;
    const BYTES: usize = 34;
    const PIECES: usize = 1;
    const SIGNED: bool = true;
    const HAS_MIN: bool = false;
    const SPLIT: bool = false;
    #[inline(always)]
    fn factors(b: &[u8]) -> [Factors; MAX_PIECES] {
        single(f16le(b, 0), 0.0)
    }
    #[inline(always)]
    fn codes(b: &[u8], _: usize) -> [i8; 32] {
        std::array::from_fn(|e| b[2 + e] as i8)
    }
}

/// Q4_K and Q5_K: eight pieces, each with a 6-bit scale and min; w = d·sc·q − dmin·m.
#[inline(always)]
fn k_factors(b: &[u8]) -> [Factors; MAX_PIECES] {
    let (d, dmin) = (f16le(b, 0), f16le(b, 2));
    std::array::from_fn(|p| {
        let (sc, m) = get_scale_min_k4(p, &b[4..16]);
        let lo = d * sc as f32;
        Factors { lo, hi: lo, min: -(dmin * m as f32) }
    })
}

/// Piece p of a Q4_K / Q5_K block: the low (even p) or high (odd p) nibbles of the
/// 32 bytes `qs[32·(p/2)..]`.
#[inline(always)]
fn k_nibbles(qs: &[u8], p: usize) -> [u8; 32] {
    let q = &qs[32 * (p / 2)..32 * (p / 2) + 32];
    std::array::from_fn(|l| if p.is_multiple_of(2) { q[l] & 0x0F } else { q[l] >> 4 })
}

pub struct Q4K;
impl Format for Q4K {
    const DTYPE: DType = DType::Q4K;
    const BYTES: usize = 144;
    const PIECES: usize = 8;
    const SIGNED: bool = false;
    const HAS_MIN: bool = true;
    const SPLIT: bool = false;
    #[inline(always)]
    fn factors(b: &[u8]) -> [Factors; MAX_PIECES] {
        k_factors(b)
    }
    #[inline(always)]
    fn codes(b: &[u8], p: usize) -> [i8; 32] {
        as_codes(k_nibbles(&b[16..144], p), 0)
    }
}

pub struct Q5K;
impl Format for Q5K {
    const DTYPE: DType = DType::Q5K;
    const BYTES: usize = 176;
    const PIECES: usize = 8;
    const SIGNED: bool = false;
    const HAS_MIN: bool = true;
    const SPLIT: bool = false;
    #[inline(always)]
    fn factors(b: &[u8]) -> [Factors; MAX_PIECES] {
        k_factors(b)
    }
    /// Bit p of `qh[l]` is the fifth bit of value l of piece p.
    #[inline(always)]
    fn codes(b: &[u8], p: usize) -> [i8; 32] {
        let q = k_nibbles(&b[48..176], p);
        std::array::from_fn(|l| (q[l] | (((b[16 + l] >> p) & 1) << 4)) as i8)
    }
}

/// Q6_K: sixteen signed 8-bit scales of 16 values each and one f16 d; q − 32 in −32..32.
pub struct Q6K;
impl Format for Q6K {
    const DTYPE: DType = DType::Q6K;
    const BYTES: usize = 210;
    const PIECES: usize = 8;
    const SIGNED: bool = true;
    const HAS_MIN: bool = false;
    const SPLIT: bool = true;
    /// Piece p = 4n + c covers values 128n + 32c ..; its halves use scales 8n + 2c and
    /// 8n + 2c + 1.
    #[inline(always)]
    fn factors(b: &[u8]) -> [Factors; MAX_PIECES] {
        let d = f16le(b, 208);
        let sc = &b[192..208];
        std::array::from_fn(|p| {
            let (n, c) = (p / 4, p % 4);
            let s = |i: usize| d * sc[8 * n + 2 * c + i] as i8 as f32;
            Factors { lo: s(0), hi: s(1), min: 0.0 }
        })
    }
    #[inline(always)]
    fn codes(b: &[u8], p: usize) -> [i8; 32] {
        let (n, c) = (p / 4, p % 4);
        let ql = &b[64 * n + 32 * (c % 2)..64 * n + 32 * (c % 2) + 32];
        let qh = &b[128 + 32 * n..128 + 32 * n + 32];
        std::array::from_fn(|l| {
            let low = if c < 2 { ql[l] & 0x0F } else { ql[l] >> 4 };
            let high = (qh[l] >> (2 * c)) & 3;
            (low | (high << 4)) as i8 - 32
        })
    }
}

/// The weight values of one block from its codes and factors: `factor · code + min`
/// (one rounding, as the kernels see them). Tests compare it with [`super::dequantize`].
pub fn block_values<F: Format>(block: &[u8]) -> Vec<f32> {
    let factors = F::factors(block);
    (0..F::PIECES)
        .flat_map(|p| {
            let (f, codes) = (factors[p], F::codes(block, p));
            (0..32).map(move |e| (if e < 16 { f.lo } else { f.hi }) * codes[e] as f32 + f.min)
        })
        .collect()
}
