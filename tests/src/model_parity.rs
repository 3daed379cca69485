//! Whole-model parity bodies run on every GPU backend against the CPU backend.

use entmin_engine::cpu::CpuBackend;
use entmin_engine::SamplingParams;
use entmin_engine::{Backend, DType};
use entmin_models::generate::{generate_batch, GenerationParams, Sampler};
use entmin_models::{Architecture, KvCache, Logits, WeightDtype};

use crate::cached_model;
use crate::gguf_writer::{tiny_model_gguf, tiny_model_gguf_as, Matrices};
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

/// A tiny Q8_0 model stays in its blocks on `gpu` (named `backend` in its notices),
/// with logits within 1e-4 of the CPU's on the same weights in f32; a format no GPU
/// kernel decodes (IQ4_NL) is converted to bf16 under `auto` with one notice saying so,
/// and runs.
pub fn block_formats_stay_blocks<B: Backend>(gpu: &B, backend: &str) {
    let mut c = config(Architecture::Qwen2, false);
    (c.hidden_size, c.intermediate_size, c.n_heads) = (64, 96, 8);
    let dir = crate::scratch_dir(&format!("{backend}-blocks"));
    let weights = random_weights(&c, 9);
    let q8 = dir.join("tiny-q8_0.gguf");
    std::fs::write(&q8, tiny_model_gguf_as(&c, &weights, Matrices::Q8_0).build()).unwrap();
    let on_gpu = entmin_models::load(gpu, &q8, WeightDtype::Auto).unwrap();
    assert!(on_gpu.model.matrices().iter().all(|(_, t)| t.dtype() == DType::Q8_0), "{}", on_gpu.model.weight_types());
    assert!(on_gpu.notices.is_empty(), "{:?}", on_gpu.notices);
    let exact = entmin_models::load(&CpuBackend, &q8, DType::F32).unwrap();
    let ids = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    let logits = |gpu_side: bool| -> Vec<f32> {
        if gpu_side {
            let mut cache = KvCache::new(gpu, &on_gpu.model.config, ids.len()).unwrap();
            gpu.to_host_f32(&on_gpu.model.forward(gpu, &ids, &mut cache, Logits::All).unwrap()).unwrap()
        } else {
            let mut cache = KvCache::new(&CpuBackend, &exact.model.config, ids.len()).unwrap();
            CpuBackend.to_host_f32(&exact.model.forward(&CpuBackend, &ids, &mut cache, Logits::All).unwrap()).unwrap()
        }
    };
    let (got, want) = (logits(true), logits(false));
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 1e-4 * scale, "logit {i}: {g} on {backend}'s Q8_0 blocks vs {w} on the CPU in f32");
    }

    let iq4 = dir.join("tiny-iq4_nl.gguf");
    std::fs::write(&iq4, tiny_model_gguf_as(&c, &weights, Matrices::Iq4Nl).build()).unwrap();
    assert!(!gpu.capabilities().weight_dtypes.contains(&DType::IQ4_NL));
    let lm = entmin_models::load(gpu, &iq4, WeightDtype::Auto).unwrap();
    assert!(lm.model.matrices().iter().all(|(_, t)| t.dtype() == DType::BF16));
    let notes: Vec<&String> = lm.notices.iter().filter(|n| n.contains("converted to bf16")).collect();
    assert_eq!(notes.len(), 1, "{:?}", lm.notices);
    assert!(notes[0].contains("16 IQ4_NL") && notes[0].contains(backend), "{}", notes[0]);
    let mut cache = KvCache::new(gpu, &lm.model.config, 8).unwrap();
    let logits = gpu.to_host_f32(&lm.model.forward(gpu, &[1, 2, 3], &mut cache, Logits::Last).unwrap()).unwrap();
    assert!(logits.iter().all(|v| v.is_finite()));
}
