//! The shared op parity bodies (tests/src/parity.rs) on the CUDA backend. Ignored
//! unless asked for (`--include-ignored`, as scripts/gpu-check.sh does): they need an
//! NVIDIA GPU, and fail saying what is missing without one.

use entmin_tests::{cuda_backend, parity};

macro_rules! on_cuda {
    ($($op:ident),* $(,)?) => {$(
        #[test]
        #[ignore = "needs an NVIDIA GPU"]
        fn $op() {
            parity::$op(cuda_backend());
        }
    )*};
}

on_cuda!(
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
#[ignore = "needs an NVIDIA GPU"]
fn every_kernel_loads_for_every_dtype() {
    cuda_backend().compile_all().unwrap();
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn kernels_are_timed_on_the_device() {
    use entmin_engine::{Backend, DType};
    let b = cuda_backend();
    let logits = b.upload_as(&vec![0.5; 4 * 1000], &[4, 1000], DType::F32).unwrap();
    let ((lse, _), device_time) = b.timed(|| b.softmax_entropy(&logits, 1.0)).unwrap();
    assert!((b.to_host_f32(&lse).unwrap()[0] - ((1000f32).ln() + 0.5)).abs() < 1e-4);
    assert!(device_time.is_some_and(|d| d > std::time::Duration::ZERO), "{device_time:?}");
}

/// No driver, no device or a device that does not exist: an error that says which,
/// never a panic (cudarc panics when libcuda is missing unless asked first).
#[test]
fn a_missing_gpu_is_a_clear_error() {
    use entmin_engine::cuda::{device_count, CudaBackend};
    let missing = device_count() + 3;
    let err = CudaBackend::new(missing).err().expect("a device that does not exist must not open");
    let msg = err.to_string();
    assert!(msg.contains("cuda"), "{msg}");
    let said_why = ["libcuda", "NVRTC", "requested, the driver sees"].iter().any(|w| msg.contains(w));
    assert!(said_why, "the error must say what is missing: {msg}");
}
