//! EM-RL (docs/methods.md, "EM-RL"): reinforcement learning with the model's own negative entropy as
//! the reward, and the same loop with the labelled baselines and the follow-up work's
//! rewards (`rewards`). Each step:
//! 1. rollout: N responses for each of B prompts with the current weights at the rollout
//!    temperature (batched generation, top-p 1, no top-k);
//! 2. old/reference pass: a teacher-forced forward pass of every response under the
//!    rollout weights gives the log-probability and full-vocabulary entropy of every
//!    response token at the rollout temperature (fused kernels); the frozen reference
//!    model's log-probabilities likewise when the KL coefficient is not 0;
//! 3. rewards from those values (token, sequence), from the group's answers
//!    (self-consistency, answer-cluster), from labels (verified, tests) or controls
//!    (random, format); advantages per group (RLOO, GRPO);
//! 4. update: for each PPO epoch and mini-batch, the clipped surrogate + KL penalty −
//!    entropy bonus, averaged over the mini-batch's response tokens (verl's
//!    "token-mean"), backward through the model, one AdamW update per mini-batch.
//!
//! One RL step is `updates_per_step()` optimiser updates; checkpoints are named by RL step.

use std::time::Instant;

use crate::engine::{Backend, SamplingParams};
use crate::error::{Error, Result};
use crate::models::generate::{generate_batch, GenerationParams, Sampler};
use crate::models::train_head::HeadSpec;
use crate::models::LoadedModel;
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::advantage::Advantage;
use super::emft::prompt_order;
use super::optim::AdamW;
use super::rewards::{
    answer_cluster_rewards, format_reward, random_reward, self_certainty_reward, self_consistency_rewards,
    sequence_reward, token_reward, verified_reward, Reward, RewardKind, RewardReduction,
};
use super::rl_objective::{ppo_clipped, KlEstimator};
use super::trainable::Trainable;
use crate::code::{extract_program, Pool, Status};
use crate::dataset::CodeTask;
use crate::eval::test_program;

/// Settings of an EM-RL run (docs/methods.md, "EM-RL"; docs/training.md, "EM-RL").
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmRlConfig {
    /// What a response is rewarded for: one term or a weighted sum (docs/training.md,
    /// "Rewards").
    pub reward: Reward,
    /// Mean or sum over the response tokens, for the token and sequence rewards.
    pub reward_reduction: RewardReduction,
    /// How a group's rewards become advantages.
    pub advantage: Advantage,
    /// Responses sampled per prompt (N), one group; at least 2 for the self-consistency
    /// and answer-cluster rewards.
    pub rollouts_per_prompt: usize,
    /// Temperature of the rollouts, and of the log-probabilities and entropies of the
    /// rewards and the loss (> 0).
    pub rollout_temperature: f32,
    /// At most this many tokens per response.
    pub max_new_tokens: usize,
    /// PPO's ε.
    pub clip: f32,
    /// β: weight of the KL penalty to the reference (≥ 0; at 0 no reference is loaded).
    pub kl_coef: f32,
    /// How the per-token KL to the reference is estimated.
    pub kl_estimator: KlEstimator,
    /// Coefficient of −H in the loss (the official config's 0.001 works against EM).
    pub entropy_bonus: f32,
    /// Passes over the step's responses, each in mini-batches.
    pub ppo_epochs: usize,
    /// Responses per optimiser update; 0 = all of the step's responses.
    pub mini_batch: usize,
    /// Prompts per step.
    pub batch: usize,
    /// RL steps to reach (a resumed run may raise it).
    pub steps: u64,
    /// Seed of the prompt order and of the rollouts' samples.
    pub seed: u64,
    /// Positions per chunk of the LM head (memory for the head grows with this).
    pub head_chunk: usize,
    /// Activation checkpointing: recompute each layer in the updates' backward pass.
    pub recompute: bool,
}

impl EmRlConfig {
    fn responses(&self) -> usize {
        self.batch * self.rollouts_per_prompt
    }

    fn mini_batch_size(&self) -> usize {
        if self.mini_batch == 0 {
            self.responses()
        } else {
            self.mini_batch.min(self.responses())
        }
    }

    /// Optimiser updates per RL step.
    pub fn updates_per_step(&self) -> u64 {
        (self.ppo_epochs * self.responses().div_ceil(self.mini_batch_size().max(1))) as u64
    }

    /// Refuse settings that cannot run: a count of 0, a temperature or clip that is not
    /// positive, a negative KL coefficient, or fewer than 2 rollouts per prompt for the
    /// self-consistency and answer-cluster rewards.
    pub fn validate(&self) -> Result<()> {
        if self.batch == 0 || self.rollouts_per_prompt == 0 || self.ppo_epochs == 0 || self.head_chunk == 0 {
            return Err(Error::invalid(
                "--batch, --rollouts-per-prompt, --ppo-epochs and --head-chunk must be at least 1",
            ));
        }
        if let Some((_, group)) = self.reward.terms.iter().find(|(_, k)| k.needs_group()) {
            if self.rollouts_per_prompt < 2 {
                return Err(Error::invalid(format!(
                    "the {} reward compares a prompt's rollouts: it needs at least 2 rollouts per prompt",
                    group.name()
                )));
            }
        }
        let positive = |x: f32| x > 0.0;
        if !positive(self.rollout_temperature) || !positive(self.clip) || self.kl_coef < 0.0 {
            return Err(Error::invalid(
                "the rollout temperature and --clip must be positive and --kl-coef not negative",
            ));
        }
        Ok(())
    }
}

/// One RL step's figures, as written to the metrics JSONL.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RlStepMetrics {
    /// The RL step's number, from 1.
    pub step: u64,
    /// Mean reward of the step's responses (under the rollout weights; for a sum of
    /// terms, of the group-normalised sum).
    pub mean_reward: f64,
    /// Mean over the step's responses of each term's own value, as `reward/NAME`.
    #[serde(flatten)]
    pub reward_terms: BTreeMap<String, f64>,
    /// Mean entropy (nats, rollout temperature) of the response tokens' distributions.
    pub mean_entropy: f64,
    /// Mean self-certainty KL(U ‖ p) (nats, rollout temperature) of the response tokens'
    /// distributions.
    pub self_certainty: f64,
    /// Mean tokens per response.
    pub mean_response_tokens: f64,
    /// Token-mean PPO surrogate and KL of the last epoch.
    pub pg_loss: f64,
    /// Token-mean KL estimate to the reference in the last epoch (0 without a reference).
    pub kl: f64,
    /// Fraction of response tokens where a clip was active (last epoch).
    pub clip_fraction: f64,
    /// Global gradient norm before clipping, of the step's last update.
    pub grad_norm: f64,
    /// Learning rate of the step's last update.
    pub lr: f32,
    /// Largest |log p| difference between the sampler's log-probabilities and the
    /// teacher-forced old pass: a check that the rollout and the loss see one policy.
    pub rollout_logprob_gap: f64,
    /// Seconds spent sampling the responses.
    pub rollout_secs: f64,
    /// Response tokens sampled per second.
    pub rollout_tokens_per_sec: f64,
    /// Seconds of the old-policy and reference passes, the rewards and the advantages.
    pub old_ref_secs: f64,
    /// Prompt and response tokens per second through those passes, counted once per model.
    pub old_ref_tokens_per_sec: f64,
    /// Seconds of the updates, all PPO epochs together.
    pub update_secs: f64,
    /// Prompt and response tokens per second through the updates, counted once per epoch.
    pub update_tokens_per_sec: f64,
}

/// A response of the step with what its update needs.
#[derive(Clone, Debug)]
pub struct Rollout {
    /// Prompt and response.
    pub ids: Vec<u32>,
    /// Tokens of the prompt, at the start of `ids`.
    pub prompt_len: usize,
    /// Per position (0 outside the response): log p of the next token under the rollout
    /// policy, and under the reference (empty without a reference).
    pub old_logp: Vec<f32>,
    /// Per position, log p of the next token under the reference; empty without one.
    pub ref_logp: Vec<f32>,
    /// The response's RLOO advantage, given to each of its tokens.
    pub advantage: f64,
}

impl Rollout {
    /// Positions that predict response tokens: prompt_len − 1 .. len − 2.
    pub fn active(&self) -> Vec<bool> {
        (0..self.ids.len()).map(|i| i + 1 >= self.prompt_len && i + 1 < self.ids.len()).collect()
    }

    /// Tokens in the response.
    pub fn response_tokens(&self) -> usize {
        self.ids.len() - self.prompt_len
    }
}

/// A step's rollouts with their rewards, and what the metrics need.
pub struct Collected {
    /// The step's responses: N for each of the B prompts, grouped by prompt.
    pub rollouts: Vec<Rollout>,
    /// Each response's reward, in the order of `rollouts`.
    pub rewards: Vec<f64>,
    /// Each term's values, `terms[t][i]` for term t of the spec and response i.
    pub terms: Vec<Vec<f64>>,
    entropy_sum: f64,
    certainty_sum: f64,
    /// Largest |sampler log p − teacher-forced log p| over the response tokens.
    pub logprob_gap: f64,
    prompt_tokens: usize,
    response_tokens: usize,
    rollout_secs: f64,
    old_ref_secs: f64,
}

/// The EM-RL trainer.
pub struct EmRl<'a, B: Backend> {
    /// The policy being trained and its optimiser.
    pub t: Trainable<'a, B>,
    /// The frozen reference policy; None when the KL coefficient is 0.
    reference: Option<&'a LoadedModel<B>>,
    /// The run's settings.
    pub config: EmRlConfig,
    /// The tests reward: each prompt's code task (by prompt index) and the sandbox pool.
    tests: Option<(Vec<CodeTask>, Pool)>,
    /// The verified reward: each prompt's gold answer, by prompt index.
    golds: Option<Vec<String>>,
}

/// Sums over one epoch's response tokens, for the metrics.
#[derive(Default, Debug)]
pub struct EpochTotals {
    /// Σ of the PPO surrogate losses.
    pub pg_loss: f64,
    /// Σ of the KL estimates (0 without a reference).
    pub kl: f64,
    /// Tokens where a clip was active.
    pub clipped: usize,
    /// Response tokens seen.
    pub tokens: usize,
}

impl<'a, B: Backend> EmRl<'a, B> {
    /// A trainer for `lm` that continues from `opt` (fresh, or loaded by `--resume`).
    /// `reference` is the frozen reference policy, needed when the KL coefficient is above 0
    /// and unused otherwise. Refuses invalid settings and an optimiser between RL steps.
    pub fn new(
        backend: &B,
        lm: &'a mut LoadedModel<B>,
        reference: Option<&'a LoadedModel<B>>,
        opt: AdamW,
        config: EmRlConfig,
    ) -> Result<Self> {
        config.validate()?;
        if config.kl_coef > 0.0 && reference.is_none() {
            return Err(Error::invalid(format!("a KL coefficient of {} needs the reference model", config.kl_coef)));
        }
        let updates = config.updates_per_step();
        if !opt.step.is_multiple_of(updates) {
            return Err(Error::training(format!(
                "optimizer state after {} updates is not at an RL step boundary ({updates} per step)",
                opt.step
            )));
        }
        let reference = reference.filter(|_| config.kl_coef > 0.0);
        Ok(EmRl { t: Trainable::new(backend, lm, opt)?, reference, config, tests: None, golds: None })
    }

    /// The tests reward's inputs: `tasks[i]` holds prompt i's tests, run in `pool`.
    pub fn with_tests(mut self, tasks: Vec<CodeTask>, pool: Pool) -> Self {
        self.tests = Some((tasks, pool));
        self
    }

    /// The verified reward's inputs: `golds[i]` is prompt i's gold answer.
    pub fn with_golds(mut self, golds: Vec<String>) -> Self {
        self.golds = Some(golds);
        self
    }

    /// RL steps completed.
    pub fn steps_done(&self) -> u64 {
        self.t.opt.step / self.config.updates_per_step()
    }

    fn spec<'s>(&self, active: &'s [bool], banned: &'s [u32]) -> HeadSpec<'s> {
        HeadSpec {
            active,
            inv_temperature: 1.0 / self.config.rollout_temperature,
            banned,
            chunk: self.config.head_chunk,
        }
    }

    /// Run RL step `steps_done() + 1` on `prompts` (token ids, chat template applied).
    pub fn step(&mut self, backend: &B, prompts: &[Vec<u32>]) -> Result<RlStepMetrics> {
        let c = self.config.clone();
        let step = self.steps_done() + 1;
        let batch = self.collect(backend, prompts, step)?;
        let t2 = Instant::now();
        let (mut last, mut report) = (EpochTotals::default(), None);
        for _ in 0..c.ppo_epochs {
            last = EpochTotals::default();
            for mini in batch.rollouts.chunks(c.mini_batch_size()) {
                report = Some(self.update(backend, mini, &mut last)?);
            }
        }
        let report = report.expect("at least one update");
        let update_secs = t2.elapsed().as_secs_f64();
        let all_tokens = (batch.response_tokens + batch.prompt_tokens) as f64;
        let n = batch.rollouts.len() as f64;
        let per_token = |x: f64| x / last.tokens.max(1) as f64;
        let reward_terms = c
            .reward
            .terms
            .iter()
            .zip(&batch.terms)
            .map(|((_, kind), values)| (format!("reward/{}", kind.name()), values.iter().sum::<f64>() / n))
            .collect();
        Ok(RlStepMetrics {
            step,
            mean_reward: batch.rewards.iter().sum::<f64>() / n,
            reward_terms,
            mean_entropy: batch.entropy_sum / batch.response_tokens.max(1) as f64,
            self_certainty: batch.certainty_sum / batch.response_tokens.max(1) as f64,
            mean_response_tokens: batch.response_tokens as f64 / n,
            pg_loss: per_token(last.pg_loss),
            kl: per_token(last.kl),
            clip_fraction: per_token(last.clipped as f64),
            grad_norm: report.grad_norm,
            lr: report.lr,
            rollout_logprob_gap: batch.logprob_gap,
            rollout_secs: batch.rollout_secs,
            rollout_tokens_per_sec: batch.response_tokens as f64 / batch.rollout_secs,
            old_ref_secs: batch.old_ref_secs,
            old_ref_tokens_per_sec: all_tokens * (1 + self.reference.is_some() as usize) as f64 / batch.old_ref_secs,
            update_secs,
            update_tokens_per_sec: all_tokens * c.ppo_epochs as f64 / update_secs,
        })
    }

    /// Rollouts of step `step` with the current weights, their old (and reference)
    /// log-probabilities, rewards and RLOO advantages.
    pub fn collect(&self, backend: &B, prompts: &[Vec<u32>], step: u64) -> Result<Collected> {
        let c = &self.config;
        let order = prompt_order(prompts.len(), c.seed);
        let chosen: Vec<usize> =
            (0..c.batch).map(|j| order[((step - 1) as usize * c.batch + j) % prompts.len()]).collect();
        let seqs: Vec<Vec<u32>> =
            chosen.iter().flat_map(|&p| std::iter::repeat_n(prompts[p].clone(), c.rollouts_per_prompt)).collect();
        let seeds: Vec<u64> = (0..seqs.len() as u64).map(|i| c.seed ^ (step << 20) ^ i).collect();

        let t0 = Instant::now();
        let lm = &*self.t.lm;
        let sampling =
            SamplingParams { temperature: c.rollout_temperature, banned: lm.banned_ids.clone(), ..Default::default() };
        let gen_params = GenerationParams { max_new_tokens: c.max_new_tokens, ..GenerationParams::default() };
        let gens = generate_batch(backend, lm, &seqs, &gen_params, &mut Sampler(sampling), &seeds, |_| ())?;
        let rollout_secs = t0.elapsed().as_secs_f64();
        let response_tokens: usize = gens.iter().map(|g| g.tokens.len()).sum();

        // The tests reward: the programs run in the sandbox during the passes below.
        let prompt_of = |i: usize| chosen[i / c.rollouts_per_prompt];
        let mut test_runs = match (&self.tests, c.reward.has(RewardKind::Tests)) {
            (Some((tasks, pool)), true) => {
                let mut runs = Vec::with_capacity(gens.len());
                for (i, g) in gens.iter().enumerate() {
                    let task = tasks
                        .get(prompt_of(i))
                        .ok_or_else(|| Error::invalid("the tests reward needs a code task for every prompt"))?;
                    let program = extract_program(&task.prompt, &g.text, &task.entry_point);
                    runs.push(pool.submit(test_program(task, &program)));
                }
                runs
            }
            (None, true) => {
                return Err(Error::invalid("the tests reward needs code prompts with tests (EmRl::with_tests)"))
            }
            (_, false) => Vec::new(),
        };
        let golds = match (&self.golds, c.reward.has(RewardKind::Verified)) {
            (Some(golds), true) if chosen.iter().all(|&p| p < golds.len()) => golds.as_slice(),
            (_, true) => {
                return Err(Error::invalid("the verified reward needs a gold answer for every prompt (--answer-field)"))
            }
            (_, false) => &[],
        };
        let t1 = Instant::now();
        let mut rollouts = Vec::with_capacity(seqs.len());
        let mut terms = vec![vec![0f64; seqs.len()]; c.reward.terms.len()];
        let (mut entropy_sum, mut certainty_sum, mut gap) = (0f64, 0f64, 0f64);
        for (i, (prompt, g)) in seqs.iter().zip(&gens).enumerate() {
            let ids: Vec<u32> = prompt.iter().chain(&g.tokens).copied().collect();
            let mut r = Rollout { ids, prompt_len: prompt.len(), old_logp: vec![], ref_logp: vec![], advantage: 0.0 };
            let active = r.active();
            let acts = lm.model.forward_train(backend, &r.ids, true)?;
            let old = lm.model.token_stats(backend, &acts, self.spec(&active, &lm.banned_ids))?;
            drop(acts);
            let span = r.prompt_len - 1..r.ids.len() - 1;
            if let Some(reference) = self.reference {
                let acts = reference.model.forward_train(backend, &r.ids, true)?;
                r.ref_logp = reference.model.token_stats(backend, &acts, self.spec(&active, &lm.banned_ids))?.logp;
            }
            let (logp, entropy) = (&old.logp[span.clone()], &old.entropy[span.clone()]);
            let certainty = &old.self_certainty[span.clone()];
            if let Some(bad) = logp.iter().position(|l| !l.is_finite()) {
                return Err(Error::training(format!(
                    "response token {bad} has log-probability {} under the rollout policy",
                    logp[bad]
                )));
            }
            gap = logp.iter().zip(&g.logprobs).fold(gap, |m, (a, b)| m.max((a - b).abs() as f64));
            entropy_sum += entropy.iter().map(|&h| h as f64).sum::<f64>();
            certainty_sum += certainty.iter().map(|&x| x as f64).sum::<f64>();
            for ((_, kind), values) in c.reward.terms.iter().zip(terms.iter_mut()) {
                values[i] = match kind {
                    RewardKind::Token => token_reward(entropy, c.reward_reduction),
                    RewardKind::Sequence => sequence_reward(logp, c.reward_reduction),
                    RewardKind::SelfCertainty => self_certainty_reward(certainty, c.reward_reduction),
                    RewardKind::Verified => verified_reward(&g.text, &golds[prompt_of(i)]),
                    RewardKind::Format => format_reward(&g.text),
                    RewardKind::Random => random_reward(c.seed, step, i),
                    // Filled in below: they need the group, or the sandbox's verdict.
                    RewardKind::SelfConsistency | RewardKind::AnswerCluster | RewardKind::Tests => 0.0,
                };
            }
            r.old_logp = old.logp;
            rollouts.push(r);
        }
        let n = c.rollouts_per_prompt;
        for ((_, kind), values) in c.reward.terms.iter().zip(terms.iter_mut()) {
            match kind {
                RewardKind::Tests => {
                    for (v, run) in values.iter_mut().zip(std::mem::take(&mut test_runs)) {
                        *v = f64::from(u8::from(run.wait()?.status == Status::Passed));
                    }
                }
                RewardKind::SelfConsistency | RewardKind::AnswerCluster => {
                    for (group, texts) in values.chunks_mut(n).zip(gens.chunks(n)) {
                        let texts: Vec<String> = texts.iter().map(|x| x.text.clone()).collect();
                        group.copy_from_slice(&match kind {
                            RewardKind::SelfConsistency => self_consistency_rewards(&texts),
                            _ => answer_cluster_rewards(&texts),
                        });
                    }
                }
                _ => {}
            }
        }
        let mut rewards = Vec::with_capacity(rollouts.len());
        for (g, group) in rollouts.chunks_mut(n).enumerate() {
            let group_terms: Vec<Vec<f64>> = terms.iter().map(|t| t[g * n..][..group.len()].to_vec()).collect();
            let group_rewards = c.reward.combine(&group_terms);
            for (r, a) in group.iter_mut().zip(c.advantage.of(&group_rewards)) {
                r.advantage = a;
            }
            rewards.extend(group_rewards);
        }
        Ok(Collected {
            rollouts,
            rewards,
            terms,
            entropy_sum,
            certainty_sum,
            logprob_gap: gap,
            prompt_tokens: seqs.iter().map(Vec::len).sum(),
            response_tokens,
            rollout_secs,
            old_ref_secs: t1.elapsed().as_secs_f64(),
        })
    }

    /// One optimiser update on a mini-batch: Σ over its response tokens of
    /// (PPO surrogate + kl_coef·KL − bonus·H), divided by the number of those tokens.
    pub fn update(
        &mut self,
        backend: &B,
        mini: &[Rollout],
        totals: &mut EpochTotals,
    ) -> Result<super::optim::StepReport> {
        let c = self.config.clone();
        let tokens: usize = mini.iter().map(Rollout::response_tokens).sum();
        let scale = 1.0 / tokens.max(1) as f64;
        let mut grads = self.t.zero_grads(backend)?;
        let lm = &*self.t.lm;
        for r in mini {
            let active = r.active();
            let acts = lm.model.forward_train(backend, &r.ids, c.recompute)?;
            let mut upstream = |start: usize, logp: &[f32], _entropy: &[f32]| {
                let mut d_logp = vec![0f32; logp.len()];
                for (i, d) in d_logp.iter_mut().enumerate() {
                    let p = start + i;
                    if !active[p] {
                        continue;
                    }
                    let (pg, d_pg, clipped) =
                        ppo_clipped(r.advantage, logp[i] as f64, r.old_logp[p] as f64, c.clip as f64);
                    let (kl, d_kl) = match r.ref_logp.get(p) {
                        Some(&reference) => c.kl_estimator.eval(logp[i] as f64, reference as f64),
                        None => (0.0, 0.0),
                    };
                    totals.pg_loss += pg;
                    totals.kl += kl;
                    totals.clipped += clipped as usize;
                    totals.tokens += 1;
                    *d = ((d_pg + c.kl_coef as f64 * d_kl) * scale) as f32;
                }
                let d_entropy = vec![(-(c.entropy_bonus as f64) * scale) as f32; logp.len()];
                Ok((d_logp, d_entropy))
            };
            let spec = self.spec(&active, &lm.banned_ids);
            let d_head = lm.model.head_gradient(&mut grads)?;
            let (_, d_hidden) = lm.model.head_backward(backend, &acts, spec, &mut upstream, d_head)?;
            lm.model.backward(backend, &acts, &d_hidden, &mut grads)?;
        }
        self.t.apply(backend, grads)
    }
}
