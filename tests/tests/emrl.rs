//! EM-RL end to end: one update moves the policy the way its gradient predicts, a
//! stopped run resumes exactly (tiny random models), and a short run on SmolLM2-135M
//! raises the token reward of its answers.

use entmin::engine::cpu::CpuBackend;
use entmin::engine::{Backend, DType};
use entmin::models::train_head::HeadSpec;
use entmin::models::{Architecture, LoadedModel};
use entmin::train::emrl::{EmRl, EmRlConfig, EpochTotals, RlStepMetrics, Rollout};
use entmin::train::optim::{AdamWConfig, Schedule};
use entmin::train::advantage::Advantage;
use entmin::train::rewards::{Reward, RewardKind, RewardReduction};
use entmin::train::rl_objective::KlEstimator;
use entmin::train::{latest_model, new_optimizer, resume_optimizer, run, RunOptions};
use entmin_tests::gguf_writer::tiny_model_gguf;
use entmin_tests::tiny::{config, random_weights};
use entmin_tests::training::{self, greedy_answer_entropy, ARITHMETIC_QUESTIONS};
use entmin_tests::{cached_model, scratch_dir};

fn rl_config(kl_coef: f32, mini_batch: usize, ppo_epochs: usize) -> EmRlConfig {
    EmRlConfig {
        reward: Reward::single(RewardKind::Token),
        reward_reduction: RewardReduction::Mean,
        advantage: Advantage::Rloo,
        rollouts_per_prompt: 4,
        rollout_temperature: 1.0,
        max_new_tokens: 6,
        clip: 0.2,
        kl_coef,
        kl_estimator: KlEstimator::LowVarKl,
        entropy_bonus: 0.0,
        ppo_epochs,
        mini_batch,
        batch: 2,
        steps: 1,
        seed: 5,
        head_chunk: 3,
        recompute: false,
    }
}

fn optim(lr: f32, grad_clip: f32) -> AdamWConfig {
    AdamWConfig {
        lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        grad_clip,
        schedule: Schedule::Constant,
        warmup_steps: 0,
        total_steps: 100,
    }
}

fn weights(lm: &LoadedModel<CpuBackend>) -> Vec<Vec<f32>> {
    lm.model.named_parameters().iter().map(|(_, t)| CpuBackend.to_host_f32(t).unwrap()).collect()
}

fn tiny_model(tag: &str) -> std::path::PathBuf {
    let c = config(Architecture::Qwen2, false);
    let path = scratch_dir(tag).join("tiny.gguf");
    std::fs::write(&path, tiny_model_gguf(&c, &random_weights(&c, 4)).build()).unwrap();
    path
}

const PROMPTS: [&[u32]; 3] = [&[5, 17, 96], &[42, 1], &[7, 7, 7, 2]];

/// J = Σ_i A_i·Σ_t log p(y_t) over the rollouts' response tokens, at temperature 1.
fn objective(lm: &LoadedModel<CpuBackend>, rollouts: &[Rollout]) -> f64 {
    rollouts
        .iter()
        .map(|r| {
            let active = r.active();
            let acts = lm.model.forward_train(&CpuBackend, &r.ids, false).unwrap();
            let spec = HeadSpec { active: &active, inv_temperature: 1.0, banned: &lm.banned_ids, chunk: 3 };
            let stats = lm.model.token_stats(&CpuBackend, &acts, spec).unwrap();
            r.advantage * stats.logp.iter().map(|&l| l as f64).sum::<f64>()
        })
        .sum()
}

/// ∇J, through the model's backward pass with ∂J/∂log p = A_i at response positions,
/// the rollouts accumulating into one set of gradients.
fn objective_gradient(lm: &LoadedModel<CpuBackend>, rollouts: &[Rollout]) -> Vec<Vec<f32>> {
    let mut grads = lm.model.zero_gradients(&CpuBackend).unwrap();
    for r in rollouts {
        let active = r.active();
        let acts = lm.model.forward_train(&CpuBackend, &r.ids, false).unwrap();
        let spec = HeadSpec { active: &active, inv_temperature: 1.0, banned: &lm.banned_ids, chunk: 3 };
        let d_head = lm.model.head_gradient(&mut grads).unwrap();
        let mut upstream =
            |_: usize, logp: &[f32], _: &[f32]| Ok((vec![r.advantage as f32; logp.len()], vec![0.0; logp.len()]));
        let (_, d_hidden) = lm.model.head_backward(&CpuBackend, &acts, spec, &mut upstream, d_head).unwrap();
        lm.model.backward(&CpuBackend, &acts, &d_hidden, &mut grads).unwrap();
    }
    grads.tensors.iter().map(|t| CpuBackend.to_host_f32(t).unwrap()).collect()
}

/// With the PPO ratio at 1, one update is plain policy gradient on J / tokens: J must
/// rise by what its gradient predicts for the actual weight change.
#[test]
fn one_update_moves_the_policy_the_way_its_gradient_predicts() {
    let path = tiny_model("emrl-direction");
    let mut lm = entmin::models::load(&CpuBackend, &path, DType::F32).unwrap();
    let prompts: Vec<Vec<u32>> = PROMPTS.iter().map(|p| p.to_vec()).collect();
    let opt = new_optimizer(&lm, optim(1e-4, 1e9), &[]).unwrap();
    let mut rl = EmRl::new(&CpuBackend, &mut lm, None, opt, rl_config(0.0, 0, 1)).unwrap();
    let batch = rl.collect(&CpuBackend, &prompts, 1).unwrap();
    assert!(batch.logprob_gap < 1e-4, "sampler and teacher-forced log p differ by {}", batch.logprob_gap);
    assert!(batch.rollouts.iter().any(|r| r.advantage.abs() > 1e-3), "the rewards differ within a group");
    for group in batch.rollouts.chunks(4) {
        let sum: f64 = group.iter().map(|r| r.advantage).sum();
        assert!(sum.abs() < 1e-9, "RLOO advantages of a group sum to 0, got {sum}");
    }
    let (j0, g, w0) =
        (objective(rl.t.lm, &batch.rollouts), objective_gradient(rl.t.lm, &batch.rollouts), weights(rl.t.lm));
    let mut totals = EpochTotals::default();
    rl.update(&CpuBackend, &batch.rollouts, &mut totals).unwrap();
    let (j1, w1) = (objective(rl.t.lm, &batch.rollouts), weights(rl.t.lm));
    let predicted: f64 = g
        .iter()
        .zip(w0.iter().zip(&w1))
        .flat_map(|(g, (a, b))| g.iter().zip(a.iter().zip(b)).map(|(g, (a, b))| *g as f64 * (*b as f64 - *a as f64)))
        .sum();
    eprintln!("J {j0:.6} -> {j1:.6}: change {:.3e}, first-order prediction {predicted:.3e}", j1 - j0);
    assert!(predicted > 0.0 && j1 > j0, "the update must raise J: {j0} -> {j1}");
    assert!(((j1 - j0) - predicted).abs() < 0.1 * predicted, "change {} vs predicted {predicted}", j1 - j0);
    // At ratio 1 the surrogate is −mean_t A and no token is clipped.
    let tokens: usize = batch.rollouts.iter().map(Rollout::response_tokens).sum();
    let want: f64 = -batch.rollouts.iter().map(|r| r.advantage * r.response_tokens() as f64).sum::<f64>();
    assert_eq!((totals.tokens, totals.clipped), (tokens, 0));
    assert!((totals.pg_loss - want).abs() < 1e-9 * (1.0 + want.abs()), "{} vs {want}", totals.pg_loss);
}

fn metrics(dir: &std::path::Path) -> Vec<RlStepMetrics> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Three steps straight against one step, a stop and a resume, with a KL reference, two
/// mini-batches and two PPO epochs (four optimiser updates per step): the same weights
/// to the bit and the same metrics. The reference stays the starting model.
#[test]
fn a_stopped_run_resumes_exactly() {
    let path = tiny_model("emrl-tiny");
    let prompts: Vec<Vec<u32>> = PROMPTS.iter().map(|p| p.to_vec()).collect();
    let reference = entmin::models::load(&CpuBackend, &path, DType::F32).unwrap();
    let config = rl_config(0.05, 4, 2);
    assert_eq!(config.updates_per_step(), 4);
    let settings = serde_json::json!({ "test": "rl-resume" });
    let run_to = |dir: &std::path::Path, from: &std::path::Path, steps: u64| {
        let mut lm = entmin::models::load(&CpuBackend, from, DType::F32).unwrap();
        let opts = RunOptions { out: dir.to_path_buf(), checkpoint_every: 1, settings: settings.clone() };
        let opt =
            resume_optimizer(&lm, &opts).unwrap().unwrap_or_else(|| new_optimizer(&lm, optim(1e-2, 1.0), &[]).unwrap());
        let mut rl = EmRl::new(&CpuBackend, &mut lm, Some(&reference), opt, config.clone()).unwrap();
        run(&CpuBackend, &mut rl, &prompts, steps, &opts, &mut |_| {}).unwrap();
        assert_eq!(rl.t.opt.step, 4 * steps);
        lm
    };
    let straight = scratch_dir("emrl-straight");
    let lm_a = run_to(&straight, &path, 3);
    let stopped = scratch_dir("emrl-stopped");
    run_to(&stopped, &path, 1);
    let lm_b = run_to(&stopped, &latest_model(&stopped).unwrap().unwrap(), 3);
    assert_eq!(weights(&lm_a), weights(&lm_b), "resumed weights differ from an uninterrupted run");
    let key = |m: &RlStepMetrics| (m.step, m.mean_reward.to_bits(), m.pg_loss.to_bits(), m.kl.to_bits());
    let (ma, mb) = (metrics(&straight), metrics(&stopped));
    assert_eq!(ma.len(), 3);
    assert_eq!(ma.iter().map(key).collect::<Vec<_>>(), mb.iter().map(key).collect::<Vec<_>>());
    assert!(ma[1].kl > 0.0, "after an update the policy has moved away from the reference");
    assert!(ma.iter().all(|m| m.mean_reward < 0.0 && m.rollout_logprob_gap < 1e-4), "{ma:?}");
    assert!(latest_model(&stopped).unwrap().unwrap().ends_with("step-000003"));
}

#[test]
fn a_short_run_raises_the_token_reward_on_smollm2() {
    let Some(path) = cached_model("smollm2-135m-instruct") else { return };
    let mut lm = entmin::models::load(&CpuBackend, &path, DType::F32).unwrap();
    let prompts = training::prompts(&lm, &ARITHMETIC_QUESTIONS);
    // The token reward of the greedy answers: −(mean entropy).
    let before = -greedy_answer_entropy(&lm, &prompts);
    let out = scratch_dir("emrl-smollm2");
    let opts = RunOptions { out: out.clone(), checkpoint_every: 100, settings: serde_json::json!({}) };
    let config = EmRlConfig { max_new_tokens: 24, steps: 4, ..rl_config(0.0, 0, 1) };
    let opt = new_optimizer(&lm, optim(1e-4, 1.0), &[]).unwrap();
    let mut rl = EmRl::new(&CpuBackend, &mut lm, None, opt, config).unwrap();
    run(&CpuBackend, &mut rl, &prompts, 4, &opts, &mut |m| eprintln!("{m:?}")).unwrap();
    let after = -greedy_answer_entropy(&lm, &prompts);
    eprintln!("greedy-answer token reward: {before:.4} -> {after:.4}");
    assert!(after > before + 0.05, "EM-RL should raise the token reward: {before:.4} -> {after:.4}");
    std::fs::remove_dir_all(&out).unwrap(); // 1.6 GB of checkpoint
}
