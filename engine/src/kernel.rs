//! The kernels every GPU backend implements, one per [`crate::Backend`] op (plus the
//! decode/prefill split of `linear`); each backend maps them to its own sources.

use crate::DType;

/// The ggml block formats the GPU backends' weight-reading kernels decode in registers
/// (kernels/wgsl/load_blocks.wgsl, the block section of kernels/cuda/common.cuh).
pub const GPU_BLOCK_FORMATS: [DType; 8] =
    [DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q4K, DType::Q5K, DType::Q6K];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Embedding,
    RmsNorm,
    Gemv,
    Matmul,
    Rope,
    Attention,
    SiluMul,
    Add,
    MaskColumns,
    SoftmaxEntropy,
    EntropyGrad,
    EmInf,
    Sample,
    RmsNormBackward,
    MatmulStrided,
    SiluMulBackward,
    EmbeddingBackward,
    AttentionBackwardQuery,
    AttentionBackwardKv,
    TokenLogprobs,
}

impl Kernel {
    pub const ALL: [Kernel; 20] = [
        Kernel::Embedding,
        Kernel::RmsNorm,
        Kernel::Gemv,
        Kernel::Matmul,
        Kernel::Rope,
        Kernel::Attention,
        Kernel::SiluMul,
        Kernel::Add,
        Kernel::MaskColumns,
        Kernel::SoftmaxEntropy,
        Kernel::EntropyGrad,
        Kernel::EmInf,
        Kernel::Sample,
        Kernel::RmsNormBackward,
        Kernel::MatmulStrided,
        Kernel::SiluMulBackward,
        Kernel::EmbeddingBackward,
        Kernel::AttentionBackwardQuery,
        Kernel::AttentionBackwardKv,
        Kernel::TokenLogprobs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Embedding => "embedding",
            Kernel::RmsNorm => "rms_norm",
            Kernel::Gemv => "gemv",
            Kernel::Matmul => "matmul",
            Kernel::Rope => "rope",
            Kernel::Attention => "attention",
            Kernel::SiluMul => "silu_mul",
            Kernel::Add => "add",
            Kernel::MaskColumns => "mask_columns",
            Kernel::SoftmaxEntropy => "softmax_entropy",
            Kernel::EntropyGrad => "entropy_grad",
            Kernel::EmInf => "em_inf",
            Kernel::Sample => "sample",
            Kernel::RmsNormBackward => "rms_norm_backward",
            Kernel::MatmulStrided => "matmul_strided",
            Kernel::SiluMulBackward => "silu_mul_backward",
            Kernel::EmbeddingBackward => "embedding_backward",
            Kernel::AttentionBackwardQuery => "attention_backward_query",
            Kernel::AttentionBackwardKv => "attention_backward_kv",
            Kernel::TokenLogprobs => "token_logprobs",
        }
    }

    /// Whether the kernel's first tensor (wgpu binding 0, CUDA's first pointer) may have any
    /// storage dtype, read through `load_src`.
    pub fn reads_any_dtype(self) -> bool {
        matches!(
            self,
            Kernel::Embedding
                | Kernel::Gemv
                | Kernel::Matmul
                | Kernel::SoftmaxEntropy
                | Kernel::EntropyGrad
                | Kernel::EmInf
                | Kernel::Sample
                | Kernel::TokenLogprobs
        )
    }

    /// Whether the kernel reads weights, so its first tensor may also hold
    /// [`GPU_BLOCK_FORMATS`] blocks.
    pub fn reads_weights(self) -> bool {
        matches!(self, Kernel::Embedding | Kernel::Gemv | Kernel::Matmul)
    }

    /// Every storage dtype the kernel's first tensor may have on a GPU backend.
    pub fn storage_dtypes(self) -> Vec<DType> {
        let mut dtypes = if self.reads_any_dtype() { vec![DType::F32, DType::F16, DType::BF16] } else { vec![DType::F32] };
        if self.reads_weights() {
            dtypes.extend(GPU_BLOCK_FORMATS);
        }
        dtypes
    }
}
