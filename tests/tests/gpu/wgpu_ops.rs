//! The shared op parity bodies (tests/src/parity.rs) on the wgpu backend, on both
//! reduction paths: subgroup operations and the workgroup-memory fallback.
//! Without an adapter the tests print a skip message and pass, unless
//! ENTMIN_REQUIRE_WGPU=1 (CI, with Mesa lavapipe) makes that a failure.

use entmin_tests::parity;
use entmin_tests::wgpu_backends;

macro_rules! on_wgpu {
    ($($op:ident),* $(,)?) => {$(
        #[test]
        fn $op() {
            for (path, b) in wgpu_backends() {
                eprintln!("wgpu {} reductions", path);
                parity::$op(b);
            }
        }
    )*};
}

on_wgpu!(
    rms_norm,
    linear,
    block_weights,
    rope,
    attention,
    write_kv,
    elementwise,
    softmax_entropy,
    sample,
    concat_and_mask,
    entropy_grad,
    em_inf,
    em_kernels_are_batch_invariant,
);

#[test]
fn kernels_are_timed_on_the_device() {
    use entmin_engine::{Backend, DType};
    for (_, b) in wgpu_backends() {
        let logits = b.upload_as(&vec![0.5; 4 * 1000], &[4, 1000], DType::F32).unwrap();
        let ((lse, _), device_time) = b.timed(|| b.softmax_entropy(&logits, 1.0)).unwrap();
        let expected = (1000f32).ln() + 0.5;
        assert!((b.to_host_f32(&lse).unwrap()[0] - expected).abs() < 1e-4, "timing must not change the result");
        if b.has_timestamps() {
            assert!(device_time.is_some_and(|d| d > std::time::Duration::ZERO), "{device_time:?}");
        }
        let (_, copy_time) = b.timed(|| b.concat_rows(&[&logits])).unwrap();
        assert_eq!(copy_time, None, "copies are not compute passes: the caller falls back to a wall clock");
    }
}

#[test]
fn every_kernel_compiles_for_every_dtype() {
    for (_, b) in wgpu_backends() {
        b.compile_all().unwrap();
    }
}
