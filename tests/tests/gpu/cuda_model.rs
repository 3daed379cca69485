//! The CUDA backend end to end against the CPU backend: SmolLM2-135M with f32 weights
//! (cuBLAS prefill, GEMV decode) and bf16 weights (our tiled matmul), and batched
//! sampled generation on tiny random models. Ignored unless asked for: they need an
//! NVIDIA GPU (and the SmolLM2 test the cached model, which scripts/gpu-check.sh skips
//! by name where the model is absent).

use entmin_engine::DType;
use entmin_tests::{cuda_backend, model_parity};

#[test]
#[ignore = "needs an NVIDIA GPU and the cached SmolLM2 model"]
fn smollm2_greedy_tokens_and_logits_match_cpu() {
    let gpu = cuda_backend();
    model_parity::smollm2_matches_cpu(gpu, DType::F32);
    model_parity::smollm2_matches_cpu(gpu, DType::BF16);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn batched_sampled_generation_matches_cpu_on_a_tiny_model() {
    model_parity::tiny_batched_generation_matches_cpu(cuda_backend());
}
