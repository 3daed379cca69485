//! The wgpu backend end to end: whole models against the CPU backend, and tensors
//! larger than the adapter's storage-binding limit. Skips without an adapter unless
//! ENTMIN_REQUIRE_WGPU=1 (see wgpu_ops.rs).

use entmin_engine::cpu::CpuBackend;
use entmin_engine::{Backend, DType, HostData, Rng, SamplingParams};
use entmin_models::generate::{generate_batch, GenerationParams, Sampler};
use entmin_models::{Architecture, KvCache, Logits};
use entmin_tests::gguf_writer::tiny_model_gguf;
use entmin_tests::tiny::{config, random_weights};
use entmin_tests::{cached_model, random_vec, wgpu_backends};

/// Largest |a − b| over the row, relative to the row's largest |b|.
fn row_rel_err(a: &[f32], b: &[f32]) -> f64 {
    let scale = b.iter().fold(0f64, |m, &x| m.max(x.abs() as f64));
    a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).abs()).fold(0.0, f64::max) / scale.max(1e-30)
}

#[test]
fn smollm2_greedy_tokens_and_logits_match_cpu() {
    let Some((_, gpu)) = wgpu_backends().first() else { return };
    let Some(path) = cached_model("smollm2-135m-instruct") else { return };
    let cpu_lm = entmin_models::load(&CpuBackend, &path, DType::F32).unwrap();
    let gpu_lm = entmin_models::load(gpu, &path, DType::F32).unwrap();
    let text = cpu_lm.chat.render(&[entmin_models::Message::new("user", "What is 7 times 8? Explain.")]).unwrap();
    let ids = cpu_lm.tokenizer.encode(&text, true).unwrap();
    let vocab = cpu_lm.model.config.vocab_size;

    // Every prompt position's logits (the tiled matmul path).
    let all = |lm_cpu: bool| -> Vec<f32> {
        if lm_cpu {
            let mut cache = KvCache::new(&CpuBackend, &cpu_lm.model.config, ids.len()).unwrap();
            CpuBackend.to_host_f32(&cpu_lm.model.forward(&CpuBackend, &ids, &mut cache, Logits::All).unwrap()).unwrap()
        } else {
            let mut cache = KvCache::new(gpu, &gpu_lm.model.config, ids.len()).unwrap();
            gpu.to_host_f32(&gpu_lm.model.forward(gpu, &ids, &mut cache, Logits::All).unwrap()).unwrap()
        }
    };
    let (want, got) = (all(true), all(false));
    for p in 0..ids.len() {
        let err = row_rel_err(&got[p * vocab..(p + 1) * vocab], &want[p * vocab..(p + 1) * vocab]);
        assert!(err < 1e-3, "prompt position {p}: logits differ by {err:.2e} (relative to the row's largest)");
    }

    // 32 greedy tokens (the GEMV decode path, sampling and entropies on the GPU).
    let params = GenerationParams { max_new_tokens: 32, stop_strings: vec![] };
    let greedy = SamplingParams { banned: cpu_lm.banned_ids.clone(), ..SamplingParams::greedy() };
    let on_cpu = generate_batch(
        &CpuBackend,
        &cpu_lm,
        std::slice::from_ref(&ids),
        &params,
        &mut Sampler(greedy.clone()),
        &[0],
        &mut |_| {},
    )
    .unwrap();
    let on_gpu =
        generate_batch(gpu, &gpu_lm, std::slice::from_ref(&ids), &params, &mut Sampler(greedy), &[0], &mut |_| {})
            .unwrap();
    assert_eq!(on_gpu[0].tokens.len(), 32.min(on_cpu[0].tokens.len()));
    assert_eq!(on_gpu[0].tokens, on_cpu[0].tokens, "greedy tokens on wgpu vs cpu");
    for (i, (g, c)) in on_gpu[0].entropies.iter().zip(&on_cpu[0].entropies).enumerate() {
        assert!((g - c).abs() < 1e-3 * c.max(1.0), "entropy of step {i}: {g} vs {c}");
    }
}

#[test]
fn batched_sampled_generation_matches_cpu_on_a_tiny_model() {
    let Some((_, gpu)) = wgpu_backends().first() else { return };
    for arch in [Architecture::Llama, Architecture::Qwen2] {
        let c = config(arch, arch == Architecture::Llama);
        let w = random_weights(&c, 21);
        let dir = entmin_tests::scratch_dir("wgpu-batch");
        let path = dir.join(format!("tiny-{}.gguf", arch.name()));
        std::fs::write(&path, tiny_model_gguf(&c, &w).build()).unwrap();
        let cpu_lm = entmin_models::load(&CpuBackend, &path, DType::F32).unwrap();
        let gpu_lm = entmin_models::load(gpu, &path, DType::F32).unwrap();
        // Different lengths: slice_rows / concat_rows and per-sequence attention.
        let prompts = vec![vec![5u32, 17, 96], vec![42u32], vec![7u32, 7, 7, 7, 7, 1], vec![3u32, 9]];
        let params = GenerationParams { max_new_tokens: 10, stop_strings: vec![] };
        for sampling in [SamplingParams::greedy(), SamplingParams { temperature: 0.7, ..Default::default() }] {
            let seeds = [1u64, 2, 3, 4];
            let run_cpu = generate_batch(
                &CpuBackend,
                &cpu_lm,
                &prompts,
                &params,
                &mut Sampler(sampling.clone()),
                &seeds,
                &mut |_| {},
            );
            let run_gpu =
                generate_batch(gpu, &gpu_lm, &prompts, &params, &mut Sampler(sampling.clone()), &seeds, &mut |_| {});
            for (i, (g, c)) in run_gpu.unwrap().iter().zip(run_cpu.unwrap()).enumerate() {
                assert_eq!(g.tokens, c.tokens, "{arch:?} sequence {i} ({sampling:?})");
            }
        }
    }
}

/// A weight and an embedding table bigger than one storage binding are split into
/// windows of rows; the results must not notice.
#[test]
fn tensors_beyond_the_binding_limit_are_windowed() {
    let Some((_, gpu)) = wgpu_backends().first() else { return };
    let limit = gpu.max_binding_bytes();
    if limit > 512 << 20 {
        eprintln!(
            "skipping: this adapter binds {limit} bytes at once; the test would need more memory than it is worth"
        );
        return;
    }
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
