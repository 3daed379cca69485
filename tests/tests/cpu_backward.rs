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

/// GPU backends have no backward ops yet: the error says so instead of a wrong answer.
#[test]
fn gpu_backends_refuse_backward_ops_clearly() {
    use entmin_engine::{Backend, DType};
    for (_, b) in entmin_tests::wgpu_backends() {
        let x = b.upload_as(&[1.0; 4], &[2, 2], DType::F32).unwrap();
        let err = b.silu_mul_backward(&x, &x, &x).expect_err("no wgpu backward yet");
        assert!(err.to_string().contains("CPU backend only"), "{err}");
    }
}
