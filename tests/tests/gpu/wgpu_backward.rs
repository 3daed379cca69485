//! The backward ops of the wgpu backend against central finite differences
//! (tests/src/backward.rs), on both reduction paths. Without an adapter the tests print
//! a skip message and pass, unless ENTMIN_REQUIRE_WGPU=1 (CI, with Mesa lavapipe).

use entmin_engine::cpu::CpuBackend;
use entmin_engine::{Backend, HostData, Rng};
use entmin_tests::{backward, random_vec, wgpu_backends};

macro_rules! on_wgpu {
    ($($op:ident),* $(,)?) => {$(
        #[test]
        fn $op() {
            for (path, b) in wgpu_backends() {
                eprintln!("wgpu {} reductions", path);
                backward::$op(b);
            }
        }
    )*};
}

on_wgpu!(
    rms_norm_backward,
    linear_backward,
    rope_backward,
    attention_backward,
    silu_mul_backward,
    embedding_backward,
    policy_grad,
);

/// (dx, dw, dbias) of `linear_backward` on `b`, the weight gradients starting at dw0, db0.
fn linear_grads<B: Backend>(
    b: &B,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dw0: &[f32],
    db0: &[f32],
    m: usize,
) -> [Vec<f32>; 3] {
    let (n, k) = (db0.len(), x.len() / m);
    let up = |data: &[f32], shape: &[usize]| b.upload(HostData::F32(data), shape).unwrap();
    let (mut dw, mut db) = (up(dw0, &[n, k]), up(db0, &[n]));
    let dx = b.linear_backward(&up(x, &[m, k]), &up(w, &[n, k]), &up(dy, &[m, n]), &mut dw, Some(&mut db)).unwrap();
    [&dx, &dw, &db].map(|t| b.to_host_f32(t).unwrap())
}

/// `d_table0` plus the embedding gradient of `dy` for `ids`, on `b`.
fn embedding_grad<B: Backend>(b: &B, ids: &[u32], dy: &[f32], d_table0: &[f32], dim: usize) -> Vec<f32> {
    let mut table = b.upload(HostData::F32(d_table0), &[d_table0.len() / dim, dim]).unwrap();
    b.embedding_backward(ids, &b.upload(HostData::F32(dy), &[ids.len(), dim]).unwrap(), &mut table).unwrap();
    b.to_host_f32(&table).unwrap()
}

/// Differences relative to the largest value: long f32 sums carry absolute errors that
/// grow with the values.
fn assert_near(what: &str, got: &[f32], want: &[f32]) {
    let scale = 1.0 + want.iter().fold(0f32, |m, x| m.max(x.abs()));
    let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max) / scale;
    assert!(worst < 1e-5, "{what}: worst difference {worst} of the largest value");
}

/// linear's backward with a reduction longer than one workgroup runs (split into chunks),
/// then linear's and the embedding's backward on a device that binds at most 64 KiB at
/// once: w, dw, dbias and the table in windows of 256 rows, x, dy and dx in windows of 24.
/// Both must match the CPU backend.
#[test]
fn split_reductions_and_binding_windows_match_the_cpu() {
    use entmin_engine::wgpu::{WgpuBackend, WgpuOptions};
    if wgpu_backends().is_empty() {
        return;
    }
    let windowed = WgpuBackend::with_options(&WgpuOptions { max_binding_bytes: Some(64 << 10), ..Default::default() })
        .expect("a second device on the adapter");
    let mut rng = Rng::new(8);
    for (gpu, (m, n, k)) in [(&wgpu_backends()[0].1, (3, 10_000, 64)), (&windowed, (70, 600, 64))] {
        let (x, w, dy) =
            (random_vec(&mut rng, m * k, 1.0), random_vec(&mut rng, n * k, 1.0), random_vec(&mut rng, m * n, 1.0));
        let (dw0, db0) = (random_vec(&mut rng, n * k, 1.0), random_vec(&mut rng, n, 1.0));
        let want = linear_grads(&CpuBackend, &x, &w, &dy, &dw0, &db0, m);
        let got = linear_grads(gpu, &x, &w, &dy, &dw0, &db0, m);
        for (i, name) in ["dx", "dw", "dbias"].iter().enumerate() {
            assert_near(&format!("linear {name}, m={m} n={n} k={k}"), &got[i], &want[i]);
        }
    }
    let (vocab, dim) = (600, 64);
    let ids = [0u32, 300, 599, 255, 256, 300];
    let dy = random_vec(&mut rng, ids.len() * dim, 1.0);
    let table0 = random_vec(&mut rng, vocab * dim, 1.0);
    assert_eq!(
        embedding_grad(&windowed, &ids, &dy, &table0, dim),
        embedding_grad(&CpuBackend, &ids, &dy, &table0, dim),
        "embedding gradient rows across windows"
    );
}
