//! The whole model's backward pass (models/src/train.rs) against central finite
//! differences of an independent forward pass (`tiny::reference_forward`, composed from
//! the f64 reference ops) on tiny random Llama and Qwen2 models, for the EM-FT
//! objective: a weighted sum of next-token entropies over some positions.

use entmin_engine::cpu::CpuBackend;
use entmin_engine::{Backend, DType, Rng};
use entmin_models::{Architecture, Model};
use entmin_tests::assert_close;
use entmin_tests::tiny::{config, random_weights, reference_forward, MemorySource};

const IDS: [u32; 7] = [5, 17, 96, 3, 42, 7, 8];
/// Prompt positions weigh 0; one response position weighs a half.
const WEIGHTS: [f32; 7] = [0.0, 0.0, 1.0, 1.0, 1.0, 0.5, 1.0];

fn reference_loss(c: &entmin_models::ModelConfig, w: &MemorySource) -> f64 {
    let logits = reference_forward(c, w, &IDS);
    logits
        .chunks(c.vocab_size)
        .zip(WEIGHTS)
        .map(|(row, wt)| {
            let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = row.iter().map(|x| (x - m).exp()).sum();
            let h = s.ln() - row.iter().map(|x| (x - m).exp() * (x - m)).sum::<f64>() / s;
            wt as f64 * h
        })
        .sum()
}

#[test]
fn model_gradients_match_finite_differences() {
    for (arch, tie) in [(Architecture::Llama, true), (Architecture::Qwen2, false)] {
        let c = config(arch, tie);
        let w = random_weights(&c, 7);
        let model = Model::load(&CpuBackend, c.clone(), &w, DType::F32).unwrap();
        let acts = model.forward_train(&CpuBackend, &IDS, false).unwrap();
        let mut grads = model.zero_gradients(&CpuBackend).unwrap();
        let d_head = model.head_gradient(&mut grads).unwrap();
        let head = model.entropy_head(&CpuBackend, &acts, &WEIGHTS, &[], 3, d_head).unwrap();
        let want_loss = reference_loss(&c, &w);
        assert!((head.loss - want_loss).abs() < 1e-4 * want_loss, "{arch:?} loss {} vs {want_loss}", head.loss);
        model.backward(&CpuBackend, &acts, &head.d_hidden, &mut grads).unwrap();
        let names: Vec<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(grads.tensors.len(), names.len());
        let mut model = model;
        let shapes: Vec<Vec<usize>> = model.parameters_mut().iter().map(|t| t.shape().to_vec()).collect();
        let grad_shapes: Vec<Vec<usize>> = grads.tensors.iter().map(|t| t.shape().to_vec()).collect();
        assert_eq!(shapes, grad_shapes, "parameters_mut and the gradients line up");

        // Activation checkpointing recomputes the same numbers; a second sequence's
        // backward adds into the same gradients (here: the same sequence again, twice).
        let mut grads_re = model.zero_gradients(&CpuBackend).unwrap();
        for _ in 0..2 {
            let acts_re = model.forward_train(&CpuBackend, &IDS, true).unwrap();
            let d_head = model.head_gradient(&mut grads_re).unwrap();
            let head_re = model.entropy_head(&CpuBackend, &acts_re, &WEIGHTS, &[], 3, d_head).unwrap();
            model.backward(&CpuBackend, &acts_re, &head_re.d_hidden, &mut grads_re).unwrap();
        }
        for (name, (g, r)) in names.iter().zip(grads.tensors.iter().zip(&grads_re.tensors)) {
            // Equal up to the rounding of the additions (chunks and GEMM blocks add in turn).
            let twice: Vec<f64> = CpuBackend.to_host_f32(g).unwrap().iter().map(|&v| 2.0 * v as f64).collect();
            assert_close(
                &format!("{name}, two recomputed passes vs 2×"),
                &CpuBackend.to_host_f32(r).unwrap(),
                &twice,
                1e-6,
            );
        }

        let mut rng = Rng::new(11);
        let mut worst = 0f64;
        for (name, g) in names.iter().zip(&grads.tensors) {
            let got = CpuBackend.to_host_f32(g).unwrap();
            assert_eq!(got.len(), w.0[name].data.len(), "{name}: gradient shape");
            for _ in 0..4 {
                let i = (rng.next_u64() % got.len() as u64) as usize;
                let h = 1e-2f32;
                let mut plus = w.clone();
                plus.0.get_mut(name).unwrap().data[i] += h;
                let mut minus = w.clone();
                minus.0.get_mut(name).unwrap().data[i] -= h;
                let step = plus.0[name].data[i] as f64 - minus.0[name].data[i] as f64;
                let fd = (reference_loss(&c, &plus) - reference_loss(&c, &minus)) / step;
                let err = (got[i] as f64 - fd).abs();
                worst = worst.max(err / (fd.abs() + 1e-2));
                assert!(
                    err <= 2e-3 + 2e-2 * fd.abs(),
                    "{arch:?} {name}[{i}]: backward {} vs finite difference {fd}",
                    got[i]
                );
            }
        }
        eprintln!("{arch:?}: worst error relative to |fd| + 0.01: {worst:.2e}");
    }
}

/// EM-RL's loss at the head (PPO surrogate + KL to a reference − entropy bonus, at a
/// rollout temperature of 0.7) through `head_backward` and the model's backward, against
/// central differences of the same loss computed from the independent forward in f64.
/// The old and reference log-probabilities are offsets from the current ones chosen so
/// that tokens sit inside the trust region, above it and below it (away from the kinks).
#[test]
fn policy_objective_gradients_match_finite_differences() {
    use entmin::train::rl_objective::{ppo_clipped, KlEstimator};
    use entmin_models::train_head::HeadSpec;
    const INV_T: f64 = 1.0 / 0.7;
    const ACTIVE: [bool; 7] = [false, true, true, true, true, true, false];
    const ADVANTAGE: [f64; 7] = [0.0, 1.5, -0.8, 1.5, -0.8, 0.6, 0.0];
    const OLD_OFFSET: [f64; 7] = [0.0, -0.5, 0.05, 0.6, -0.5, 0.0, 0.0];
    let (kl_coef, bonus, clip) = (0.3, 0.05, 0.2);
    let c = config(Architecture::Qwen2, false);
    let w = random_weights(&c, 21);
    // log p(next token), H and the self-certainty −log V − mean_j log p_j at temperature
    // 0.7 from the independent forward.
    let stats = |w: &MemorySource| -> Vec<(f64, f64, f64)> {
        reference_forward(&c, w, &IDS)
            .chunks(c.vocab_size)
            .enumerate()
            .map(|(p, row)| {
                let x: Vec<f64> = row.iter().map(|z| z * INV_T).collect();
                let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let s: f64 = x.iter().map(|v| (v - m).exp()).sum();
                let lse = m + s.ln();
                let h = -x.iter().map(|v| (v - lse).exp() * (v - lse)).sum::<f64>();
                let target = IDS.get(p + 1).copied().unwrap_or(0) as usize;
                let v = x.len() as f64;
                (x[target] - lse, h, -v.ln() - x.iter().map(|x| x - lse).sum::<f64>() / v)
            })
            .collect()
    };
    let base = stats(&w);
    let old: Vec<f64> = base.iter().zip(OLD_OFFSET).map(|((l, ..), o)| l + o).collect();
    let reference: Vec<f64> = base.iter().enumerate().map(|(p, (l, ..))| l - 0.3 + 0.15 * p as f64).collect();
    let loss_of = |p: usize, logp: f64, h: f64| {
        ppo_clipped(ADVANTAGE[p], logp, old[p], clip).0 + kl_coef * KlEstimator::LowVarKl.eval(logp, reference[p]).0
            - bonus * h
    };
    let reference_loss = |w: &MemorySource| -> f64 {
        stats(w).iter().enumerate().filter(|(p, _)| ACTIVE[*p]).map(|(p, &(l, h, _))| loss_of(p, l, h)).sum()
    };
    let model = Model::load(&CpuBackend, c.clone(), &w, DType::F32).unwrap();
    let acts = model.forward_train(&CpuBackend, &IDS, false).unwrap();
    let spec = HeadSpec { active: &ACTIVE, inv_temperature: INV_T as f32, banned: &[], chunk: 4 };
    let mut loss = 0f64;
    let mut grads = model.zero_gradients(&CpuBackend).unwrap();
    let d_head = model.head_gradient(&mut grads).unwrap();
    let (got_stats, d_hidden) = model
        .head_backward(
            &CpuBackend,
            &acts,
            spec,
            &mut |start, logp, _| {
                let mut d_logp = vec![0f32; logp.len()];
                for (i, d) in d_logp.iter_mut().enumerate() {
                    let p = start + i;
                    if ACTIVE[p] {
                        let (l, dpg, _) = ppo_clipped(ADVANTAGE[p], logp[i] as f64, old[p], clip);
                        let (kl, dkl) = KlEstimator::LowVarKl.eval(logp[i] as f64, reference[p]);
                        loss += l + kl_coef * kl;
                        *d = (dpg + kl_coef * dkl) as f32;
                    }
                }
                Ok((d_logp, vec![-bonus as f32; logp.len()]))
            },
            d_head,
        )
        .unwrap();
    for (p, &(l, h, kl)) in base.iter().enumerate().filter(|(p, _)| ACTIVE[*p]) {
        assert!((got_stats.logp[p] as f64 - l).abs() < 1e-4, "log p at {p}: {} vs {l}", got_stats.logp[p]);
        assert!((got_stats.entropy[p] as f64 - h).abs() < 1e-4, "H at {p}: {} vs {h}", got_stats.entropy[p]);
        let certainty = got_stats.self_certainty[p] as f64;
        assert!((certainty - kl).abs() < 1e-4 && kl > 0.01, "self-certainty at {p}: {certainty} vs {kl}");
        loss -= bonus * got_stats.entropy[p] as f64;
    }
    assert!((loss - reference_loss(&w)).abs() < 1e-4, "loss {loss} vs {}", reference_loss(&w));
    model.backward(&CpuBackend, &acts, &d_hidden, &mut grads).unwrap();
    let names: Vec<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();
    let mut rng = Rng::new(12);
    for (name, g) in names.iter().zip(&grads.tensors) {
        let got = CpuBackend.to_host_f32(g).unwrap();
        for _ in 0..3 {
            let i = (rng.next_u64() % got.len() as u64) as usize;
            let (mut plus, mut minus) = (w.clone(), w.clone());
            plus.0.get_mut(name).unwrap().data[i] += 1e-2;
            minus.0.get_mut(name).unwrap().data[i] -= 1e-2;
            let step = plus.0[name].data[i] as f64 - minus.0[name].data[i] as f64;
            let fd = (reference_loss(&plus) - reference_loss(&minus)) / step;
            assert!(
                (got[i] as f64 - fd).abs() <= 2e-3 + 2e-2 * fd.abs(),
                "{name}[{i}]: backward {} vs finite difference {fd}",
                got[i]
            );
        }
    }
}
