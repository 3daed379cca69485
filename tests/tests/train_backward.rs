//! The whole model's backward pass (models/src/train.rs) against central finite
//! differences of an independent forward pass (`tiny::reference_forward`, composed from
//! the f64 reference ops) on tiny random Llama and Qwen2 models, for the EM-FT
//! objective: a weighted sum of next-token entropies over some positions.

use entmin_engine::cpu::CpuBackend;
use entmin_engine::{Backend, DType, Rng};
use entmin_models::{Architecture, Model};
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
        let head = model.entropy_head(&CpuBackend, &acts, &WEIGHTS, &[], 3).unwrap();
        let want_loss = reference_loss(&c, &w);
        assert!((head.loss - want_loss).abs() < 1e-4 * want_loss, "{arch:?} loss {} vs {want_loss}", head.loss);
        let grads = model.backward(&CpuBackend, &acts, &head.d_hidden, head.d_head).unwrap();
        let names: Vec<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(grads.tensors.len(), names.len());
        let mut model = model;
        let shapes: Vec<Vec<usize>> = model.parameters_mut().iter().map(|t| t.shape().to_vec()).collect();
        let grad_shapes: Vec<Vec<usize>> = grads.tensors.iter().map(|t| t.shape().to_vec()).collect();
        assert_eq!(shapes, grad_shapes, "parameters_mut and the gradients line up");

        // Activation checkpointing recomputes the same numbers.
        let acts_re = model.forward_train(&CpuBackend, &IDS, true).unwrap();
        let head_re = model.entropy_head(&CpuBackend, &acts_re, &WEIGHTS, &[], 3).unwrap();
        let grads_re = model.backward(&CpuBackend, &acts_re, &head_re.d_hidden, head_re.d_head).unwrap();
        for (name, (g, r)) in names.iter().zip(grads.tensors.iter().zip(&grads_re.tensors)) {
            let same = CpuBackend.to_host_f32(g).unwrap() == CpuBackend.to_host_f32(r).unwrap();
            assert!(same, "{name}: recomputed activations must give the same gradient");
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
