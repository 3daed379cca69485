//! The backward ops of the CUDA backend against central finite differences
//! (tests/src/backward.rs). Ignored unless asked for: they need an NVIDIA GPU.

use entmin_tests::{backward, cuda_backend};

macro_rules! on_cuda {
    ($($op:ident),* $(,)?) => {$(
        #[test]
        #[ignore = "needs an NVIDIA GPU"]
        fn $op() {
            backward::$op(cuda_backend());
        }
    )*};
}

on_cuda!(
    rms_norm_backward,
    linear_backward,
    rope_backward,
    attention_backward,
    silu_mul_backward,
    embedding_backward,
    policy_grad,
);
