//! The CUDA backend end to end against the CPU backend: SmolLM2-135M with f32 weights
//! (cuBLAS prefill, GEMV decode) and bf16 weights (our tiled matmul), and batched
//! sampled generation on tiny random models. Skips without a GPU (see cuda_ops.rs).

use entmin_engine::DType;
use entmin_tests::{cuda_backend, model_parity};

#[test]
fn smollm2_greedy_tokens_and_logits_match_cpu() {
    if let Some(gpu) = cuda_backend() {
        model_parity::smollm2_matches_cpu(gpu, DType::F32);
        model_parity::smollm2_matches_cpu(gpu, DType::BF16);
    }
}

#[test]
fn batched_sampled_generation_matches_cpu_on_a_tiny_model() {
    if let Some(gpu) = cuda_backend() {
        model_parity::tiny_batched_generation_matches_cpu(gpu);
    }
}
