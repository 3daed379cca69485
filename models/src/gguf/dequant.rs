//! Dequantisation of ggml tensor data to `f32`.
//!
//! A pure function layer: raw little-endian block bytes in, `f32` out. Every
//! decoder follows ggml's reference `dequantize_row_*` (ggml-quants.c)
//! operation by operation, so results are bit-identical to ggml's scalar path
//! and to gguf-py's `gguf.quants.dequantize` (checked by the fixtures in
//! `tests/reference/dequant/`, made by `tests/reference/make_dequant_fixtures.py`).
//!
//! The 256-element "k-quant" super-blocks live in `dequant_k.rs`.

use std::fmt;

use half::f16;
use rayon::prelude::*;

use super::dequant_k;

/// ggml tensor types, numbered as in ggml.h
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
    MXFP4,
}

/// Elements per k-quant super-block (ggml's `QK_K`).
pub(super) const QK_K: usize = 256;

/// Every variant, in id order.
const ALL: [GgmlType; 32] = {
    use GgmlType::*;
    [
        F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2K, Q3K, Q4K, Q5K, Q6K, Q8K, IQ2_XXS, IQ2_XS, IQ3_XXS, IQ1_S,
        IQ4_NL, IQ3_S, IQ2_S, IQ4_XS, I8, I16, I32, I64, F64, IQ1_M, BF16, TQ1_0, TQ2_0, MXFP4,
    ]
};

impl GgmlType {
    /// The type with ggml id `id` (`enum ggml_type` in ggml.h); `None` for
    /// unknown and for removed ids (4, 5, 31-33, 36-38).
    pub fn from_id(id: u32) -> Option<GgmlType> {
        ALL.iter().copied().find(|t| t.id() == id)
    }

    /// The ggml id (`enum ggml_type` in ggml.h).
    pub fn id(self) -> u32 {
        use GgmlType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q5_0 => 6,
            Q5_1 => 7,
            Q8_0 => 8,
            Q8_1 => 9,
            Q2K => 10,
            Q3K => 11,
            Q4K => 12,
            Q5K => 13,
            Q6K => 14,
            Q8K => 15,
            IQ2_XXS => 16,
            IQ2_XS => 17,
            IQ3_XXS => 18,
            IQ1_S => 19,
            IQ4_NL => 20,
            IQ3_S => 21,
            IQ2_S => 22,
            IQ4_XS => 23,
            I8 => 24,
            I16 => 25,
            I32 => 26,
            I64 => 27,
            F64 => 28,
            IQ1_M => 29,
            BF16 => 30,
            TQ1_0 => 34,
            TQ2_0 => 35,
            MXFP4 => 39,
        }
    }

    /// The name as llama.cpp / gguf-py print it ("Q4_K", "BF16", "IQ4_XS").
    pub fn name(self) -> &'static str {
        use GgmlType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q8_1 => "Q8_1",
            Q2K => "Q2_K",
            Q3K => "Q3_K",
            Q4K => "Q4_K",
            Q5K => "Q5_K",
            Q6K => "Q6_K",
            Q8K => "Q8_K",
            IQ2_XXS => "IQ2_XXS",
            IQ2_XS => "IQ2_XS",
            IQ3_XXS => "IQ3_XXS",
            IQ1_S => "IQ1_S",
            IQ4_NL => "IQ4_NL",
            IQ3_S => "IQ3_S",
            IQ2_S => "IQ2_S",
            IQ4_XS => "IQ4_XS",
            I8 => "I8",
            I16 => "I16",
            I32 => "I32",
            I64 => "I64",
            F64 => "F64",
            IQ1_M => "IQ1_M",
            BF16 => "BF16",
            TQ1_0 => "TQ1_0",
            TQ2_0 => "TQ2_0",
            MXFP4 => "MXFP4",
        }
    }

    /// Elements per block: 1 for plain scalar types, 32 for the legacy
    /// quants, 256 for k-quants and most i-quants.
    pub fn block_elements(self) -> usize {
        use GgmlType::*;
        match self {
            F32 | F16 | BF16 | I8 | I16 | I32 | I64 | F64 => 1,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 | IQ4_NL | MXFP4 => 32,
            Q2K | Q3K | Q4K | Q5K | Q6K | Q8K | IQ2_XXS | IQ2_XS | IQ3_XXS | IQ1_S | IQ3_S | IQ2_S | IQ4_XS | IQ1_M
            | TQ1_0 | TQ2_0 => QK_K,
        }
    }

    /// Bytes per block (`sizeof(block_*)` in ggml-common.h).
    pub fn block_bytes(self) -> usize {
        use GgmlType::*;
        match self {
            F32 => 4,
            F16 | BF16 => 2,
            I8 => 1,
            I16 => 2,
            I32 => 4,
            I64 | F64 => 8,
            Q4_0 => 2 + 16,
            Q4_1 => 2 + 2 + 16,
            Q5_0 => 2 + 4 + 16,
            Q5_1 => 2 + 2 + 4 + 16,
            Q8_0 => 2 + 32,
            // d and s are both f16 (ggml-common.h static_assert: 36 bytes);
            // gguf-py's GGML_QUANT_SIZES says 40, which is stale.
            Q8_1 => 2 + 2 + 32,
            Q2K => 2 + 2 + QK_K / 16 + QK_K / 4,
            Q3K => 2 + QK_K / 4 + QK_K / 8 + 12,
            Q4K => 2 + 2 + 12 + QK_K / 2,
            Q5K => 2 + 2 + 12 + QK_K / 8 + QK_K / 2,
            Q6K => 2 + QK_K / 2 + QK_K / 4 + QK_K / 16,
            Q8K => 4 + QK_K + QK_K / 8,
            IQ2_XXS => 2 + QK_K / 4,
            IQ2_XS => 2 + QK_K / 4 + QK_K / 32,
            IQ3_XXS => 2 + QK_K / 4 + QK_K / 8,
            IQ1_S => 2 + QK_K / 8 + QK_K / 16,
            IQ4_NL => 2 + 16,
            IQ3_S => 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4,
            IQ2_S => 2 + QK_K / 4 + QK_K / 16,
            IQ4_XS => 2 + 2 + QK_K / 64 + QK_K / 2,
            IQ1_M => QK_K / 8 + QK_K / 16 + QK_K / 32,
            TQ1_0 => 2 + 4 * 13,
            TQ2_0 => 2 + 64,
            MXFP4 => 1 + 16,
        }
    }

    /// Whether [`dequantize`] handles this type.
    pub fn is_supported(self) -> bool {
        row_fn(self).is_some()
    }

    /// Bytes needed for `n_elements`; `None` if `n_elements` is not a multiple
    /// of [`block_elements`](Self::block_elements) or the size overflows.
    pub fn byte_len(self, n_elements: usize) -> Option<usize> {
        let be = self.block_elements();
        if !n_elements.is_multiple_of(be) {
            return None;
        }
        (n_elements / be).checked_mul(self.block_bytes())
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DequantError {
    #[error("dequantising ggml type {0} is not supported")]
    Unsupported(GgmlType),
    #[error("{ty}: {n} elements is not a multiple of the block size {block}")]
    NotBlockMultiple { ty: GgmlType, n: usize, block: usize },
    #[error("{ty}: {n} elements need {expected} bytes, got {got}")]
    ByteLength { ty: GgmlType, n: usize, expected: usize, got: usize },
}

/// Decodes whole blocks: `bytes.len()` is a multiple of the block size and
/// `out` holds exactly the matching number of elements.
pub(super) type RowFn = fn(&[u8], &mut [f32]);

fn row_fn(ty: GgmlType) -> Option<RowFn> {
    use GgmlType::*;
    Some(match ty {
        F32 => row_f32,
        F16 => row_f16,
        BF16 => row_bf16,
        Q4_0 => row_q4_0,
        Q4_1 => row_q4_1,
        Q5_0 => row_q5_0,
        Q5_1 => row_q5_1,
        Q8_0 => row_q8_0,
        IQ4_NL => row_iq4_nl,
        Q2K => dequant_k::row_q2_k,
        Q3K => dequant_k::row_q3_k,
        Q4K => dequant_k::row_q4_k,
        Q5K => dequant_k::row_q5_k,
        Q6K => dequant_k::row_q6_k,
        Q8K => dequant_k::row_q8_k,
        IQ4_XS => dequant_k::row_iq4_xs,
        _ => return None,
    })
}

/// Below this many elements the work is done on the calling thread.
const PAR_MIN_ELEMENTS: usize = 1 << 16;
/// Roughly this many elements per rayon task.
const PAR_CHUNK_ELEMENTS: usize = 1 << 14;

/// Dequantise `n` elements of type `ty` stored in `bytes` into `out` (len n). Parallel with rayon over blocks for large inputs.
pub fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), DequantError> {
    let f = row_fn(ty).ok_or(DequantError::Unsupported(ty))?;
    let n = out.len();
    let (be, bb) = (ty.block_elements(), ty.block_bytes());
    if !n.is_multiple_of(be) {
        return Err(DequantError::NotBlockMultiple { ty, n, block: be });
    }
    // Cannot overflow for supported types (at most 4 bytes per element, and
    // `out` itself occupies 4 bytes per element), but stay total anyway.
    let expected = ty.byte_len(n).unwrap_or(usize::MAX);
    if bytes.len() != expected {
        return Err(DequantError::ByteLength { ty, n, expected, got: bytes.len() });
    }
    if n < PAR_MIN_ELEMENTS {
        f(bytes, out);
    } else {
        let blocks = (PAR_CHUNK_ELEMENTS / be).max(1);
        out.par_chunks_mut(blocks * be).zip(bytes.par_chunks(blocks * bb)).for_each(|(y, x)| f(x, y));
    }
    Ok(())
}

/// Little-endian f16 at `x[at..at + 2]`, widened (exactly) to f32.
#[inline(always)]
pub(super) fn f16le(x: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([x[at], x[at + 1]])).to_f32()
}

/// `kvalues_iq4nl` (ggml-common.h), shared by IQ4_NL and IQ4_XS.
pub(super) const KVALUES_IQ4NL: [i8; 16] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

fn row_f32(x: &[u8], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x.chunks_exact(4)) {
        *y = f32::from_le_bytes([x[0], x[1], x[2], x[3]]);
    }
}

fn row_f16(x: &[u8], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x.chunks_exact(2)) {
        *y = f16::from_bits(u16::from_le_bytes([x[0], x[1]])).to_f32();
    }
}

/// ggml_compute_bf16_to_fp32: the bf16 bits are the top half of an f32.
fn row_bf16(x: &[u8], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x.chunks_exact(2)) {
        *y = f32::from_bits((u16::from_le_bytes([x[0], x[1]]) as u32) << 16);
    }
}

/// block_q4_0 { f16 d; u8 qs[16] }: y = (nibble - 8) * d; low nibbles are
/// elements 0..16, high nibbles 16..32.
fn row_q4_0(x: &[u8], y: &mut [f32]) {
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
fn row_q4_1(x: &[u8], y: &mut [f32]) {
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
fn row_q5_0(x: &[u8], y: &mut [f32]) {
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
fn row_q5_1(x: &[u8], y: &mut [f32]) {
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
fn row_q8_0(x: &[u8], y: &mut [f32]) {
    for (x, y) in x.chunks_exact(34).zip(y.chunks_exact_mut(32)) {
        let d = f16le(x, 0);
        for (y, &q) in y.iter_mut().zip(&x[2..34]) {
            *y = q as i8 as f32 * d;
        }
    }
}

/// block_iq4_nl { f16 d; u8 qs[16] }: y = d * kvalues[nibble], low nibbles
/// first.
fn row_iq4_nl(x: &[u8], y: &mut [f32]) {
    for (x, y) in x.chunks_exact(18).zip(y.chunks_exact_mut(32)) {
        let d = f16le(x, 0);
        let qs = &x[2..18];
        for j in 0..16 {
            y[j] = d * KVALUES_IQ4NL[(qs[j] & 0x0F) as usize] as f32;
            y[j + 16] = d * KVALUES_IQ4NL[(qs[j] >> 4) as usize] as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/dequant")
    }

    fn unhex(s: &str) -> Vec<u8> {
        assert!(s.len().is_multiple_of(2));
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// Checks every case of `tests/reference/dequant/<name>.json` (made by
    /// make_dequant_fixtures.py from gguf-py) bit for bit, serially and
    /// through the parallel path (the case repeated past PAR_MIN_ELEMENTS).
    fn check_fixture(ty: GgmlType) {
        let path = fixture_dir().join(format!("{}.json", ty.name()));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["type"], ty.name());
        assert_eq!(doc["id"].as_u64(), Some(ty.id() as u64));
        let cases = doc["cases"].as_array().unwrap();
        assert!(!cases.is_empty());
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let n = case["n"].as_u64().unwrap() as usize;
            let bytes = unhex(case["bytes"].as_str().unwrap());
            let want: Vec<u32> = unhex(case["expected_f32le"].as_str().unwrap())
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            assert_eq!(want.len(), n);
            assert_eq!(ty.byte_len(n), Some(bytes.len()), "{ty} {name}");

            let mut out = vec![f32::NAN; n];
            dequantize(ty, &bytes, &mut out).unwrap();
            for (i, (&got, &want)) in out.iter().zip(&want).enumerate() {
                assert_eq!(
                    got.to_bits(),
                    want,
                    "{ty} case {name:?} element {i}: got {got:e}, gguf-py {:e}",
                    f32::from_bits(want)
                );
            }

            let reps = PAR_MIN_ELEMENTS / n + 2;
            let big_in = bytes.repeat(reps);
            let mut big = vec![f32::NAN; n * reps];
            dequantize(ty, &big_in, &mut big).unwrap();
            for (i, got) in big.iter().enumerate() {
                assert_eq!(got.to_bits(), want[i % n], "{ty} {name:?} parallel, element {i}");
            }
        }
    }

    macro_rules! fixture_tests {
        ($($test:ident => $ty:ident,)*) => {$(
            #[test]
            fn $test() {
                check_fixture(GgmlType::$ty);
            }
        )*};
    }

    fixture_tests! {
        dequant_f32_matches_gguf_py => F32,
        dequant_f16_matches_gguf_py => F16,
        dequant_bf16_matches_gguf_py => BF16,
        dequant_q4_0_matches_gguf_py => Q4_0,
        dequant_q4_1_matches_gguf_py => Q4_1,
        dequant_q5_0_matches_gguf_py => Q5_0,
        dequant_q5_1_matches_gguf_py => Q5_1,
        dequant_q8_0_matches_gguf_py => Q8_0,
        dequant_iq4_nl_matches_gguf_py => IQ4_NL,
        dequant_q2_k_matches_gguf_py => Q2K,
        dequant_q3_k_matches_gguf_py => Q3K,
        dequant_q4_k_matches_gguf_py => Q4K,
        dequant_q5_k_matches_gguf_py => Q5K,
        dequant_q6_k_matches_gguf_py => Q6K,
        dequant_q8_k_matches_numpy => Q8K,
        dequant_iq4_xs_matches_gguf_py => IQ4_XS,
    }

    #[test]
    fn dequant_every_supported_type_has_a_fixture() {
        for ty in ALL.into_iter().filter(|t| t.is_supported()) {
            assert!(fixture_dir().join(format!("{}.json", ty.name())).exists(), "{ty}");
        }
    }

    #[test]
    fn dequant_type_table() {
        for (i, ty) in ALL.into_iter().enumerate() {
            assert_eq!(GgmlType::from_id(ty.id()), Some(ty));
            if i > 0 {
                assert!(ALL[i - 1].id() < ty.id(), "ALL is in id order");
            }
            let (be, bb) = (ty.block_elements(), ty.block_bytes());
            assert_eq!(ty.byte_len(0), Some(0));
            assert_eq!(ty.byte_len(3 * be), Some(3 * bb));
            if be > 1 {
                assert_eq!(ty.byte_len(be + 1), None, "{ty}");
            }
            if bb > be {
                assert_eq!(ty.byte_len(usize::MAX - usize::MAX % be), None, "{ty} overflow");
            }
            assert_eq!(ty.to_string(), ty.name());
        }
        for id in [4, 5, 31, 32, 33, 36, 37, 38, 40, 1000, u32::MAX] {
            assert_eq!(GgmlType::from_id(id), None, "id {id}");
        }
        use GgmlType::*;
        let ids = [(F32, 0), (F16, 1), (Q4_0, 2), (Q4_1, 3), (Q5_0, 6), (Q5_1, 7), (Q8_0, 8)];
        let ids2 = [(Q8_1, 9), (Q2K, 10), (Q3K, 11), (Q4K, 12), (Q5K, 13), (Q6K, 14), (Q8K, 15)];
        for (ty, id) in ids.into_iter().chain(ids2).chain([(BF16, 30)]) {
            assert_eq!(ty.id(), id, "{ty}");
        }
        // sizeof(block_*) from ggml-common.h
        let sizes = [(Q4_0, 18), (Q4_1, 20), (Q5_0, 22), (Q5_1, 24), (Q8_0, 34), (Q8_1, 36)];
        let k_sizes = [(Q2K, 84), (Q3K, 110), (Q4K, 144), (Q5K, 176), (Q6K, 210), (Q8K, 292)];
        for (ty, size) in sizes.into_iter().chain(k_sizes) {
            assert_eq!(ty.block_bytes(), size, "{ty}");
        }
        assert_eq!((Q4K.name(), Q8_0.name(), BF16.name()), ("Q4_K", "Q8_0", "BF16"));
        assert_eq!((Q4_0.block_elements(), Q6K.block_elements(), F16.block_elements()), (32, 256, 1));
        for ty in [F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2K, Q3K, Q4K, Q5K, Q6K, Q8K] {
            assert!(ty.is_supported(), "{ty}");
        }
        assert!(!Q8_1.is_supported() && !IQ2_XXS.is_supported() && !I32.is_supported());
    }

    #[test]
    fn dequant_errors() {
        let mut out = vec![0f32; 64];
        assert_eq!(
            dequantize(GgmlType::Q4K, &[0; 144], &mut out),
            Err(DequantError::NotBlockMultiple { ty: GgmlType::Q4K, n: 64, block: 256 })
        );
        assert_eq!(
            dequantize(GgmlType::Q4_0, &[0; 35], &mut out),
            Err(DequantError::ByteLength { ty: GgmlType::Q4_0, n: 64, expected: 36, got: 35 })
        );
        assert_eq!(
            dequantize(GgmlType::F16, &[0; 130], &mut out),
            Err(DequantError::ByteLength { ty: GgmlType::F16, n: 64, expected: 128, got: 130 })
        );
        let err = dequantize(GgmlType::IQ2_XXS, &[0; 66], &mut vec![0f32; 256]).unwrap_err();
        assert_eq!(err, DequantError::Unsupported(GgmlType::IQ2_XXS));
        assert!(err.to_string().contains("IQ2_XXS"), "{err}");
        let err = dequantize(GgmlType::Q6K, &[0; 210], &mut out).unwrap_err();
        assert!(err.to_string().contains("Q6_K") && err.to_string().contains("256"), "{err}");
        // n = 0 is fine and touches nothing
        assert_eq!(dequantize(GgmlType::Q6K, &[], &mut []), Ok(()));
    }

    #[test]
    fn dequant_hand_checked_blocks() {
        // Q8_0: d = 0.5, q = -128..=127 pattern
        let mut b = half::f16::from_f32(0.5).to_le_bytes().to_vec();
        b.extend((0..32).map(|i| (i as i8 * 4 - 64) as u8));
        let mut y = [0f32; 32];
        dequantize(GgmlType::Q8_0, &b, &mut y).unwrap();
        for (i, v) in y.iter().enumerate() {
            assert_eq!(*v, (i as f32 * 4.0 - 64.0) * 0.5);
        }
        // Q4_0: byte j = low j%16, high 15-j%16; d = 2
        let mut b = half::f16::from_f32(2.0).to_le_bytes().to_vec();
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        dequantize(GgmlType::Q4_0, &b, &mut y).unwrap();
        for j in 0..16 {
            assert_eq!(y[j], (j as f32 - 8.0) * 2.0);
            assert_eq!(y[j + 16], (7.0 - j as f32) * 2.0);
        }
        // Q4_K: all scales/mins 1 (j<4: low 6 bits; j>=4: nibbles of bytes 8..12),
        // d = 1, dmin = 0.5, nibbles: low 3, high 12 -> 3 - 0.5, 12 - 0.5
        let mut b = Vec::new();
        b.extend(half::f16::from_f32(1.0).to_le_bytes());
        b.extend(half::f16::from_f32(0.5).to_le_bytes());
        b.extend([1, 1, 1, 1, 1, 1, 1, 1, 0x11, 0x11, 0x11, 0x11]);
        b.extend([0xC3; 128]);
        let mut y = [0f32; 256];
        dequantize(GgmlType::Q4K, &b, &mut y).unwrap();
        for (i, v) in y.iter().enumerate() {
            assert_eq!(*v, if (i / 32) % 2 == 0 { 2.5 } else { 11.5 }, "element {i}");
        }
    }
}
