//! The CUDA backend end to end against the CPU backend: SmolLM2-135M with f32 weights
//! (cuBLAS prefill, GEMV decode) and bf16 weights (our tiled matmul), and batched
//! sampled generation on tiny random models. Ignored unless asked for: they need an
//! NVIDIA GPU (and the SmolLM2 test the cached model, which scripts/gpu-check.sh skips
//! by name where the model is absent).

use entmin_engine::DType;
use entmin_models::WeightDtype;
use entmin_tests::{cuda_backend, model_parity};

#[test]
#[ignore = "needs an NVIDIA GPU and the cached SmolLM2 model"]
fn smollm2_greedy_tokens_and_logits_match_cpu() {
    let gpu = cuda_backend();
    model_parity::smollm2_matches_cpu(gpu, DType::F32.into(), DType::F32.into());
    model_parity::smollm2_matches_cpu(gpu, DType::BF16.into(), DType::BF16.into());
}

/// SmolLM2 on its own Q4_1 / Q8_0 blocks (`--dtype auto`, decoded in gemv.cu and
/// matmul.cu) against the CPU running the same weights dequantised to f32: only the
/// order of the sums differs, so the f32 bound holds and greedy tokens are identical.
#[test]
#[ignore = "needs an NVIDIA GPU and the cached SmolLM2 model"]
fn smollm2_on_its_blocks_matches_the_cpu_on_the_same_weights() {
    model_parity::smollm2_matches_cpu(cuda_backend(), WeightDtype::Auto, DType::F32.into());
}

/// A tiny Q8_0 model stays in its blocks on CUDA; IQ4_NL is converted with a notice.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn block_formats_stay_blocks_on_cuda_and_others_are_converted_with_a_notice() {
    model_parity::block_formats_stay_blocks(cuda_backend(), "cuda");
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn batched_sampled_generation_matches_cpu_on_a_tiny_model() {
    model_parity::tiny_batched_generation_matches_cpu(cuda_backend());
}

/// Logits at every position of `ids`, then of one decode step, on backend `b`.
fn synthetic_logits<B: entmin_engine::Backend>(
    b: &B,
    src: &entmin_models::synthetic::SyntheticSource,
    ids: &[u32],
) -> (Vec<f32>, Vec<f32>) {
    use entmin_models::{KvCache, Logits, Model};
    let m = Model::load(b, src.config.clone(), src, DType::BF16).unwrap();
    let mut cache = KvCache::new(b, &src.config, ids.len() + 1).unwrap();
    let all = m.forward(b, ids, &mut cache, Logits::All).unwrap();
    let next = m.forward(b, &ids[..1], &mut cache, Logits::Last).unwrap();
    (b.to_host_f32(&all).unwrap(), b.to_host_f32(&next).unwrap())
}

/// Real shapes without the file (none travels to the GPU machine): the CPU and CUDA
/// backends load the same synthetic Qwen2.5-Coder-0.5B (random weights in its Q4_K_M
/// layout, bf16 in memory) and agree on the logits at every position of a prompt (the
/// prefill GEMMs) and of a decode step (the GEMVs).
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn synthetic_qwen_logits_match_cpu() {
    let gpu = cuda_backend();
    let src = entmin::catalog::synthetic("qwen2.5-coder-0.5b-instruct", 11).unwrap();
    let mut rng = entmin_engine::Rng::new(5);
    let ids: Vec<u32> = (0..24).map(|_| (rng.next_u64() % src.config.vocab_size as u64) as u32).collect();
    let want = synthetic_logits(&entmin_engine::cpu::CpuBackend, &src, &ids);
    let got = synthetic_logits(gpu, &src, &ids);
    let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    entmin_tests::assert_close("prefill logits", &got.0, &f64s(&want.0), 1e-3);
    entmin_tests::assert_close("decode logits", &got.1, &f64s(&want.1), 1e-3);
}
