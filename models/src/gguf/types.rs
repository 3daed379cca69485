//! ggml's tensor type table as GGUF files number them, and the engine dtype each one
//! is held in. The block formats themselves (layouts, dequantisation, kernels) belong
//! to the engine (`entmin_engine::quant`); this file only names and sizes what a file
//! may contain, including types entmin cannot read (so their tensors can be skipped
//! over and reported by name).

use std::fmt;

use entmin_engine::quant::QK_K;
use entmin_engine::DType;

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

    /// The engine dtype a tensor of this type is read into; None for types entmin
    /// cannot read.
    pub fn dtype(self) -> Option<DType> {
        use GgmlType::*;
        Some(match self {
            F32 => DType::F32,
            F16 => DType::F16,
            BF16 => DType::BF16,
            Q4_0 => DType::Q4_0,
            Q4_1 => DType::Q4_1,
            Q5_0 => DType::Q5_0,
            Q5_1 => DType::Q5_1,
            Q8_0 => DType::Q8_0,
            IQ4_NL => DType::IQ4_NL,
            Q2K => DType::Q2K,
            Q3K => DType::Q3K,
            Q4K => DType::Q4K,
            Q5K => DType::Q5K,
            Q6K => DType::Q6K,
            Q8K => DType::Q8K,
            IQ4_XS => DType::IQ4_XS,
            _ => return None,
        })
    }

    /// Whether entmin reads tensors of this type.
    pub fn is_supported(self) -> bool {
        self.dtype().is_some()
    }

    /// Elements per block: 1 for plain scalar types, 32 for the legacy
    /// quants, 256 for k-quants and most i-quants.
    pub fn block_elements(self) -> usize {
        use GgmlType::*;
        if let Some(block) = self.dtype().and_then(DType::block) {
            return block.elements;
        }
        match self {
            F32 | F16 | BF16 | I8 | I16 | I32 | I64 | F64 => 1,
            Q8_1 | MXFP4 => 32,
            _ => QK_K,
        }
    }

    /// Bytes per block (`sizeof(block_*)` in ggml-common.h); the engine's layout for
    /// the types it reads.
    pub fn block_bytes(self) -> usize {
        use GgmlType::*;
        if let Some(d) = self.dtype() {
            return d.block().map_or_else(|| d.size_bytes(), |b| b.bytes);
        }
        match self {
            I8 => 1,
            I16 => 2,
            I32 => 4,
            I64 | F64 => 8,
            // d and s are both f16 (ggml-common.h static_assert: 36 bytes);
            // gguf-py's GGML_QUANT_SIZES says 40, which is stale.
            Q8_1 => 2 + 2 + 32,
            IQ2_XXS => 2 + QK_K / 4,
            IQ2_XS => 2 + QK_K / 4 + QK_K / 32,
            IQ3_XXS => 2 + QK_K / 4 + QK_K / 8,
            IQ1_S => 2 + QK_K / 8 + QK_K / 16,
            IQ3_S => 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4,
            IQ2_S => 2 + QK_K / 4 + QK_K / 16,
            IQ1_M => QK_K / 8 + QK_K / 16 + QK_K / 32,
            TQ1_0 => 2 + 4 * 13,
            TQ2_0 => 2 + 64,
            MXFP4 => 1 + 16,
            _ => unreachable!("every type the engine reads returned above"),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ggml_type_table() {
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
}
