//! AdamW with decoupled weight decay, gradient clipping by global norm and learning-rate
//! schedules. State lives on the host in f32 (master weights are f32 too): one moment
//! pair per parameter, in `Model::named_parameters` order.

use crate::error::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Elements per parallel work item: parameters range from a few hundred values to tens of
/// millions (embeddings), so work is split inside each parameter.
const CHUNK: usize = 1 << 16;

/// AdamW's hyperparameters and learning-rate schedule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// Peak learning rate, reached at the end of the warm-up.
    pub lr: f32,
    /// β₁: decay rate of the first moment (the mean of the gradients).
    pub beta1: f32,
    /// β₂: decay rate of the second moment (the mean of the squared gradients).
    pub beta2: f32,
    /// ε added to the square root of the second moment, for numerical stability.
    pub eps: f32,
    /// Decoupled: w ← w − lr·wd·w, applied to matrices only (norm weights and biases
    /// are not decayed, as is usual for transformers).
    pub weight_decay: f32,
    /// Clip the global gradient norm to this (0 disables).
    pub grad_clip: f32,
    /// How the learning rate changes after the warm-up.
    pub schedule: Schedule,
    /// Linear warm-up steps (0 for none), then the schedule.
    pub warmup_steps: u64,
    /// Total steps, for the cosine and linear decays.
    pub total_steps: u64,
}

/// A learning-rate schedule after the warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Schedule {
    /// lr at every step after the warm-up.
    Constant,
    /// From lr down to 0 at `total_steps`.
    Linear,
    /// Half a cosine from lr down to 0 at `total_steps`.
    Cosine,
}

impl Schedule {
    /// The schedule called `s`: "constant", "linear" or "cosine".
    pub fn parse(s: &str) -> Result<Schedule> {
        Ok(match s {
            "constant" => Schedule::Constant,
            "linear" => Schedule::Linear,
            "cosine" => Schedule::Cosine,
            other => return Err(Error::invalid(format!("unknown schedule {other:?} (constant, linear, cosine)"))),
        })
    }
}

impl AdamWConfig {
    /// Learning rate of step `step` (1-based).
    pub fn lr_at(&self, step: u64) -> f32 {
        if step <= self.warmup_steps {
            return self.lr * step as f32 / self.warmup_steps.max(1) as f32;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        let factor = match self.schedule {
            Schedule::Constant => 1.0,
            Schedule::Linear => 1.0 - progress,
            Schedule::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        };
        (self.lr as f64 * factor) as f32
    }
}

/// Moments and step count: everything `--resume` needs besides the weights.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamW {
    /// The hyperparameters.
    pub config: AdamWConfig,
    /// Updates done so far; the next update is step `step + 1` of the schedule.
    pub step: u64,
    /// First moments, one vector per parameter (empty for a frozen one).
    pub m: Vec<Vec<f32>>,
    /// Second moments, one vector per parameter (empty for a frozen one).
    pub v: Vec<Vec<f32>>,
}

/// What one optimiser step did.
#[derive(Clone, Copy, Debug)]
pub struct StepReport {
    /// The learning rate the update used.
    pub lr: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

impl AdamW {
    /// A fresh optimiser with zero moments of `sizes[i]` values for parameter i (0: frozen).
    pub fn new(config: AdamWConfig, sizes: &[usize]) -> Self {
        AdamW {
            config,
            step: 0,
            m: sizes.iter().map(|&n| vec![0.0; n]).collect(),
            v: sizes.iter().map(|&n| vec![0.0; n]).collect(),
        }
    }

    /// Whether parameter i is frozen: it holds no moments, is never updated and its
    /// gradient stays out of the norm (`--freeze`).
    pub fn frozen(&self, i: usize) -> bool {
        self.m[i].is_empty()
    }

    /// One update of `params` (in host memory) with `grads`; `decay[i]` says whether
    /// parameter i takes weight decay. A non-finite gradient norm is an error and
    /// leaves everything untouched.
    pub fn step(&mut self, params: &mut [&mut [f32]], grads: &[&[f32]], decay: &[bool]) -> Result<StepReport> {
        if params.len() != self.m.len() || grads.len() != params.len() || decay.len() != params.len() {
            return Err(Error::training(format!(
                "optimiser holds {} parameters, got {} / {} / {}",
                self.m.len(),
                params.len(),
                grads.len(),
                decay.len()
            )));
        }
        let mismatch = (0..params.len())
            .find(|&i| params[i].len() != grads[i].len() || !(self.frozen(i) || self.m[i].len() == params[i].len()));
        if let Some(i) = mismatch {
            return Err(Error::training(format!(
                "parameter {i}: {} values, gradient {}, moments {}",
                params[i].len(),
                grads[i].len(),
                self.m[i].len()
            )));
        }
        // Chunk sums are collected in order and added in order, so the norm (and with it a
        // resumed run) does not depend on how rayon split the work.
        let chunk_sums: Vec<f64> = grads
            .iter()
            .enumerate()
            .filter(|&(i, _)| !self.frozen(i))
            .flat_map(|(_, g)| {
                g.par_chunks(CHUNK).map(|c| c.iter().map(|&x| x as f64 * x as f64).sum::<f64>()).collect::<Vec<_>>()
            })
            .collect();
        let norm = chunk_sums.iter().sum::<f64>().sqrt();
        if !norm.is_finite() {
            return Err(Error::training(format!(
                "gradient norm is {norm}: refusing to update (NaN or infinite loss?)"
            )));
        }
        let c = self.config;
        let clip =
            if c.grad_clip > 0.0 && norm > c.grad_clip as f64 { (c.grad_clip as f64 / norm) as f32 } else { 1.0 };
        self.step += 1;
        let lr = c.lr_at(self.step);
        let t = self.step as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        for i in 0..params.len() {
            if self.frozen(i) {
                continue;
            }
            let wd = if decay[i] { lr * c.weight_decay } else { 0.0 };
            params[i]
                .par_chunks_mut(CHUNK)
                .zip(grads[i].par_chunks(CHUNK))
                .zip(self.m[i].par_chunks_mut(CHUNK).zip(self.v[i].par_chunks_mut(CHUNK)))
                .for_each(|((ps, gs), (ms, vs))| {
                    for (((p, &g), m), v) in ps.iter_mut().zip(gs).zip(ms).zip(vs) {
                        let g = g * clip;
                        *m = c.beta1 * *m + (1.0 - c.beta1) * g;
                        *v = c.beta2 * *v + (1.0 - c.beta2) * g * g;
                        *p -= wd * *p + lr * (*m / bc1) / ((*v / bc2).sqrt() + c.eps);
                    }
                });
        }
        Ok(StepReport { lr, grad_norm: norm })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AdamWConfig {
        AdamWConfig {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            grad_clip: 0.0,
            schedule: Schedule::Constant,
            warmup_steps: 0,
            total_steps: 10,
        }
    }

    /// Two steps written out by hand from the AdamW paper's algorithm (decoupled decay).
    #[test]
    fn matches_hand_computed_steps() {
        let mut opt = AdamW::new(config(), &[2]);
        let mut p = [1.0f32, -2.0];
        let g1: [&[f32]; 1] = [&[0.5, -0.25]];
        opt.step(&mut [&mut p[..]], &g1, &[true]).unwrap();
        // Step 1: m̂ = g, v̂ = g², update = lr·g/|g| = ±0.1; decay 0.1·0.01·w.
        let want1 = [1.0 - 0.001 * 1.0 - 0.1, -2.0 + 0.001 * 2.0 + 0.1];
        for (a, b) in p.iter().zip(want1) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        let g2: [&[f32]; 1] = [&[-0.5, 0.0]];
        opt.step(&mut [&mut p[..]], &g2, &[true]).unwrap();
        let (b1, b2) = (0.9f64, 0.999f64);
        let want2: Vec<f64> = (0..2)
            .map(|i| {
                let (ga, gb) = ([0.5, -0.25][i], [-0.5, 0.0][i]);
                let m = b1 * (1.0 - b1) * ga + (1.0 - b1) * gb;
                let v = b2 * (1.0 - b2) * ga * ga + (1.0 - b2) * gb * gb;
                let (mh, vh) = (m / (1.0 - b1 * b1), v / (1.0 - b2 * b2));
                let w = want1[i] as f64;
                w - 0.1 * 0.01 * w - 0.1 * mh / (vh.sqrt() + 1e-8)
            })
            .collect();
        for (a, b) in p.iter().zip(&want2) {
            assert!((*a as f64 - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn clipping_and_schedules() {
        let mut c = config();
        c.grad_clip = 1.0;
        c.weight_decay = 0.0;
        let mut opt = AdamW::new(c, &[1]);
        let mut p = [0.0f32];
        let r = opt.step(&mut [&mut p[..]], &[&[30.0]], &[false]).unwrap();
        assert_eq!(r.grad_norm, 30.0);
        assert!(opt.step(&mut [&mut p[..]], &[&[f32::NAN]], &[false]).is_err());
        assert_eq!(opt.step, 1, "a refused step does not count");
        c.warmup_steps = 2;
        c.schedule = Schedule::Cosine;
        assert_eq!(c.lr_at(1), 0.05);
        assert_eq!(c.lr_at(2), 0.1);
        assert!((c.lr_at(6) - 0.05).abs() < 1e-6, "half way through the cosine");
        assert!(c.lr_at(10).abs() < 1e-9);
        c.schedule = Schedule::Linear;
        assert!((c.lr_at(6) - 0.05).abs() < 1e-6);
    }

    #[test]
    fn a_frozen_parameter_stays_and_leaves_the_norm() {
        let mut opt = AdamW::new(config(), &[0, 1]);
        let (mut frozen, mut trained) = ([1.0f32, 2.0], [1.0f32]);
        let r = opt.step(&mut [&mut frozen[..], &mut trained[..]], &[&[300.0, 400.0], &[0.5]], &[true, true]).unwrap();
        assert_eq!(r.grad_norm, 0.5, "the frozen gradient is not clipped against");
        assert_eq!(frozen, [1.0, 2.0]);
        assert!((trained[0] - (1.0 - 0.001 - 0.1)).abs() < 1e-6, "{}", trained[0]);
        assert!(opt.step(&mut [&mut frozen[..], &mut trained[..]], &[&[1.0], &[0.5]], &[true, true]).is_err());
    }
}
