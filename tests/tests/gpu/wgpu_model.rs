//! The wgpu backend end to end: whole models against the CPU backend, and tensors
//! larger than the adapter's storage-binding limit. Skips without an adapter unless
//! ENTMIN_REQUIRE_WGPU=1 (see wgpu_ops.rs).

use entmin_engine::cpu::CpuBackend;
use entmin_engine::{Backend, DType, HostData, Rng, SamplingParams};
use entmin_models::{Architecture, KvCache, Logits};
use entmin_tests::gguf_writer::tiny_model_gguf;
use entmin_tests::tiny::{config, random_weights};
use entmin_tests::{model_parity, random_vec, wgpu_backends};

#[test]
fn smollm2_greedy_tokens_and_logits_match_cpu() {
    if let Some((_, gpu)) = wgpu_backends().first() {
        model_parity::smollm2_matches_cpu(gpu, DType::F32);
    }
}

#[test]
fn batched_sampled_generation_matches_cpu_on_a_tiny_model() {
    if let Some((_, gpu)) = wgpu_backends().first() {
        model_parity::tiny_batched_generation_matches_cpu(gpu);
    }
}

/// A weight and an embedding table bigger than one storage binding are split into
/// windows of rows; the results must not notice.
#[test]
fn tensors_beyond_the_binding_limit_are_windowed() {
    use entmin_engine::wgpu::{WgpuBackend, WgpuOptions};
    if wgpu_backends().is_empty() {
        return;
    }
    // Adapters that bind more than lavapipe's 128 MiB are capped to it, so the windows
    // are exercised everywhere without gigabytes of test data.
    let gpu = WgpuBackend::with_options(&WgpuOptions { max_binding_bytes: Some(128 << 20), ..Default::default() })
        .expect("a second device on the adapter");
    let gpu = &gpu;
    let limit = gpu.max_binding_bytes();
    assert!(limit <= 128 << 20, "binding cap ignored: {limit}");
    let k = 64;
    let n = (limit / (k as u64 * 2)) as usize + 999; // bf16 rows: just over one binding
    let mut rng = Rng::new(3);
    let w = random_vec(&mut rng, n * k, 1.0);
    let x = random_vec(&mut rng, 3 * k, 1.0);
    let wc = CpuBackend.upload_as(&w, &[n, k], DType::BF16).unwrap();
    let wg = gpu.upload_as(&w, &[n, k], DType::BF16).unwrap();
    drop(w);
    for rows in [1, 3] {
        let want = CpuBackend
            .to_host_f32(
                &CpuBackend
                    .linear(&CpuBackend.upload(HostData::F32(&x[..rows * k]), &[rows, k]).unwrap(), &wc, None)
                    .unwrap(),
            )
            .unwrap();
        let got = gpu
            .to_host_f32(
                &gpu.linear(&gpu.upload(HostData::F32(&x[..rows * k]), &[rows, k]).unwrap(), &wg, None).unwrap(),
            )
            .unwrap();
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-4, "linear over {n} rows, {rows} input rows: worst difference {worst}");
    }
    let ids = [0u32, 1, (n / 2) as u32, (n - 1) as u32, (n - 500) as u32];
    let want = CpuBackend.to_host_f32(&CpuBackend.embedding(&wc, &ids).unwrap()).unwrap();
    let got = gpu.to_host_f32(&gpu.embedding(&wg, &ids).unwrap()).unwrap();
    assert_eq!(got, want, "embedding rows on both sides of a window boundary");
    assert!(gpu.embedding(&wg, &[n as u32]).is_err(), "an id past the table is an error, not a read out of bounds");
}

/// After the first tokens, a decode step allocates no output buffers (they come from the
/// pool) and creates bind groups only where its parameters change (positions).
#[test]
fn steady_decoding_reuses_buffers_and_bind_groups() {
    use entmin_engine::wgpu::{WgpuBackend, WgpuOptions};
    if wgpu_backends().is_empty() {
        return;
    }
    // A backend of its own, so that other tests' work does not move the counters.
    let gpu = WgpuBackend::with_options(&WgpuOptions::default()).unwrap();
    let c = config(Architecture::Qwen2, false);
    let w = random_weights(&c, 5);
    let path = entmin_tests::scratch_dir("wgpu-reuse").join("tiny.gguf");
    std::fs::write(&path, tiny_model_gguf(&c, &w).build()).unwrap();
    let lm = entmin_models::load(&gpu, &path, DType::F32).unwrap();
    let mut cache = KvCache::new(&gpu, &lm.model.config, 16).unwrap();
    let mut logits = lm.model.forward(&gpu, &[1, 2, 3], &mut cache, Logits::Last).unwrap();
    let mut step = |logits: &entmin_engine::Tensor<_>| {
        let tok = gpu.sample(logits, &SamplingParams::greedy(), &mut [Rng::new(0)]).unwrap()[0].token;
        lm.model.forward(&gpu, &[tok], &mut cache, Logits::Last).unwrap()
    };
    for _ in 0..3 {
        logits = step(&logits);
    }
    let (d0, b0, g0) = gpu.allocation_counts();
    logits = step(&logits);
    let (d1, b1, g1) = gpu.allocation_counts();
    drop(logits);
    assert_eq!(b1 - b0, 0, "a steady decode step allocated {} output buffers", b1 - b0);
    // Per layer attention (its start position changes) and RoPE on q and k (fresh angle
    // uploads), plus the embedding and the sampler (fresh id / uniform uploads), get new
    // bind groups; every GEMV, norm and elementwise dispatch reuses its own.
    let expected_new = 3 * c.n_layers as u64 + 2;
    assert_eq!(g1 - g0, expected_new, "new bind groups in a step of {} dispatches", d1 - d0);
}

/// A backend without block kernels gets a GGUF's Q8_0 matrices as bf16 under `auto`,
/// with one notice saying so, and runs the model: never an error.
#[test]
fn block_formats_are_converted_for_wgpu_with_a_notice() {
    let Some((_, gpu)) = wgpu_backends().first() else { return };
    let mut c = config(Architecture::Qwen2, false);
    (c.hidden_size, c.intermediate_size, c.n_heads) = (64, 96, 8);
    let path = entmin_tests::scratch_dir("wgpu-q8_0").join("tiny-q8_0.gguf");
    std::fs::write(&path, entmin_tests::gguf_writer::tiny_model_gguf_as(&c, &random_weights(&c, 9), true).build())
        .unwrap();
    assert!(!gpu.capabilities().weight_dtypes.contains(&DType::Q8_0));
    let lm = entmin_models::load(gpu, &path, entmin_models::WeightDtype::Auto).unwrap();
    assert!(lm.model.matrices().iter().all(|(_, t)| t.dtype() == DType::BF16));
    let notes: Vec<&String> = lm.notices.iter().filter(|n| n.contains("converted to bf16")).collect();
    assert_eq!(notes.len(), 1, "{:?}", lm.notices);
    assert!(notes[0].contains("16 Q8_0") && notes[0].contains("wgpu"), "{}", notes[0]);
    let mut cache = KvCache::new(gpu, &lm.model.config, 8).unwrap();
    let logits = gpu.to_host_f32(&lm.model.forward(gpu, &[1, 2, 3], &mut cache, Logits::Last).unwrap()).unwrap();
    assert!(logits.iter().all(|v| v.is_finite()));
}
