//! The kernels every GPU backend implements, one per [`crate::Backend`] op (plus the
//! decode/prefill split of `linear`); each backend maps them to its own sources.

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
}

impl Kernel {
    pub const ALL: [Kernel; 13] = [
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
        )
    }
}
