//! What every training method shares: the model, the optimiser, gradient accumulation
//! and the update of the model's weights. AdamW updates the model's f32 weights in place
//! (no master copy: the weights are the masters), which needs a backend that keeps
//! them in host memory — the CPU backend, the only one with backward ops so far.

use crate::engine::Backend;
use crate::models::train::Gradients;
use crate::models::LoadedModel;
use anyhow::{bail, Result};
use rayon::prelude::*;

use super::optim::{AdamW, StepReport};

pub struct Trainable<'a, B: Backend> {
    pub lm: &'a mut LoadedModel<B>,
    pub opt: AdamW,
    /// Weight decay applies to matrices only, not to norms and biases.
    decay: Vec<bool>,
    /// The gradient set of the last update, zeroed in place for the next one: a fresh
    /// set would cost the kernel a page fault and a page clear per 4 KiB every update.
    spare: Option<Gradients<B>>,
}

impl<'a, B: Backend> Trainable<'a, B> {
    pub fn new(backend: &B, lm: &'a mut LoadedModel<B>, opt: AdamW) -> Result<Self> {
        let params = lm.model.named_parameters();
        // Empty moments mark a frozen parameter.
        if params.len() != opt.m.len()
            || params.iter().zip(&opt.m).any(|((_, t), m)| !m.is_empty() && t.len() != m.len())
        {
            bail!("optimizer state does not match the model's {} parameters", params.len());
        }
        let decay = params.iter().map(|(_, t)| t.shape().len() == 2).collect();
        if let Some(i) = lm.model.parameters_mut().into_iter().position(|t| backend.host_f32_mut(t).is_none()) {
            let name = &lm.model.named_parameters()[i].0;
            bail!("training needs f32 weights in host memory (load in f32 on the CPU backend); {name} is not");
        }
        Ok(Trainable { lm, opt, decay, spare: None })
    }

    /// Zero gradients for one update; each sequence's backward adds into them.
    pub fn zero_grads(&mut self, backend: &B) -> Result<Gradients<B>> {
        let Some(mut grads) = self.spare.take() else { return Ok(self.lm.model.zero_gradients(backend)?) };
        for t in &mut grads.tensors {
            let g = backend.host_f32_mut(t).expect("gradients are f32 host tensors like the weights");
            g.par_chunks_mut(1 << 16).for_each(|c| c.fill(0.0));
        }
        Ok(grads)
    }

    /// One optimiser update of the model's weights with `grads`.
    pub fn apply(&mut self, backend: &B, mut grads: Gradients<B>) -> Result<StepReport> {
        let mut params: Vec<&mut [f32]> = self
            .lm
            .model
            .parameters_mut()
            .into_iter()
            .map(|t| backend.host_f32_mut(t).expect("host f32 weights, checked in new"))
            .collect();
        let host: Vec<&[f32]> = grads
            .tensors
            .iter_mut()
            .map(|t| &*backend.host_f32_mut(t).expect("gradients are f32 host tensors like the weights"))
            .collect();
        let report = self.opt.step(&mut params, &host, &self.decay);
        self.spare = Some(grads);
        report
    }
}
