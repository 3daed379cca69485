//! Training on the wgpu backend against the CPU backend (whose model gradients are checked
//! against finite differences in train_backward.rs), on tiny random Llama and Qwen2
//! models: the whole model's gradients for the EM-FT and the policy-gradient heads, EM-FT
//! updates through the host-side optimiser with a frozen part, and a short EM-FT run
//! with checkpoints. Skipped without an adapter unless ENTMIN_REQUIRE_WGPU=1.

use entmin::engine::cpu::CpuBackend;
use entmin::engine::{Backend, DType};
use entmin::models::train_head::HeadSpec;
use entmin::models::{Architecture, LoadedModel, Model};
use entmin::train::emft::{EmFt, EmFtConfig, Reduction};
use entmin::train::optim::{AdamWConfig, Schedule};
use entmin::train::{latest_model, new_optimizer, run, RunOptions};
use entmin_tests::gguf_writer::tiny_model_gguf;
use entmin_tests::tiny::{config, random_weights};
use entmin_tests::{scratch_dir, wgpu_backends};

const IDS: [u32; 7] = [5, 17, 96, 3, 42, 7, 8];
const WEIGHTS: [f32; 7] = [0.0, 0.0, 1.0, 1.0, 1.0, 0.5, 1.0];

/// `got` within `tol` of `want`, relative to the largest value of `want`.
fn assert_near(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1e-6f32, |m, x| m.max(x.abs()));
    let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max) / scale;
    assert!(worst <= tol, "{what}: worst difference {worst:.2e} of the largest value {scale:.3e}");
}

/// (loss, every parameter's gradient) of the EM-FT entropy head and, added into the same
/// gradients, a policy-gradient head (d log p = 0.7 at every position, entropy bonus
/// −0.05, temperature 0.8).
fn gradients<B: Backend>(b: &B, model: &Model<B>) -> (f64, Vec<Vec<f32>>) {
    let mut grads = model.zero_gradients(b).unwrap();
    let acts = model.forward_train(b, &IDS, false).unwrap();
    let d_head = model.head_gradient(&mut grads).unwrap();
    let head = model.entropy_head(b, &acts, &WEIGHTS, &[], 3, d_head).unwrap();
    model.backward(b, &acts, &head.d_hidden, &mut grads).unwrap();
    let acts = model.forward_train(b, &IDS, true).unwrap();
    let d_head = model.head_gradient(&mut grads).unwrap();
    let active = [false, true, true, true, true, true, false];
    let spec = HeadSpec { active: &active, inv_temperature: 1.25, banned: &[], chunk: 4 };
    let (_, d_hidden) = model
        .head_backward(b, &acts, spec, &mut |_, logp, _| Ok((vec![0.7; logp.len()], vec![-0.05; logp.len()])), d_head)
        .unwrap();
    model.backward(b, &acts, &d_hidden, &mut grads).unwrap();
    (head.loss, grads.tensors.iter().map(|t| b.to_host_f32(t).unwrap()).collect())
}

#[test]
fn model_gradients_match_the_cpu() {
    let Some((_, gpu)) = wgpu_backends().first() else { return };
    for (arch, tie) in [(Architecture::Llama, true), (Architecture::Qwen2, false)] {
        let c = config(arch, tie);
        let w = random_weights(&c, 7);
        let on_cpu = Model::load(&CpuBackend, c.clone(), &w, DType::F32).unwrap();
        let on_gpu = Model::load(gpu, c.clone(), &w, DType::F32).unwrap();
        let (want_loss, want) = gradients(&CpuBackend, &on_cpu);
        let (got_loss, got) = gradients(gpu, &on_gpu);
        assert!((got_loss - want_loss).abs() < 1e-5 * want_loss.abs(), "{arch:?} loss {got_loss} vs {want_loss}");
        for ((name, _), (g, w)) in on_cpu.named_parameters().iter().zip(got.iter().zip(&want)) {
            assert_near(&format!("{arch:?} {name}"), g, w, 1e-4);
        }
    }
}

/// ε = 1e-3 makes an update follow the gradient's size: with the usual 1e-8, a gradient
/// near 0 whose sign differs between backends in its last bits moves its weight by ±lr.
fn optim(steps: u64) -> AdamWConfig {
    AdamWConfig {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-3,
        weight_decay: 0.01,
        grad_clip: 1.0,
        schedule: Schedule::Cosine,
        warmup_steps: 1,
        total_steps: steps,
    }
}

fn emft_config(steps: u64) -> EmFtConfig {
    EmFtConfig {
        samples_per_prompt: 2,
        max_new_tokens: 6,
        rollout_temperature: 1.0,
        batch: 2,
        steps,
        seed: 9,
        reduction: Reduction::Sum,
        head_chunk: 5,
        recompute: false,
    }
}

fn weights<B: Backend>(b: &B, lm: &LoadedModel<B>) -> Vec<Vec<f32>> {
    lm.model.named_parameters().iter().map(|(_, t)| b.to_host_f32(t).unwrap()).collect()
}

const FROZEN: &str = "layers.1.self_attn.";

/// Two EM-FT updates on fixed sequences: the optimiser's f32 masters on the host, the
/// weights uploaded after each update, the frozen part untouched, all as on the CPU.
#[test]
fn emft_updates_match_the_cpu() {
    let Some((_, gpu)) = wgpu_backends().first() else { return };
    let c = config(Architecture::Qwen2, false);
    let path = scratch_dir("wgpu-train").join("tiny.gguf");
    std::fs::write(&path, tiny_model_gguf(&c, &random_weights(&c, 3)).build()).unwrap();
    let batch = vec![(IDS.to_vec(), WEIGHTS.to_vec()), (vec![9, 8, 7, 6], vec![0.0, 1.0, 1.0, 0.0])];
    fn train<B: Backend>(b: &B, path: &std::path::Path, batch: &[(Vec<u32>, Vec<f32>)]) -> (Vec<f64>, Vec<Vec<f32>>) {
        let mut lm = entmin::models::load(b, path, DType::F32).unwrap();
        let opt = new_optimizer(&lm, optim(2), &[FROZEN.into()]).unwrap();
        let mut ft = EmFt::new(b, &mut lm, opt, emft_config(2)).unwrap();
        let losses = (0..2).map(|_| ft.update(b, batch).unwrap().loss).collect();
        drop(ft);
        (losses, weights(b, &lm))
    }
    let (want_losses, want) = train(&CpuBackend, &path, &batch);
    let (got_losses, got) = train(gpu, &path, &batch);
    for (g, w) in got_losses.iter().zip(&want_losses) {
        assert!((g - w).abs() < 1e-5 * w.abs(), "losses {got_losses:?} vs {want_losses:?}");
    }
    let start = weights(&CpuBackend, &entmin::models::load(&CpuBackend, &path, DType::F32).unwrap());
    let lm = entmin::models::load(&CpuBackend, &path, DType::F32).unwrap();
    for (((name, _), (g, w)), s) in lm.model.named_parameters().iter().zip(got.iter().zip(&want)).zip(&start) {
        if name.contains(FROZEN) {
            assert_eq!(g, s, "{name} is frozen");
        } else {
            assert_ne!(g, s, "training moved {name}");
            let worst = g.iter().zip(w).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-4, "{name}: wgpu and CPU weights differ by {worst}");
        }
    }
}

/// A short EM-FT run on wgpu end to end: rollouts, updates, a checkpoint that loads back.
#[test]
fn an_emft_run_on_wgpu_writes_a_checkpoint() {
    let Some((_, gpu)) = wgpu_backends().first() else { return };
    let c = config(Architecture::Llama, true);
    let path = scratch_dir("wgpu-run").join("tiny.gguf");
    std::fs::write(&path, tiny_model_gguf(&c, &random_weights(&c, 5)).build()).unwrap();
    let out = scratch_dir("wgpu-run-out");
    let mut lm = entmin::models::load(gpu, &path, DType::F32).unwrap();
    let opts = RunOptions { out: out.clone(), checkpoint_every: 1, settings: serde_json::json!({}) };
    let opt = new_optimizer(&lm, optim(2), &[]).unwrap();
    let mut ft = EmFt::new(gpu, &mut lm, opt, emft_config(2)).unwrap();
    let prompts = vec![vec![5u32, 17, 96], vec![42u32, 1]];
    let mut losses = Vec::new();
    run(gpu, &mut ft, &prompts, 2, &opts, &mut |m| losses.push(m.loss)).unwrap();
    drop(ft);
    assert!(losses.len() == 2 && losses.iter().all(|l| l.is_finite() && *l > 0.0), "{losses:?}");
    let back = entmin::models::load(&CpuBackend, &latest_model(&out).unwrap().unwrap(), DType::F32).unwrap();
    assert_eq!(weights(&CpuBackend, &back), weights(gpu, &lm), "the checkpoint holds the trained weights");
}

/// One EM-RL step on wgpu and on the CPU from the same weights: rollouts (the same
/// samples), the old-policy and KL-reference passes, two PPO epochs of two mini-batches
/// (so the second epoch's ratios differ from 1), the same metrics and weights.
#[test]
fn an_emrl_step_matches_the_cpu() {
    use entmin::train::emrl::{EmRl, EmRlConfig, RlStepMetrics};
    use entmin::train::advantage::Advantage;
    use entmin::train::rewards::{Reward, RewardKind, RewardReduction};
    use entmin::train::rl_objective::KlEstimator;
    let Some((_, gpu)) = wgpu_backends().first() else { return };
    let c = config(Architecture::Qwen2, false);
    let path = scratch_dir("wgpu-rl").join("tiny.gguf");
    std::fs::write(&path, tiny_model_gguf(&c, &random_weights(&c, 4)).build()).unwrap();
    let config = EmRlConfig {
        reward: Reward::single(RewardKind::Token),
        reward_reduction: RewardReduction::Mean,
        advantage: Advantage::Rloo,
        rollouts_per_prompt: 4,
        rollout_temperature: 1.0,
        max_new_tokens: 6,
        clip: 0.2,
        kl_coef: 0.1,
        kl_estimator: KlEstimator::LowVarKl,
        entropy_bonus: 0.01,
        ppo_epochs: 2,
        mini_batch: 4,
        batch: 2,
        steps: 1,
        seed: 5,
        head_chunk: 3,
        recompute: false,
    };
    let prompts = vec![vec![5u32, 17, 96], vec![42u32, 1]];
    fn step<B: Backend>(
        b: &B,
        path: &std::path::Path,
        config: &EmRlConfig,
        prompts: &[Vec<u32>],
    ) -> (RlStepMetrics, Vec<Vec<f32>>) {
        let mut lm = entmin::models::load(b, path, DType::F32).unwrap();
        let reference = entmin::models::load(b, path, DType::F32).unwrap();
        let opt = new_optimizer(&lm, optim(config.updates_per_step()), &[]).unwrap();
        let mut rl = EmRl::new(b, &mut lm, Some(&reference), opt, config.clone()).unwrap();
        let metrics = rl.step(b, prompts).unwrap();
        drop(rl);
        (metrics, weights(b, &lm))
    }
    let (want, want_w) = step(&CpuBackend, &path, &config, &prompts);
    let (got, got_w) = step(gpu, &path, &config, &prompts);
    assert_eq!(got.mean_response_tokens, want.mean_response_tokens, "the same samples");
    for (what, g, w) in [
        ("reward", got.mean_reward, want.mean_reward),
        ("entropy", got.mean_entropy, want.mean_entropy),
        ("pg_loss", got.pg_loss, want.pg_loss),
        ("kl", got.kl, want.kl),
        ("grad_norm", got.grad_norm, want.grad_norm),
    ] {
        assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{what}: wgpu {g} vs CPU {w}");
    }
    assert!(want.kl > 0.0, "the second epoch moved away from the reference");
    for (g, w) in got_w.iter().zip(&want_w) {
        let worst = g.iter().zip(w).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-4, "wgpu and CPU weights differ by {worst}");
    }
}
