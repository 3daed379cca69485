//! EM-RL's tests reward (`entmin rl --reward tests`): a rollout's reward is 1 exactly when
//! the program in its response, run against its own prompt's tests in a fresh sandbox,
//! passes. SmolLM2-135M (pulled by scripts/test.sh) samples for two code prompts: one whose
//! tests every valid program passes, one whose tests nothing passes; the check re-derives
//! each rollout's prompt from its token ids, not from the trainer's prompt order.

use entmin::code::{extract_program, Limits, Pool, Sandbox, Status};
use entmin::engine::cpu::CpuBackend;
use entmin::eval::test_program;
use entmin::progress::Quiet;
use entmin::train::advantage::Advantage;
use entmin::train::emrl::{EmRl, EmRlConfig};
use entmin::train::rewards::{Reward, RewardKind, RewardReduction};
use entmin::train::rl_objective::KlEstimator;
use entmin::train::TrainSetup;

mod common;
use common::{scratch, smollm2};

fn config(reward: RewardKind) -> EmRlConfig {
    EmRlConfig {
        reward: Reward::single(reward),
        reward_reduction: RewardReduction::Mean,
        advantage: Advantage::Rloo,
        rollouts_per_prompt: 4,
        rollout_temperature: 0.7,
        max_new_tokens: 64,
        clip: 0.2,
        kl_coef: 0.0,
        kl_estimator: KlEstimator::LowVarKl,
        entropy_bonus: 0.0,
        ppo_epochs: 1,
        mini_batch: 0,
        batch: 2,
        steps: 1,
        seed: 11,
        head_chunk: 64,
        recompute: false,
    }
}

#[test]
fn the_tests_reward_is_each_rollouts_own_sandbox_verdict() {
    if smollm2().is_none() {
        return;
    }
    let dir = scratch("rl-tests-reward");
    let problems = dir.join("code.jsonl");
    let lenient = r#"{"prompt": "def add(a, b):\n    \"\"\"Return a + b.\"\"\"\n", "entry_point": "add", "test": "def check(candidate):\n    assert callable(candidate)\n"}"#;
    let impossible = r#"{"prompt": "def double(x):\n    \"\"\"Return 2 * x.\"\"\"\n", "entry_point": "double", "test": "def check(candidate):\n    assert False, 'no program passes'\n"}"#;
    std::fs::write(&problems, format!("{lenient}\n{impossible}\n")).unwrap();

    let b = CpuBackend;
    let mut setup = TrainSetup::new("smollm2-135m-instruct", problems.display().to_string(), dir.join("run"));
    setup.code_fields.test = Some("test".into());
    let cfg = config(RewardKind::Tests);
    let settings = serde_json::to_value(&cfg).unwrap();
    let mut p = setup.prepare(&b, settings, cfg.updates_per_step(), false, &Quiet).unwrap();
    assert_eq!(p.tasks.len(), 2, "both lines are code tasks");
    let tasks = p.tasks.clone();
    let prompts = p.prompts.clone();
    let pool = Pool::new(Sandbox::new(Limits::default()).unwrap(), 4);
    let rl = EmRl::new(&b, &mut p.lm, None, p.opt, cfg).unwrap().with_tests(tasks.clone(), pool);
    let collected = rl.collect(&b, &prompts, 1).unwrap();
    assert_eq!(collected.rollouts.len(), 8);

    let fresh = Sandbox::new(Limits::default()).unwrap();
    let mut passed_per_task = [0usize; 2];
    for (r, &reward) in collected.rollouts.iter().zip(&collected.rewards) {
        let t = prompts.iter().position(|q| q[..] == r.ids[..r.prompt_len]).expect("a rollout starts with a prompt");
        let response = rl.t.lm.tokenizer.decode(&r.ids[r.prompt_len..], true).unwrap();
        let program = extract_program(&tasks[t].prompt, &response, &tasks[t].entry_point);
        let verdict = fresh.run(&test_program(&tasks[t], &program)).unwrap();
        let expected = f64::from(u8::from(verdict.status == Status::Passed));
        assert_eq!(reward, expected, "prompt {t}: {:?} ({}) for\n{program}", verdict.status, verdict.detail);
        passed_per_task[t] += usize::from(verdict.status == Status::Passed);
    }
    assert_eq!(passed_per_task[1], 0, "the impossible tests passed");
    assert!(passed_per_task[0] > 0, "no rollout of the lenient prompt passed: the check saw no reward of 1");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_tests_reward_refuses_prompts_without_tests() {
    if smollm2().is_none() {
        return;
    }
    let dir = scratch("rl-tests-refuse");
    let prompts = dir.join("math.jsonl");
    std::fs::write(&prompts, "{\"question\": \"What is 2+2?\"}\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_entmin"))
        .args(["rl", "-m", "smollm2-135m-instruct", "--reward", "tests", "--steps", "1", "--prompts"])
        .arg(&prompts)
        .arg("--out")
        .arg(dir.join("run"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the tests reward needs code prompts with tests"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
