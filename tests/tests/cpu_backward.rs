//! The backward ops of the CPU backend against central finite differences
//! (tests/src/backward.rs).

use entmin_engine::cpu::CpuBackend;
use entmin_tests::backward;

macro_rules! on_cpu {
    ($($op:ident),* $(,)?) => {$(
        #[test]
        fn $op() {
            backward::$op(&CpuBackend);
        }
    )*};
}

on_cpu!(
    rms_norm_backward,
    linear_backward,
    rope_backward,
    attention_backward,
    silu_mul_backward,
    embedding_backward,
    policy_grad,
);
