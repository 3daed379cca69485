//! Which WGSL files make up each kernel, and how a kernel's source is composed for a
//! storage dtype and a reduction path.

use entmin_kernels::wgsl;

use crate::DType;

/// Rows of x up to which a linear layer runs as a GEMV (gemv.wgsl's MAX_ROWS).
pub const GEMV_MAX_ROWS: u32 = 8;

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

    /// Whether binding 0 is a tensor of any storage dtype, read through `load_src`.
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

    fn uses_online_entropy(self) -> bool {
        matches!(self, Kernel::SoftmaxEntropy | Kernel::EmInf | Kernel::Sample)
    }

    /// The full WGSL module for binding-0 dtype `dtype` (ignored when the kernel reads
    /// only f32) with subgroup or workgroup-memory reductions.
    pub fn source(self, dtype: DType, subgroups: bool) -> String {
        let mut s = String::from(wgsl::COMMON);
        s.push_str(if subgroups { wgsl::REDUCE_SUBGROUP } else { wgsl::REDUCE_SHARED });
        if self.reads_any_dtype() {
            s.push_str(match dtype {
                DType::F32 => wgsl::LOAD_F32,
                DType::F16 => wgsl::LOAD_F16,
                DType::BF16 => wgsl::LOAD_BF16,
            });
        }
        if self.uses_online_entropy() {
            s.push_str(wgsl::ONLINE);
        }
        s.push_str(self.body());
        s
    }
}
