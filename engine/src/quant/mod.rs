//! Block formats: ggml's quantised layouts, owned here because the kernels need them.
//! A tensor in a block format keeps its bytes exactly as a GGUF file stores them;
//! [`dequantize`] is the reference every kernel is tested against (bit-identical to
//! ggml's scalar dequantisers), and [`activation`] quantises f32 activation rows for
//! the integer dot products of `cpu::quant_linear`.

pub mod activation;
pub mod formats;
mod kquant;
mod legacy;

use rayon::prelude::*;

use crate::{BlockLayout, DType, Rng};

pub(crate) use kquant::get_scale_min_k4;
pub(crate) use legacy::f16le;

#[cfg(test)]
mod tests;

/// Elements per k-quant super-block (ggml's `QK_K`).
pub const QK_K: usize = 256;

/// The block of each block format (`sizeof(block_*)` in ggml-common.h).
pub(crate) fn layout(dtype: DType) -> Option<BlockLayout> {
    use DType::*;
    let (elements, bytes) = match dtype {
        F32 | F16 | BF16 => return None,
        Q4_0 => (32, 2 + 16),
        Q4_1 => (32, 2 + 2 + 16),
        Q5_0 => (32, 2 + 4 + 16),
        Q5_1 => (32, 2 + 2 + 4 + 16),
        Q8_0 => (32, 2 + 32),
        IQ4_NL => (32, 2 + 16),
        Q2K => (QK_K, 2 + 2 + QK_K / 16 + QK_K / 4),
        Q3K => (QK_K, 2 + QK_K / 4 + QK_K / 8 + 12),
        Q4K => (QK_K, 2 + 2 + 12 + QK_K / 2),
        Q5K => (QK_K, 2 + 2 + 12 + QK_K / 8 + QK_K / 2),
        Q6K => (QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16),
        Q8K => (QK_K, 4 + QK_K + QK_K / 8),
        IQ4_XS => (QK_K, 2 + 2 + QK_K / 64 + QK_K / 2),
    };
    Some(BlockLayout { elements, bytes })
}

/// Byte offsets of the f16 scales (and mins) inside one block (Q8_K's one scale is an
/// f32, checked by [`scales_finite`] itself).
fn scale_offsets(dtype: DType) -> &'static [usize] {
    use DType::*;
    match dtype {
        F32 | F16 | BF16 | Q8K => &[],
        Q4_0 | Q5_0 | Q8_0 | IQ4_NL | IQ4_XS => &[0],
        Q4_1 | Q5_1 | Q4K | Q5K => &[0, 2],
        Q2K => &[80, 82],
        Q3K => &[108],
        Q6K => &[208],
    }
}

/// Whether every scale of one block is finite: the block's values are small integers
/// times its scales, so finite scales mean finite values.
pub(crate) fn scales_finite(dtype: DType, block: &[u8]) -> bool {
    if dtype == DType::Q8K {
        return f32::from_le_bytes([block[0], block[1], block[2], block[3]]).is_finite();
    }
    scale_offsets(dtype).iter().all(|&at| f16le(block, at).is_finite())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantError {
    #[error("{dtype}: {n} elements is not a multiple of the block size {block}")]
    NotBlockMultiple { dtype: DType, n: usize, block: usize },
    #[error("{dtype}: {n} elements need {expected} bytes, got {got}")]
    ByteLength { dtype: DType, n: usize, expected: usize, got: usize },
}

/// Decodes whole blocks: `bytes.len()` is a multiple of the block size and
/// `out` holds exactly the matching number of elements.
type RowFn = fn(&[u8], &mut [f32]);

fn row_fn(dtype: DType) -> RowFn {
    use DType::*;
    match dtype {
        F32 => legacy::row_f32,
        F16 => legacy::row_f16,
        BF16 => legacy::row_bf16,
        Q4_0 => legacy::row_q4_0,
        Q4_1 => legacy::row_q4_1,
        Q5_0 => legacy::row_q5_0,
        Q5_1 => legacy::row_q5_1,
        Q8_0 => legacy::row_q8_0,
        IQ4_NL => legacy::row_iq4_nl,
        Q2K => kquant::row_q2_k,
        Q3K => kquant::row_q3_k,
        Q4K => kquant::row_q4_k,
        Q5K => kquant::row_q5_k,
        Q6K => kquant::row_q6_k,
        Q8K => kquant::row_q8_k,
        IQ4_XS => kquant::row_iq4_xs,
    }
}

/// Below this many elements the work is done on the calling thread.
const PAR_MIN_ELEMENTS: usize = 1 << 16;
/// Roughly this many elements per rayon task.
const PAR_CHUNK_ELEMENTS: usize = 1 << 14;

/// Dequantise `out.len()` elements of `dtype` stored in `bytes` (little-endian, as in a
/// GGUF file; the dense dtypes too) into `out`. Parallel over blocks for large inputs.
pub fn dequantize(dtype: DType, bytes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    let f = row_fn(dtype);
    let n = out.len();
    let BlockLayout { elements: be, bytes: bb } =
        layout(dtype).unwrap_or_else(|| BlockLayout { elements: 1, bytes: dtype.size_bytes() });
    if !n.is_multiple_of(be) {
        return Err(QuantError::NotBlockMultiple { dtype, n, block: be });
    }
    // Cannot overflow (at most 4 bytes per element, and `out` itself occupies 4 bytes
    // per element), but stay total anyway.
    let expected = dtype.bytes_for(n).unwrap_or(usize::MAX);
    if bytes.len() != expected {
        return Err(QuantError::ByteLength { dtype, n, expected, got: bytes.len() });
    }
    if n < PAR_MIN_ELEMENTS {
        f(bytes, out);
    } else {
        let blocks = (PAR_CHUNK_ELEMENTS / be).max(1);
        out.par_chunks_mut(blocks * be).zip(bytes.par_chunks(blocks * bb)).for_each(|(y, x)| f(x, y));
    }
    Ok(())
}

/// A block of `dtype` with random codes and f16 scales of a trained model's size
/// (|w| of a few hundredths); Q4_1/Q5_1 mins are negative, to centre the weights.
fn random_block(dtype: DType, rng: &mut Rng, out: &mut [u8]) {
    for b in out.iter_mut() {
        *b = rng.next_u64() as u8;
    }
    let f16 = |v: f32| half::f16::from_f32(v).to_le_bytes();
    let mut put = |at: usize, nominal: f32, rng: &mut Rng| {
        out[at..at + 2].copy_from_slice(&f16(nominal * (0.5 + 0.5 * rng.next_f64() as f32)))
    };
    match dtype {
        DType::Q4_0 => put(0, 0.008, rng),
        DType::Q4_1 => (put(0, 0.005, rng), put(2, -0.04, rng)).1,
        DType::Q5_0 => put(0, 0.004, rng),
        DType::Q5_1 => (put(0, 0.0025, rng), put(2, -0.04, rng)).1,
        DType::Q8_0 => put(0, 0.0004, rng),
        DType::Q4K | DType::Q5K => (put(0, 0.0001, rng), put(2, 0.0001, rng)).1,
        DType::Q6K => put(208, 0.00001, rng),
        other => panic!("no test blocks for {other}"),
    }
}

/// `elements` values of block format `dtype` (a whole number of blocks) as random blocks
/// of [`random_block`]'s kind: test and benchmark weights for every backend's kernels.
pub fn random_blocks(dtype: DType, elements: usize, rng: &mut Rng) -> Vec<u8> {
    let block = dtype.block().expect("a block format");
    let mut bytes = vec![0u8; dtype.bytes_for(elements).expect("whole blocks")];
    for b in bytes.chunks_mut(block.bytes) {
        random_block(dtype, rng, b);
    }
    bytes
}
