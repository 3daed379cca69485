//! Which WGSL files make up each kernel, and how a kernel's source is composed for a
//! storage dtype and a reduction path.

use entmin_kernels::wgsl;

pub use crate::kernel::{Kernel, GPU_BLOCK_FORMATS};
use crate::DType;

/// Rows of x up to which a linear layer runs as a GEMV (gemv.wgsl's MAX_ROWS).
pub const GEMV_MAX_ROWS: u32 = 8;

impl Kernel {
    fn body(self) -> &'static str {
        match self {
            Kernel::Embedding => wgsl::EMBEDDING,
            Kernel::RmsNorm => wgsl::RMS_NORM,
            Kernel::Gemv => wgsl::GEMV,
            Kernel::Matmul => wgsl::MATMUL,
            Kernel::Rope => wgsl::ROPE,
            Kernel::Attention => wgsl::ATTENTION,
            Kernel::SiluMul => wgsl::SILU_MUL,
            Kernel::Add => wgsl::ADD,
            Kernel::MaskColumns => wgsl::MASK_COLUMNS,
            Kernel::SoftmaxEntropy => wgsl::SOFTMAX_ENTROPY,
            Kernel::EntropyGrad => wgsl::ENTROPY_GRAD,
            Kernel::EmInf => wgsl::EM_INF,
            Kernel::Sample => wgsl::SAMPLE,
            Kernel::RmsNormBackward => wgsl::RMS_NORM_BACKWARD,
            Kernel::MatmulStrided => wgsl::MATMUL_STRIDED,
            Kernel::SiluMulBackward => wgsl::SILU_MUL_BACKWARD,
            Kernel::EmbeddingBackward => wgsl::EMBEDDING_BACKWARD,
            Kernel::AttentionBackwardQuery => wgsl::ATTENTION_BACKWARD_QUERY,
            Kernel::AttentionBackwardKv => wgsl::ATTENTION_BACKWARD_KV,
            Kernel::TokenLogprobs => wgsl::TOKEN_LOGPROBS,
        }
    }

    /// The override constant a kernel is specialised on, if any: the GEMV's row count.
    pub fn specialisation(self, variant: u32) -> Option<&'static str> {
        (self == Kernel::Gemv && variant > 0).then_some("ROWS")
    }

    /// Every specialisation a kernel is compiled for.
    pub fn variants(self) -> std::ops::RangeInclusive<u32> {
        if self == Kernel::Gemv {
            1..=GEMV_MAX_ROWS
        } else {
            0..=0
        }
    }

    fn uses_online_entropy(self) -> bool {
        matches!(self, Kernel::SoftmaxEntropy | Kernel::EmInf | Kernel::Sample)
    }

    /// The full WGSL module for binding-0 dtype `dtype` (ignored when the kernel reads
    /// only f32) with subgroup or workgroup-memory reductions.
    pub fn wgsl_source(self, dtype: DType, subgroups: bool) -> String {
        let mut s = String::from(wgsl::COMMON);
        s.push_str(if subgroups { wgsl::REDUCE_SUBGROUP } else { wgsl::REDUCE_SHARED });
        if self.reads_any_dtype() {
            match dtype {
                DType::F32 => s.push_str(wgsl::LOAD_F32),
                DType::F16 => s.push_str(wgsl::LOAD_F16),
                DType::BF16 => s.push_str(wgsl::LOAD_BF16),
                blocks => {
                    assert!(GPU_BLOCK_FORMATS.contains(&blocks), "wgpu's upload refuses {blocks}: no decoder");
                    let layout = blocks.block().expect("a block format");
                    // code_q4_0 / affine_q4_0, …, code_q6_k / affine_q6_k.
                    let format = blocks.name().to_ascii_lowercase();
                    s.push_str(wgsl::LOAD_BLOCKS);
                    s.push_str(&format!(
                        "const QK: u32 = {}u;\nconst BLOCK_BYTES: u32 = {}u;\n\
                         fn block_code(b: u32, j: u32) -> i32 {{\n    return code_{format}(b, j);\n}}\n\
                         fn block_affine(b: u32, j: u32) -> vec2<f32> {{\n    return affine_{format}(b, j);\n}}\n",
                        layout.elements, layout.bytes
                    ));
                }
            }
        }
        if self.uses_online_entropy() {
            s.push_str(wgsl::ONLINE);
        }
        s.push_str(self.body());
        s
    }
}
