//! The shared op parity bodies (tests/src/parity.rs) on the CPU backend.

use entmin_engine::cpu::CpuBackend;
use entmin_tests::parity;

#[test]
fn rms_norm() {
    parity::rms_norm(&CpuBackend);
}

#[test]
fn linear() {
    parity::linear(&CpuBackend);
}

#[test]
fn rope() {
    parity::rope(&CpuBackend);
}

#[test]
fn attention() {
    parity::attention(&CpuBackend);
}

#[test]
fn write_kv() {
    parity::write_kv(&CpuBackend);
}

#[test]
fn elementwise() {
    parity::elementwise(&CpuBackend);
}

#[test]
fn softmax_entropy() {
    parity::softmax_entropy(&CpuBackend);
}

#[test]
fn sample() {
    parity::sample(&CpuBackend);
}

#[test]
fn concat_and_mask() {
    parity::concat_and_mask(&CpuBackend);
}

#[test]
fn entropy_grad() {
    parity::entropy_grad(&CpuBackend);
}

#[test]
fn em_inf() {
    parity::em_inf(&CpuBackend);
}

#[test]
fn em_kernels_are_batch_invariant() {
    parity::em_kernels_are_batch_invariant(&CpuBackend);
}

/// The CPU cuts long rows into fixed segments and merges them in row order, so the
/// thread count changes no bit either (a run reproduces on a machine with more cores).
#[test]
fn em_kernels_give_the_same_bits_on_any_thread_count() {
    use entmin_engine::{Backend, EmInfParams, Rng};
    let v = 151_936;
    let mut rng = Rng::new(12);
    let logits = entmin_tests::random_vec(&mut rng, 2 * v, 6.0);
    let prm = EmInfParams { threshold: 0.0, max_steps: 3, ..EmInfParams::default() };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let b = CpuBackend;
            let t = b.upload_as(&logits, &[2, v], entmin_engine::DType::F32).unwrap();
            let (lse, ent) = b.softmax_entropy(&t, 0.7).unwrap();
            let up = b.upload_as(&[1.0, -0.5], &[2], entmin_engine::DType::F32).unwrap();
            let grad = b.to_host_f32(&b.entropy_grad(&t, &lse, &ent, &up, 0.7).unwrap()).unwrap();
            let (z, stats) = b.em_inf(&t, &prm).unwrap();
            let mut out = b.to_host_f32(&lse).unwrap();
            out.extend(b.to_host_f32(&ent).unwrap());
            out.extend(grad);
            out.extend(b.to_host_f32(&z).unwrap());
            out.extend(stats.iter().map(|s| s.entropy_after));
            out.into_iter().map(f32::to_bits).collect::<Vec<_>>()
        })
    };
    let one = run(1);
    assert_eq!(one, run(3), "1 thread vs 3");
    assert_eq!(one, run(8), "1 thread vs 8");
}
