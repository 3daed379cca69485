//! EM-FT (docs/methods.md, "EM-FT"): fine-tune a model on its own samples to lower its entropy. Each
//! step samples N responses for each of B prompts with the current weights (batched
//! generation), then minimises the token entropy of the model's next-token distributions
//! over the response positions only, with the hand-written backward pass and AdamW.
//!
//! Choices (EM-FT has no official implementation; docs/training.md):
//! - the loss of a response is Σ_t H_t over the R positions that predict its tokens
//!   (`Reduction::Sum`, the paper's token-level objective) or (1/R)·Σ_t H_t
//!   (`Reduction::Mean`); the step's loss is the mean over its B·N responses;
//! - H is taken at temperature 1 over the full vocabulary (padding rows masked),
//!   whatever the rollout temperature;
//! - prompts are visited in an order shuffled once from the seed; the seeds of a step's
//!   samples depend only on (seed, step, index), so a resumed run draws the same samples.

use std::time::Instant;

use crate::engine::{Backend, Rng, SamplingParams};
use crate::error::Result;
use crate::models::generate::{generate_batch, GenerationParams, Sampler};
use crate::models::LoadedModel;
use serde::{Deserialize, Serialize};

use super::optim::AdamW;
use super::trainable::Trainable;

/// How the token entropies of one response make its loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reduction {
    /// Σ_t H_t over the response's positions (the paper's token-level objective).
    Sum,
    /// (1/R)·Σ_t H_t, for a response of R tokens.
    Mean,
}

/// Settings of an EM-FT run (docs/training.md, "EM-FT objective").
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmFtConfig {
    /// Responses sampled per prompt (N).
    pub samples_per_prompt: usize,
    /// At most this many tokens per response.
    pub max_new_tokens: usize,
    /// Temperature at which responses are sampled; the entropy is taken at temperature 1
    /// whatever this is.
    pub rollout_temperature: f32,
    /// Prompts per step.
    pub batch: usize,
    /// Steps to reach, one optimiser update each (a resumed run may raise it).
    pub steps: u64,
    /// Seed of the prompt order and of the rollouts' samples.
    pub seed: u64,
    /// How each response's token entropies make its loss.
    pub reduction: Reduction,
    /// Positions per chunk of the LM head (memory for the head grows with this).
    pub head_chunk: usize,
    /// Activation checkpointing: recompute each layer in the backward pass.
    pub recompute: bool,
}

/// One step's figures, as written to the metrics JSONL.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepMetrics {
    /// The step's number, from 1.
    pub step: u64,
    /// The loss before the update: the mean over the step's B·N responses of each one's
    /// (summed or averaged) token entropy, in nats.
    pub loss: f64,
    /// Mean entropy (nats) of the next-token distributions at response positions,
    /// under the weights before the step.
    pub mean_entropy: f64,
    /// Mean tokens per sampled response.
    pub mean_response_tokens: f64,
    /// Learning rate of the step's update, after warm-up and schedule.
    pub lr: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Sampled plus trained tokens per second of the step.
    pub tokens_per_sec: f64,
    /// Seconds spent sampling the responses.
    pub rollout_secs: f64,
    /// Seconds spent on the update: forward, entropy head, backward and AdamW.
    pub update_secs: f64,
}

/// The order in which prompts are visited: a seeded shuffle.
pub fn prompt_order(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Rng::new(seed ^ 0x005E_ED0F_0DE2);
    for i in (1..n).rev() {
        order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    order
}

/// Loss weights per position for a prompt of `p` tokens and a response of `r` tokens:
/// positions p−1 .. p+r−2 predict the response.
pub fn response_weights(p: usize, r: usize, reduction: Reduction, scale: f32) -> Vec<f32> {
    let w = match reduction {
        Reduction::Sum => scale,
        Reduction::Mean => scale / r.max(1) as f32,
    };
    (0..p + r).map(|i| if i + 1 >= p && i + 1 < p + r { w } else { 0.0 }).collect()
}

/// The EM-FT trainer.
pub struct EmFt<'a, B: Backend> {
    /// The model being trained and its optimiser.
    pub t: Trainable<'a, B>,
    /// The run's settings.
    pub config: EmFtConfig,
}

impl<'a, B: Backend> EmFt<'a, B> {
    /// A trainer for `lm` that continues from `opt` (fresh, or loaded by `--resume`).
    pub fn new(backend: &B, lm: &'a mut LoadedModel<B>, opt: AdamW, config: EmFtConfig) -> Result<Self> {
        Ok(EmFt { t: Trainable::new(backend, lm, opt)?, config })
    }

    /// Run step `opt.step + 1` on `prompts` (token ids, chat template applied).
    pub fn step(&mut self, backend: &B, prompts: &[Vec<u32>]) -> Result<StepMetrics> {
        let c = self.config.clone();
        let step = self.t.opt.step + 1;
        let order = prompt_order(prompts.len(), c.seed);
        let chosen: Vec<&Vec<u32>> =
            (0..c.batch).map(|j| &prompts[order[((step - 1) as usize * c.batch + j) % prompts.len()]]).collect();
        let seqs: Vec<Vec<u32>> =
            chosen.iter().flat_map(|p| std::iter::repeat_n((*p).clone(), c.samples_per_prompt)).collect();
        let seeds: Vec<u64> = (0..seqs.len() as u64).map(|i| c.seed ^ (step << 20) ^ i).collect();
        let t0 = Instant::now();
        let sampling = SamplingParams {
            temperature: c.rollout_temperature,
            banned: self.t.lm.banned_ids.clone(),
            ..Default::default()
        };
        let gen_params = GenerationParams { max_new_tokens: c.max_new_tokens, ..GenerationParams::default() };
        let gens = generate_batch(backend, &*self.t.lm, &seqs, &gen_params, &mut Sampler(sampling), &seeds, |_| ())?;
        let rollout_secs = t0.elapsed().as_secs_f64();

        let t1 = Instant::now();
        let scale = 1.0 / seqs.len() as f32;
        let batch: Vec<(Vec<u32>, Vec<f32>)> = seqs
            .iter()
            .zip(&gens)
            .filter(|(_, g)| !g.tokens.is_empty())
            .map(|(prompt, g)| {
                let ids: Vec<u32> = prompt.iter().chain(&g.tokens).copied().collect();
                (ids, response_weights(prompt.len(), g.tokens.len(), c.reduction, scale))
            })
            .collect();
        let tokens: usize = gens.iter().map(|g| g.tokens.len()).sum();
        let u = self.update(backend, &batch)?;
        let update_secs = t1.elapsed().as_secs_f64();
        let all_tokens = (tokens + seqs.iter().map(Vec::len).sum::<usize>()) as f64;
        Ok(StepMetrics {
            step,
            loss: u.loss,
            mean_entropy: u.mean_entropy,
            mean_response_tokens: tokens as f64 / seqs.len() as f64,
            lr: u.report.lr,
            grad_norm: u.report.grad_norm,
            tokens_per_sec: all_tokens / (rollout_secs + update_secs),
            rollout_secs,
            update_secs,
        })
    }
}

/// What one optimiser update did.
pub struct Update {
    /// The batch's loss: Σ over its sequences' positions of loss weight × entropy, in nats.
    pub loss: f64,
    /// Mean entropy over the positions with a non-zero loss weight.
    pub mean_entropy: f64,
    /// The update's learning rate and gradient norm.
    pub report: super::optim::StepReport,
    /// Where the update's time went.
    pub phases: Phases,
}

/// Seconds spent in each part of an update, summed over its sequences.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Phases {
    /// The decoder's forward passes.
    pub forward: f64,
    /// The chunked LM head with the objective and its backward.
    pub head: f64,
    /// The decoder's backward.
    pub backward: f64,
    /// Zeroing the gradients and the AdamW update.
    pub optimizer: f64,
}

impl<B: Backend> EmFt<'_, B> {
    /// One optimiser step on sequences with per-position loss weights: forward, chunked
    /// entropy head and backward per sequence (one sequence's activations in memory at a
    /// time), gradients summed, AdamW on the f32 masters, the model's weights replaced.
    pub fn update(&mut self, backend: &B, batch: &[(Vec<u32>, Vec<f32>)]) -> Result<Update> {
        let c = &self.config;
        let mut phases = Phases::default();
        let mut clock = Instant::now();
        let mut lap = |slot: &mut f64| {
            *slot += clock.elapsed().as_secs_f64();
            clock = Instant::now();
        };
        let mut grads = self.t.zero_grads(backend)?;
        lap(&mut phases.optimizer);
        let (mut loss, mut entropy_sum, mut positions) = (0f64, 0f64, 0usize);
        let lm = &*self.t.lm;
        for (ids, weights) in batch {
            let acts = lm.model.forward_train(backend, ids, c.recompute)?;
            lap(&mut phases.forward);
            let d_head = lm.model.head_gradient(&mut grads)?;
            let head = lm.model.entropy_head(backend, &acts, weights, &lm.banned_ids, c.head_chunk, d_head)?;
            lap(&mut phases.head);
            for (h, w) in head.entropies.iter().zip(weights) {
                if *w != 0.0 {
                    entropy_sum += *h as f64;
                    positions += 1;
                }
            }
            loss += head.loss;
            lm.model.backward(backend, &acts, &head.d_hidden, &mut grads)?;
            lap(&mut phases.backward);
        }
        let report = self.t.apply(backend, grads)?;
        lap(&mut phases.optimizer);
        Ok(Update { loss, mean_entropy: entropy_sum / positions.max(1) as f64, report, phases })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_positions_and_order() {
        // Prompt [a b c], response [x y]: position 2 predicts x, position 3 predicts y.
        assert_eq!(response_weights(3, 2, Reduction::Sum, 1.0), vec![0.0, 0.0, 1.0, 1.0, 0.0]);
        assert_eq!(response_weights(3, 2, Reduction::Mean, 1.0), vec![0.0, 0.0, 0.5, 0.5, 0.0]);
        let order = prompt_order(10, 3);
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert_eq!(order, prompt_order(10, 3), "the order depends only on the seed");
        assert_ne!(order, prompt_order(10, 4));
    }
}
