//! GPU kernel sources of entmin, kept as plain files so they can be read, linted
//! and compiled on their own: `kernels/wgsl/*.wgsl` (wgpu shader modules, composed
//! and compiled at run time by `entmin_engine::wgpu`) and `kernels/cuda/*.cu` (compiled
//! at run time with NVRTC by `entmin_engine::cuda`; launch ABI in docs/cuda.md).
//! The CPU backend's kernels live in `engine/src/cpu/`, one file per op.

/// WGSL sources. A kernel is compiled as `COMMON` + one reduction prelude
/// (`REDUCE_SUBGROUP` or `REDUCE_SHARED`) + optionally a `LOAD_*` prelude for the
/// dtype of binding 0 + optionally `ONLINE` + the kernel.
pub mod wgsl {
    pub const COMMON: &str = include_str!("../wgsl/common.wgsl");
    pub const REDUCE_SUBGROUP: &str = include_str!("../wgsl/reduce_subgroup.wgsl");
    pub const REDUCE_SHARED: &str = include_str!("../wgsl/reduce_shared.wgsl");
    pub const LOAD_F32: &str = include_str!("../wgsl/load_f32.wgsl");
    pub const LOAD_F16: &str = include_str!("../wgsl/load_f16.wgsl");
    pub const LOAD_BF16: &str = include_str!("../wgsl/load_bf16.wgsl");
    pub const LOAD_BLOCKS: &str = include_str!("../wgsl/load_blocks.wgsl");
    pub const ONLINE: &str = include_str!("../wgsl/online.wgsl");

    pub const EMBEDDING: &str = include_str!("../wgsl/embedding.wgsl");
    pub const RMS_NORM: &str = include_str!("../wgsl/rms_norm.wgsl");
    pub const GEMV: &str = include_str!("../wgsl/gemv.wgsl");
    pub const MATMUL: &str = include_str!("../wgsl/matmul.wgsl");
    pub const ROPE: &str = include_str!("../wgsl/rope.wgsl");
    pub const ATTENTION: &str = include_str!("../wgsl/attention.wgsl");
    pub const SILU_MUL: &str = include_str!("../wgsl/silu_mul.wgsl");
    pub const ADD: &str = include_str!("../wgsl/add.wgsl");
    pub const MASK_COLUMNS: &str = include_str!("../wgsl/mask_columns.wgsl");
    pub const SOFTMAX_ENTROPY: &str = include_str!("../wgsl/softmax_entropy.wgsl");
    pub const ENTROPY_GRAD: &str = include_str!("../wgsl/entropy_grad.wgsl");
    pub const EM_INF: &str = include_str!("../wgsl/em_inf.wgsl");
    pub const SAMPLE: &str = include_str!("../wgsl/sample.wgsl");
    pub const RMS_NORM_BACKWARD: &str = include_str!("../wgsl/rms_norm_backward.wgsl");
    pub const MATMUL_STRIDED: &str = include_str!("../wgsl/matmul_strided.wgsl");
    pub const SILU_MUL_BACKWARD: &str = include_str!("../wgsl/silu_mul_backward.wgsl");
    pub const EMBEDDING_BACKWARD: &str = include_str!("../wgsl/embedding_backward.wgsl");
    pub const ATTENTION_BACKWARD_QUERY: &str = include_str!("../wgsl/attention_backward_query.wgsl");
    pub const ATTENTION_BACKWARD_KV: &str = include_str!("../wgsl/attention_backward_kv.wgsl");
    pub const TOKEN_LOGPROBS: &str = include_str!("../wgsl/token_logprobs.wgsl");
}

/// CUDA sources. A kernel is compiled as `COMMON` + the kernel, with `-DENTMIN_F32`,
/// `-DENTMIN_F16` or `-DENTMIN_BF16` selecting the storage dtype it reads.
pub mod cuda {
    pub const COMMON: &str = include_str!("../cuda/common.cuh");

    pub const EMBEDDING: &str = include_str!("../cuda/embedding.cu");
    pub const RMS_NORM: &str = include_str!("../cuda/rms_norm.cu");
    pub const GEMV: &str = include_str!("../cuda/gemv.cu");
    pub const MATMUL: &str = include_str!("../cuda/matmul.cu");
    pub const ROPE: &str = include_str!("../cuda/rope.cu");
    pub const ATTENTION: &str = include_str!("../cuda/attention.cu");
    pub const SILU_MUL: &str = include_str!("../cuda/silu_mul.cu");
    pub const ADD: &str = include_str!("../cuda/add.cu");
    pub const MASK_COLUMNS: &str = include_str!("../cuda/mask_columns.cu");
    pub const SOFTMAX_ENTROPY: &str = include_str!("../cuda/softmax_entropy.cu");
    pub const ENTROPY_GRAD: &str = include_str!("../cuda/entropy_grad.cu");
    pub const EM_INF: &str = include_str!("../cuda/em_inf.cu");
    pub const SAMPLE: &str = include_str!("../cuda/sample.cu");
    pub const RMS_NORM_BACKWARD: &str = include_str!("../cuda/rms_norm_backward.cu");
    pub const MATMUL_STRIDED: &str = include_str!("../cuda/matmul_strided.cu");
    pub const SILU_MUL_BACKWARD: &str = include_str!("../cuda/silu_mul_backward.cu");
    pub const EMBEDDING_BACKWARD: &str = include_str!("../cuda/embedding_backward.cu");
    pub const ATTENTION_BACKWARD_QUERY: &str = include_str!("../cuda/attention_backward_query.cu");
    pub const ATTENTION_BACKWARD_KV: &str = include_str!("../cuda/attention_backward_kv.cu");
    pub const TOKEN_LOGPROBS: &str = include_str!("../cuda/token_logprobs.cu");

    /// Kernels that may spill registers, with the reason; the compile test fails on
    /// any other spill.
    pub const SPILLS_ALLOWED: &str = include_str!("../cuda/SPILLS_ALLOWED");
}
