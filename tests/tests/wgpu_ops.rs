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
    rope,
    attention,
    write_kv,
    elementwise,
    softmax_entropy,
    sample,
    concat_and_mask,
    entropy_grad,
    em_inf,
);

#[test]
fn every_kernel_compiles_for_every_dtype() {
    for (_, b) in wgpu_backends() {
        b.compile_all().unwrap();
    }
}
