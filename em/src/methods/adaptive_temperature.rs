//! The adaptive-temperature baseline (docs/methods.md, "Adaptive temperature"): per token, find by
//! bisection the temperature τ ∈ [τ_min, τ_max] whose distribution has entropy
//! max(δ, α·H(z)) (within `tolerance`), then sample from z/τ.

use entmin_engine::{Backend, Rng, SamplingParams, Tensor};
use entmin_models::generate::sample_with_entropy;
use entmin_models::{Pick, Result, SeenFn, TokenPicker};

/// Settings of the adaptive-temperature baseline (docs/methods.md, "Adaptive temperature").
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdaptiveTemperatureParams {
    /// α: target entropy as a fraction of the model's (paper: 0.4–0.6 work best).
    pub ratio: f32,
    /// δ: the target never goes below this.
    pub threshold: f32,
    /// τ_min: the lowest temperature the bisection tries (> 0).
    pub tau_min: f32,
    /// τ_max: the highest temperature the bisection tries (above `tau_min`).
    pub tau_max: f32,
    /// The bisection stops once the entropy is within this much of the target (nats).
    pub tolerance: f32,
    /// At most this many bisection rounds; the last τ is used.
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

/// The adaptive-temperature [`TokenPicker`]: per row, finds τ and samples from z/τ.
pub struct AdaptiveTemperature {
    /// How the temperature is searched for.
    pub params: AdaptiveTemperatureParams,
    /// top-k / top-p / min-p still apply; the temperature is replaced by τ.
    pub sampling: SamplingParams,
}

impl AdaptiveTemperature {
    /// A picker with these settings; `sampling`'s temperature is ignored.
    pub fn new(params: AdaptiveTemperatureParams, sampling: SamplingParams) -> Self {
        AdaptiveTemperature { params, sampling }
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
    fn pick_observed(
        &mut self,
        backend: &B,
        logits: &Tensor<B>,
        rngs: &mut [Rng],
        seen: &mut SeenFn<'_, B>,
    ) -> Result<Vec<Pick>> {
        let mut out = Vec::with_capacity(rngs.len());
        for (r, rng) in rngs.iter_mut().enumerate() {
            let row = backend.slice_rows(logits, r, r + 1)?;
            let tau = self.temperature(backend, &row)?;
            seen(r, &row, tau)?;
            let sampling = SamplingParams { temperature: tau, ..self.sampling.clone() };
            out.push(sample_with_entropy(backend, &row, &sampling, std::slice::from_mut(rng), None)?[0]);
        }
        Ok(out)
    }
}
