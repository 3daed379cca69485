//! What the end-to-end training tests (EM-FT, EM-RL) on SmolLM2 share.

use entmin::engine::cpu::CpuBackend;
use entmin::engine::SamplingParams;
use entmin::models::generate::{generate_batch, GenerationParams, Sampler};
use entmin::models::LoadedModel;

/// Four short arithmetic word problems to train on.
pub const ARITHMETIC_QUESTIONS: [&str; 4] = [
    "Tom has 3 apples and buys 5 more. How many apples does he have?",
    "A train travels 60 miles per hour for 2 hours. How far does it go?",
    "What is 12 times 11?",
    "Sara had 20 pencils and gave away 7. How many are left?",
];

/// `questions` as chat-template prompt ids.
pub fn prompts(lm: &LoadedModel<CpuBackend>, questions: &[&str]) -> Vec<Vec<u32>> {
    questions.iter().map(|q| entmin::eval::prompt_ids(lm, q, None).unwrap()).collect()
}

/// Mean entropy (nats, temperature 1) of the model's greedy 24-token answers to `prompts`.
pub fn greedy_answer_entropy(lm: &LoadedModel<CpuBackend>, prompts: &[Vec<u32>]) -> f64 {
    let params = GenerationParams { max_new_tokens: 24, ..GenerationParams::default() };
    let greedy = SamplingParams { banned: lm.banned_ids.clone(), ..SamplingParams::greedy() };
    let seeds: Vec<u64> = (0..prompts.len() as u64).collect();
    let gens = generate_batch(&CpuBackend, lm, prompts, &params, &mut Sampler(greedy), &seeds, |_| ()).unwrap();
    let all: Vec<f32> = gens.iter().flat_map(|g| g.entropies.iter().copied()).collect();
    all.iter().map(|&h| h as f64).sum::<f64>() / all.len() as f64
}
