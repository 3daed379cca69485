//! EM-INF: before each token, a few Adam steps on the logits lower the entropy of
//! the next-token distribution (the fused `Backend::em_inf` op), then the usual
//! temperature / top-k / top-p sampling draws from the optimised logits.

use entmin_engine::{Backend, EmInfParams, Rng, SampleOutcome, SamplingParams, Tensor};
use entmin_models::{Result, TokenPicker};

pub struct EmInf {
    pub params: EmInfParams,
    pub sampling: SamplingParams,
    /// Positions seen, Adam steps taken, and positions that needed at least one step.
    pub positions: u64,
    pub steps: u64,
    pub optimised_positions: u64,
}

impl EmInf {
    pub fn new(params: EmInfParams, sampling: SamplingParams) -> Self {
        EmInf { params, sampling, positions: 0, steps: 0, optimised_positions: 0 }
    }
}

impl<B: Backend> TokenPicker<B> for EmInf {
    fn pick(&mut self, backend: &B, logits: &Tensor<B>, rngs: &mut [Rng]) -> Result<Vec<SampleOutcome>> {
        let (optimised, stats) = backend.em_inf(logits, &self.params)?;
        for s in &stats {
            self.positions += 1;
            self.steps += s.steps as u64;
            self.optimised_positions += (s.steps > 0) as u64;
        }
        Ok(backend.sample(&optimised, &self.sampling, rngs)?)
    }
}
