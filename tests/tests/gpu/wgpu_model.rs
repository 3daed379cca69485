//! The wgpu backend end to end: whole models against the CPU backend, and tensors
//! larger than the adapter's storage-binding limit. Skips without an adapter unless
//! ENTMIN_REQUIRE_WGPU=1 (see wgpu_ops.rs).

use entmin_engine::cpu::CpuBackend;
use entmin_engine::{Backend, DType, HostData, Rng, SamplingParams};
use entmin_models::{Architecture, KvCache, Logits, WeightDtype};
use entmin_tests::gguf_writer::tiny_model_gguf;
use entmin_tests::tiny::{config, random_weights};
use entmin_tests::{model_parity, random_vec, wgpu_backends};

#[test]
fn smollm2_greedy_tokens_and_logits_match_cpu() {
    if let Some((_, gpu)) = wgpu_backends().first() {
        model_parity::smollm2_matches_cpu(gpu, DType::F32.into(), DType::F32.into());
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
    drop((wc, wg));

    // Q8_0 rows of three 34-byte blocks (102 bytes, not a whole number of words): windows
    // start on rows whose offsets the adapter accepts and end inside a word.
    let k = 96;
    let n = (limit / 102) as usize + 999;
    let bytes = entmin_engine::quant::random_blocks(DType::Q8_0, n * k, &mut rng);
    let mut w = vec![0f32; n * k];
    entmin_engine::quant::dequantize(DType::Q8_0, &bytes, &mut w).unwrap();
    let wg = gpu.upload(HostData::Blocks { dtype: DType::Q8_0, bytes: &bytes, elements: n * k }, &[n, k]).unwrap();
    drop(bytes);
    let wc = CpuBackend.upload(HostData::F32(&w), &[n, k]).unwrap();
    drop(w);
    let x = random_vec(&mut rng, 3 * k, 1.0);
    for rows in [1, 3] {
        let on = |b: &dyn Fn(&[f32]) -> Vec<f32>| b(&x[..rows * k]);
        let want = on(&|x| {
            let x = CpuBackend.upload(HostData::F32(x), &[rows, k]).unwrap();
            CpuBackend.to_host_f32(&CpuBackend.linear(&x, &wc, None).unwrap()).unwrap()
        });
        let got = on(&|x| {
            let x = gpu.upload(HostData::F32(x), &[rows, k]).unwrap();
            gpu.to_host_f32(&gpu.linear(&x, &wg, None).unwrap()).unwrap()
        });
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-5, "Q8_0 linear over {n} rows, {rows} input rows: worst difference {worst}");
    }
    let ids = [0u32, 1, (n / 2) as u32, (n - 1) as u32, (n - 500) as u32];
    let want = CpuBackend.to_host_f32(&CpuBackend.embedding(&wc, &ids).unwrap()).unwrap();
    assert_eq!(gpu.to_host_f32(&gpu.embedding(&wg, &ids).unwrap()).unwrap(), want, "Q8_0 embedding rows across windows");
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

/// SmolLM2 on its own Q4_1 / Q8_0 blocks (`--dtype auto`, decoded in the kernels) against
/// the CPU running the same weights dequantised to f32: both multiply f32 activations, so
/// only the order of the sums differs and the CPU's bound for f32 weights holds (the
/// CPU's block path rounds activations to 8 bits and is checked against f32 by
/// quantised_models.rs with its own, looser bound). Greedy tokens are identical.
#[test]
fn smollm2_on_its_blocks_matches_the_cpu_on_the_same_weights() {
    let Some((_, gpu)) = wgpu_backends().first() else { return };
    model_parity::smollm2_matches_cpu(gpu, WeightDtype::Auto, DType::F32.into());
}

/// A tiny Q8_0 model stays in its blocks on wgpu; a format no wgpu kernel decodes
/// (IQ4_NL) is converted to bf16 under `auto` with one notice saying so, and runs.
#[test]
fn block_formats_stay_blocks_on_wgpu_and_others_are_converted_with_a_notice() {
    if let Some((_, gpu)) = wgpu_backends().first() {
        model_parity::block_formats_stay_blocks(gpu, "wgpu");
    }
}
