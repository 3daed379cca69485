//! EM-RL's reward specs through a real step (`entmin rl --reward verified+…`): on
//! SmolLM2-135M (pulled by scripts/test.sh), two math prompts with gold answers read from
//! a named field, one answerable and one whose gold no response can give. Each term's
//! value is re-derived from the rollout's own text and its own prompt's gold (the prompt
//! found from the token ids, not from the trainer's order; self-certainty from a fresh head
//! pass), and every advantage is
//! recomputed by hand from the definitions: each term z-scored within the group, weighed,
//! summed, then GRPO's (r − mean)/(std + 1e-6).

use entmin::answer::{extract_answer, is_equivalent};
use entmin::engine::cpu::CpuBackend;
use entmin::models::train_head::HeadSpec;
use entmin::progress::Quiet;
use entmin::train::advantage::Advantage;
use entmin::train::emrl::{EmRl, EmRlConfig};
use entmin::train::rewards::{answer_cluster_rewards, format_reward, random_reward, Reward, RewardReduction};
use entmin::train::rl_objective::KlEstimator;
use entmin::train::TrainSetup;

mod common;
use common::{entmin, scratch, smollm2, text};

/// (x − mean) / (unbiased sd + 1e-6), written out again here.
fn z_scores(x: &[f64]) -> Vec<f64> {
    let m = x.iter().sum::<f64>() / x.len() as f64;
    let sd = (x.iter().map(|a| (a - m).powi(2)).sum::<f64>() / (x.len() as f64 - 1.0)).sqrt();
    x.iter().map(|a| (a - m) / (sd + 1e-6)).collect()
}

#[test]
fn each_term_and_advantage_is_recomputed_from_the_rollouts() {
    if smollm2().is_none() {
        return;
    }
    let dir = scratch("rl-rewards");
    let prompts = dir.join("math.jsonl");
    std::fs::write(
        &prompts,
        concat!(
            "{\"question\": \"What is 10 + 4?\", \"solution\": \"10 + 4 = 14\\n#### 14\"}\n",
            "{\"question\": \"What is 2 + 3?\", \"solution\": \"#### 987654321\"}\n"
        ),
    )
    .unwrap();
    let mut setup = TrainSetup::new("smollm2-135m-instruct", prompts.display().to_string(), dir.join("run"));
    setup.answer_field = Some("solution".into());
    let spec = "verified+0.5*format+0.25*random+answer-cluster+0.1*self-certainty";
    let cfg = EmRlConfig {
        reward: Reward::parse(spec).unwrap(),
        reward_reduction: RewardReduction::Mean,
        advantage: Advantage::Grpo,
        rollouts_per_prompt: 4,
        rollout_temperature: 0.7,
        max_new_tokens: 96,
        clip: 0.2,
        kl_coef: 0.0,
        kl_estimator: KlEstimator::LowVarKl,
        entropy_bonus: 0.0,
        ppo_epochs: 1,
        mini_batch: 0,
        batch: 2,
        steps: 1,
        seed: 3,
        head_chunk: 64,
        recompute: false,
    };
    let b = CpuBackend;
    let settings = serde_json::to_value(&cfg).unwrap();
    let mut p = setup.prepare(&b, settings, cfg.updates_per_step(), true, &Quiet).unwrap();
    assert_eq!(p.golds, ["14", "987654321"], "GSM8K-style golds are cut after ####");
    let (prompt_ids, golds) = (p.prompts.clone(), p.golds.clone());
    let rl = EmRl::new(&b, &mut p.lm, None, p.opt, cfg).unwrap().with_golds(golds.clone());
    let c = rl.collect(&b, &prompt_ids, 1).unwrap();
    assert_eq!((c.rollouts.len(), c.terms.len()), (8, 5));

    let mut correct = [0usize; 2];
    for (g, group) in c.rollouts.chunks(4).enumerate() {
        let texts: Vec<String> =
            group.iter().map(|r| rl.t.lm.tokenizer.decode(&r.ids[r.prompt_len..], true).unwrap()).collect();
        let t = prompt_ids.iter().position(|q| q[..] == group[0].ids[..group[0].prompt_len]).unwrap();
        let mut own = vec![Vec::new(); 5];
        for (j, text) in texts.iter().enumerate() {
            let i = g * 4 + j;
            let verified = f64::from(u8::from(extract_answer(text).is_some_and(|a| is_equivalent(&a, &golds[t]))));
            correct[t] += verified as usize;
            own[0].push(verified);
            own[1].push(format_reward(text));
            own[2].push(random_reward(3, 1, i));
            assert_eq!(c.terms[0][i], verified, "rollout {i} (prompt {t}): {text:?}");
            assert_eq!(c.terms[1][i], own[1][j]);
            assert_eq!(c.terms[2][i], own[2][j]);
        }
        own[3] = answer_cluster_rewards(&texts);
        assert_eq!(c.terms[3][g * 4..][..4], own[3][..]);
        // Self-certainty: the mean over the response of a fresh head pass's values.
        for (j, r) in group.iter().enumerate() {
            let lm = &rl.t.lm;
            let acts = lm.model.forward_train(&b, &r.ids, false).unwrap();
            let active = r.active();
            let head = HeadSpec { active: &active, inv_temperature: 1.0 / 0.7, banned: &lm.banned_ids, chunk: 64 };
            let stats = lm.model.token_stats(&b, &acts, head).unwrap();
            let span = &stats.self_certainty[r.prompt_len - 1..r.ids.len() - 1];
            own[4].push(span.iter().map(|&x| x as f64).sum::<f64>() / span.len() as f64);
            let got = c.terms[4][g * 4 + j];
            assert!(got > 0.0 && (got - own[4][j]).abs() < 1e-9, "self-certainty {got} vs {}", own[4][j]);
        }
        let weights = [1.0, 0.5, 0.25, 1.0, 0.1];
        let mut reward = [0f64; 4];
        for (w, term) in weights.iter().zip(&own) {
            for (r, z) in reward.iter_mut().zip(z_scores(term)) {
                *r += w * z;
            }
        }
        for (j, (r, want)) in group.iter().zip(z_scores(&reward)).enumerate() {
            assert!((r.advantage - want).abs() < 1e-9, "rollout {}: advantage {} ≠ {want}", g * 4 + j, r.advantage);
            assert!((c.rewards[g * 4 + j] - reward[j]).abs() < 1e-9);
        }
    }
    assert_eq!(correct[1], 0, "no response can give the second prompt's gold");
    assert!(correct[0] > 0, "no rollout answered 10 + 4 = 14: the check saw no verified reward of 1");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_verified_reward_names_a_missing_gold_field() {
    if smollm2().is_none() {
        return;
    }
    let dir = scratch("rl-verified-refuse");
    let prompts = dir.join("unlabelled.jsonl");
    std::fs::write(&prompts, "{\"question\": \"What is 2+2?\"}\n").unwrap();
    let file = prompts.display().to_string();
    let out_dir = dir.join("run").display().to_string();
    let base = ["rl", "-m", "smollm2-135m-instruct", "--steps", "1", "--prompts", &file, "--out", &out_dir];
    let out = entmin(&[&base[..], &["--reward", "verified"]].concat());
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&file) && stderr.contains("line 1: no field \"answer\"") && stderr.contains("--answer-field"),
        "{stderr}"
    );
    let out = entmin(&[&base[..], &["--reward", "verified+0.5*tokens"]].concat());
    assert!(text(&out.stderr).contains("unknown reward \"tokens\""), "{}", text(&out.stderr));
    let out = entmin(&[&base[..], &["--reward", "answer-cluster", "--rollouts-per-prompt", "1"]].concat());
    assert!(text(&out.stderr).contains("needs at least 2 rollouts per prompt"), "{}", text(&out.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}
