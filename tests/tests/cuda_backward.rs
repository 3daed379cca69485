//! The backward ops of the CUDA backend against central finite differences
//! (tests/src/backward.rs). Without a GPU the tests print a skip message and pass,
//! unless ENTMIN_REQUIRE_CUDA=1 (set by scripts/gpu-check.sh) makes that a failure.

use entmin_tests::{backward, cuda_backend};

macro_rules! on_cuda {
    ($($op:ident),* $(,)?) => {$(
        #[test]
        fn $op() {
            if let Some(b) = cuda_backend() {
                backward::$op(b);
            }
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
