//! Whole-model parity bodies run on every GPU backend against the CPU backend.

use entmin_engine::cpu::CpuBackend;
use entmin_engine::SamplingParams;
use entmin_engine::{Backend, DType};
use entmin_models::generate::{generate_batch, GenerationParams, Sampler};
use entmin_models::{Architecture, KvCache, Logits, WeightDtype};

use crate::cached_model;
use crate::gguf_writer::tiny_model_gguf;
use crate::tiny::{config, random_weights};

/// Largest |a − b| over the row, relative to the row's largest |b|.
fn row_rel_err(a: &[f32], b: &[f32]) -> f64 {
    let scale = b.iter().fold(0f64, |m, &x| m.max(x.abs() as f64));
    a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).abs()).fold(0.0, f64::max) / scale.max(1e-30)
}

/// SmolLM2-135M with `gpu_weights` on `gpu` and `cpu_weights` on the CPU backend: the logits at
/// every prompt position (the prefill GEMM path) within 1e-3 of the row's largest, then
/// 32 greedy tokens (the decode GEMV path, sampling and entropies on the device) equal.
pub fn smollm2_matches_cpu<B: Backend>(gpu: &B, gpu_weights: WeightDtype, cpu_weights: WeightDtype) {
    let Some(path) = cached_model("smollm2-135m-instruct") else { return };
    let cpu_lm = entmin_models::load(&CpuBackend, &path, cpu_weights).unwrap();
    let gpu_lm = entmin_models::load(gpu, &path, gpu_weights).unwrap();
    let text = cpu_lm.chat.render(&[entmin_models::Message::new("user", "What is 7 times 8? Explain.")]).unwrap();
    let ids = cpu_lm.tokenizer.encode(&text, true).unwrap();
    let vocab = cpu_lm.model.config.vocab_size;

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

    let params = GenerationParams { max_new_tokens: 32, ..GenerationParams::default() };
    let greedy = SamplingParams { banned: cpu_lm.banned_ids.clone(), ..SamplingParams::greedy() };
    let on_cpu = generate_batch(
        &CpuBackend,
        &cpu_lm,
        std::slice::from_ref(&ids),
        &params,
        &mut Sampler(greedy.clone()),
        &[0],
        |_| (),
    )
    .unwrap();
    let on_gpu =
        generate_batch(gpu, &gpu_lm, std::slice::from_ref(&ids), &params, &mut Sampler(greedy), &[0], |_| ()).unwrap();
    assert_eq!(on_gpu[0].tokens.len(), 32.min(on_cpu[0].tokens.len()));
    assert_eq!(on_gpu[0].tokens, on_cpu[0].tokens, "greedy tokens on {} vs cpu", gpu.name());
    for (i, (g, c)) in on_gpu[0].entropies.iter().zip(&on_cpu[0].entropies).enumerate() {
        assert!((g - c).abs() < 1e-3 * c.max(1.0), "entropy of step {i}: {g} vs {c}");
    }
}

/// Tiny random Llama and Qwen2 models: a batch of prompts of different lengths,
/// greedy and sampled, gives the same tokens on `gpu` as on the CPU backend.
pub fn tiny_batched_generation_matches_cpu<B: Backend>(gpu: &B) {
    for arch in [Architecture::Llama, Architecture::Qwen2] {
        let c = config(arch, arch == Architecture::Llama);
        let w = random_weights(&c, 21);
        let dir = crate::scratch_dir(&format!("{}-batch", gpu.name()));
        let path = dir.join(format!("tiny-{}.gguf", arch.name()));
        std::fs::write(&path, tiny_model_gguf(&c, &w).build()).unwrap();
        let cpu_lm = entmin_models::load(&CpuBackend, &path, DType::F32).unwrap();
        let gpu_lm = entmin_models::load(gpu, &path, DType::F32).unwrap();
        // Different lengths: slice_rows / concat_rows and per-sequence attention.
        let prompts = vec![vec![5u32, 17, 96], vec![42u32], vec![7u32, 7, 7, 7, 7, 1], vec![3u32, 9]];
        let params = GenerationParams { max_new_tokens: 10, ..GenerationParams::default() };
        for sampling in [SamplingParams::greedy(), SamplingParams { temperature: 0.7, ..Default::default() }] {
            let seeds = [1u64, 2, 3, 4];
            let run_cpu =
                generate_batch(&CpuBackend, &cpu_lm, &prompts, &params, &mut Sampler(sampling.clone()), &seeds, |_| ());
            let run_gpu =
                generate_batch(gpu, &gpu_lm, &prompts, &params, &mut Sampler(sampling.clone()), &seeds, |_| ());
            for (i, (g, c)) in run_gpu.unwrap().iter().zip(run_cpu.unwrap()).enumerate() {
                assert_eq!(g.tokens, c.tokens, "{arch:?} sequence {i} ({sampling:?})");
            }
        }
    }
}
