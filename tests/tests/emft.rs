//! EM-FT end to end: a killed run resumes exactly (tiny random model), and a few steps
//! on SmolLM2-135M lower the entropy of its answers to held-out prompts.

use entmin::engine::cpu::CpuBackend;
use entmin::engine::{Backend, DType};
use entmin::models::{Architecture, LoadedModel};
use entmin::train::emft::EmFt;
use entmin::train::emft::{EmFtConfig, Reduction, StepMetrics};
use entmin::train::optim::{AdamWConfig, Schedule};
use entmin::train::{latest_model, new_optimizer, resume_optimizer, run, RunOptions};
use entmin_tests::gguf_writer::tiny_model_gguf;
use entmin_tests::tiny::{config, random_weights};
use entmin_tests::training::{greedy_answer_entropy, prompts, ARITHMETIC_QUESTIONS};
use entmin_tests::{cached_model, scratch_dir};

fn emft_config(steps: u64, samples: usize, tokens: usize) -> EmFtConfig {
    EmFtConfig {
        samples_per_prompt: samples,
        max_new_tokens: tokens,
        rollout_temperature: 1.0,
        batch: 2,
        steps,
        seed: 9,
        reduction: Reduction::Sum,
        head_chunk: 5,
        recompute: false,
    }
}

/// Parameters the resume test freezes.
const FROZEN: &str = "layers.0.mlp.";

fn optim(lr: f32, steps: u64) -> AdamWConfig {
    AdamWConfig {
        lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
        grad_clip: 1.0,
        schedule: Schedule::Cosine,
        warmup_steps: 1,
        total_steps: steps,
    }
}

fn weights(lm: &LoadedModel<CpuBackend>) -> Vec<Vec<f32>> {
    lm.model.named_parameters().iter().map(|(_, t)| CpuBackend.to_host_f32(t).unwrap()).collect()
}

fn metrics(dir: &std::path::Path) -> Vec<StepMetrics> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Three steps straight, against one step, a stop, and a resume from the checkpoint on
/// disk for the other two: the same weights to the bit, the same metrics. The first
/// layer's MLP is frozen (`--freeze`): it must come out unchanged, and its empty
/// optimiser state must survive the checkpoint.
#[test]
fn a_stopped_run_resumes_exactly() {
    let c = config(Architecture::Qwen2, false);
    let path = scratch_dir("emft-tiny").join("tiny.gguf");
    std::fs::write(&path, tiny_model_gguf(&c, &random_weights(&c, 3)).build()).unwrap();
    let prompts = vec![vec![5u32, 17, 96], vec![42u32, 1], vec![7u32, 7, 7, 2]];
    let settings = serde_json::json!({ "test": "resume" });
    let run = |dir: &std::path::Path, from: &std::path::Path, steps: u64| {
        let mut lm = entmin::models::load(&CpuBackend, from, DType::F32).unwrap();
        let opts = RunOptions { out: dir.to_path_buf(), checkpoint_every: 1, settings: settings.clone() };
        let fresh = || new_optimizer(&lm, optim(1e-2, 3), &[FROZEN.into()]).unwrap();
        let opt = resume_optimizer(&lm, &opts).unwrap().unwrap_or_else(fresh);
        let mut ft = EmFt::new(&CpuBackend, &mut lm, opt, emft_config(steps, 2, 6)).unwrap();
        run(&CpuBackend, &mut ft, &prompts, steps, &opts, &mut |_| {}).unwrap();
        lm
    };
    let straight = scratch_dir("emft-straight");
    let lm_a = run(&straight, &path, 3);
    let stopped = scratch_dir("emft-stopped");
    run(&stopped, &path, 1);
    // The checkpoint on disk is all that survives the stop.
    let lm_b = run(&stopped, &latest_model(&stopped).unwrap().unwrap(), 3);
    assert_eq!(weights(&lm_a), weights(&lm_b), "resumed weights differ from an uninterrupted run");
    let (ma, mb) = (metrics(&straight), metrics(&stopped));
    assert_eq!(ma.len(), 3);
    assert_eq!(
        ma.iter().map(|m| (m.step, m.loss.to_bits())).collect::<Vec<_>>(),
        mb.iter().map(|m| (m.step, m.loss.to_bits())).collect::<Vec<_>>()
    );
    assert!(ma.iter().all(|m| m.loss.is_finite() && m.loss > 0.0));
    let start = weights(&entmin::models::load(&CpuBackend, &path, DType::F32).unwrap());
    for ((name, _), (after, before)) in lm_a.model.named_parameters().iter().zip(weights(&lm_a).iter().zip(&start)) {
        if name.contains(FROZEN) {
            assert_eq!(after, before, "{name} is frozen");
        } else {
            assert_ne!(after, before, "training moved {name}");
        }
    }
    // A resume with other settings is refused rather than silently mixing runs.
    let lm = entmin::models::load(&CpuBackend, &path, DType::F32).unwrap();
    let other =
        RunOptions { out: stopped.clone(), checkpoint_every: 1, settings: serde_json::json!({ "test": "other" }) };
    assert!(resume_optimizer(&lm, &other).is_err());
    // Training updates f32 weights in place: 16-bit weights are refused with a reason.
    let mut lm16 = entmin::models::load(&CpuBackend, &path, DType::BF16).unwrap();
    let opt = new_optimizer(&lm16, optim(1e-2, 3), &[]).unwrap();
    let err = EmFt::new(&CpuBackend, &mut lm16, opt, emft_config(1, 1, 2)).err().expect("bf16 weights refused");
    assert!(err.to_string().contains("f32 weights"), "{err}");
}

#[test]
fn a_few_steps_lower_the_entropy_on_held_out_prompts() {
    let Some(path) = cached_model("smollm2-135m-instruct") else { return };
    let mut lm = entmin::models::load(&CpuBackend, &path, DType::F32).unwrap();
    let train = prompts(&lm, &ARITHMETIC_QUESTIONS);
    let held_out = prompts(&lm, &["A box holds 6 eggs. How many eggs are in 4 boxes?", "What is 45 divided by 9?"]);
    let before = greedy_answer_entropy(&lm, &held_out);
    let out = scratch_dir("emft-smollm2");
    let opts = RunOptions { out: out.clone(), checkpoint_every: 100, settings: serde_json::json!({}) };
    let opt = new_optimizer(&lm, optim(1e-4, 3), &[]).unwrap();
    let mut ft = EmFt::new(&CpuBackend, &mut lm, opt, emft_config(3, 2, 24)).unwrap();
    run(&CpuBackend, &mut ft, &train, 3, &opts, &mut |m| eprintln!("{m:?}")).unwrap();
    let after = greedy_answer_entropy(&lm, &held_out);
    eprintln!("held-out answer entropy: {before:.4} -> {after:.4} nats");
    assert!(after < 0.9 * before, "EM-FT should lower the entropy: {before:.4} -> {after:.4}");
    // The checkpoint is a Hugging Face folder entmin loads back.
    let back = entmin::models::load(&CpuBackend, &latest_model(&out).unwrap().unwrap(), DType::F32).unwrap();
    assert_eq!(weights(&back), weights(&lm));
    std::fs::remove_dir_all(&out).unwrap(); // 1.6 GB of checkpoint
}
