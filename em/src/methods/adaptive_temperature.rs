//! The adaptive-temperature baseline (PAPER.md, Algorithm 1): per token, find by
//! bisection the temperature τ ∈ [τ_min, τ_max] whose distribution has entropy
//! max(δ, α·H(z)) (within `tolerance`), then sample from z/τ.

use entmin_engine::{Backend, Rng, SampleOutcome, SamplingParams, Tensor};
use entmin_models::{Result, TokenPicker};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdaptiveTemperatureParams {
    /// α: target entropy as a fraction of the model's (paper: 0.4–0.6 work best).
    pub ratio: f32,
    /// δ: the target never goes below this.
    pub threshold: f32,
    pub tau_min: f32,
    pub tau_max: f32,
    pub tolerance: f32,
    pub max_iterations: u32,
}

impl Default for AdaptiveTemperatureParams {
    fn default() -> Self {
        AdaptiveTemperatureParams {
            ratio: 0.5,
            threshold: 0.3,
            tau_min: 0.01,
            tau_max: 1.0,
            tolerance: 0.1,
            max_iterations: 100,
        }
    }
}

pub struct AdaptiveTemperature {
    pub params: AdaptiveTemperatureParams,
    /// top-k / top-p / min-p still apply; the temperature is replaced by τ.
    pub sampling: SamplingParams,
    /// Sum of chosen τ and positions, for reporting the mean temperature.
    pub tau_sum: f64,
    pub positions: u64,
}

impl AdaptiveTemperature {
    pub fn new(params: AdaptiveTemperatureParams, sampling: SamplingParams) -> Self {
        AdaptiveTemperature { params, sampling, tau_sum: 0.0, positions: 0 }
    }

    /// τ for one row, by bisection on H(softmax(z/τ)), which grows with τ.
    pub fn temperature<B: Backend>(&self, backend: &B, row: &Tensor<B>) -> Result<f32> {
        let p = &self.params;
        let entropy_at = |tau: f32| -> Result<f32> {
            let (_, h) = backend.softmax_entropy(row, 1.0 / tau)?;
            Ok(backend.to_host_f32(&h)?[0])
        };
        let target = p.threshold.max(p.ratio * entropy_at(1.0)?);
        let (mut lo, mut hi) = (p.tau_min, p.tau_max);
        let mut tau = 0.5 * (lo + hi);
        for _ in 0..p.max_iterations {
            tau = 0.5 * (lo + hi);
            let h = entropy_at(tau)?;
            if (h - target).abs() < p.tolerance {
                break;
            }
            if h > target {
                hi = tau;
            } else {
                lo = tau;
            }
        }
        Ok(tau)
    }
}

impl<B: Backend> TokenPicker<B> for AdaptiveTemperature {
    fn pick(&mut self, backend: &B, logits: &Tensor<B>, rngs: &mut [Rng]) -> Result<Vec<SampleOutcome>> {
        let mut out = Vec::with_capacity(rngs.len());
        for (r, rng) in rngs.iter_mut().enumerate() {
            let row = backend.slice_rows(logits, r, r + 1)?;
            let tau = self.temperature(backend, &row)?;
            self.tau_sum += tau as f64;
            self.positions += 1;
            let sampling = SamplingParams { temperature: tau, ..self.sampling.clone() };
            out.push(backend.sample(&row, &sampling, std::slice::from_mut(rng))?[0]);
        }
        Ok(out)
    }
}
