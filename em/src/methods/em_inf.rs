//! EM-INF: before each token, a few Adam steps on the logits lower the entropy of
//! the next-token distribution (the fused `Backend::em_inf` op), then the usual
//! temperature / top-k / top-p sampling draws from the optimised logits. What the loop
//! did to each row travels with the pick ([`Pick::em_inf`]).

use entmin_engine::{Backend, EmInfParams, Rng, SamplingParams, Tensor};
use entmin_models::generate::sample_with_entropy;
use entmin_models::{Pick, Result, SeenFn, TokenPicker};

/// The EM-INF token picker.
pub struct EmInf {
    /// The optimisation (threshold, learning rate, steps, KL weight, Adam constants).
    pub params: EmInfParams,
    /// How the token is drawn from the optimised logits.
    pub sampling: SamplingParams,
}

impl EmInf {
    /// EM-INF with `params`, drawing with `sampling`.
    pub fn new(params: EmInfParams, sampling: SamplingParams) -> Self {
        EmInf { params, sampling }
    }
}

impl<B: Backend> TokenPicker<B> for EmInf {
    fn pick_observed(
        &mut self,
        backend: &B,
        logits: &Tensor<B>,
        rngs: &mut [Rng],
        seen: &mut SeenFn<'_, B>,
    ) -> Result<Vec<Pick>> {
        let (optimised, stats) = backend.em_inf(logits, &self.params)?;
        seen(0, &optimised, self.sampling.effective_temperature())?;
        sample_with_entropy(backend, &optimised, &self.sampling, rngs, Some(&stats))
    }
}
