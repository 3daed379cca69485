//! What every training method shares: the model, f32 master weights on the host beside
//! it, the optimiser, gradient accumulation and the update that writes the new weights
//! back into the model.

use crate::engine::{Backend, HostData};
use crate::models::train::Gradients;
use crate::models::LoadedModel;
use anyhow::{bail, Result};
use rayon::prelude::*;

use super::optim::{AdamW, StepReport};

pub struct Trainable<'a, B: Backend> {
    pub lm: &'a mut LoadedModel<B>,
    pub opt: AdamW,
    masters: Vec<Vec<f32>>,
    /// Weight decay applies to matrices only, not to norms and biases.
    decay: Vec<bool>,
}

impl<'a, B: Backend> Trainable<'a, B> {
    pub fn new(backend: &B, lm: &'a mut LoadedModel<B>, opt: AdamW) -> Result<Self> {
        let params = lm.model.named_parameters();
        let masters = params.iter().map(|(_, t)| backend.to_host_f32(t)).collect::<Result<Vec<_>, _>>()?;
        if masters.len() != opt.m.len() || masters.iter().zip(&opt.m).any(|(a, b)| a.len() != b.len()) {
            bail!("optimizer state does not match the model's {} parameters", masters.len());
        }
        let decay = params.iter().map(|(_, t)| t.shape().len() == 2).collect();
        Ok(Trainable { lm, opt, masters, decay })
    }

    /// Zeroed gradient accumulators, one per parameter.
    pub fn zero_grads(&self) -> Vec<Vec<f32>> {
        self.masters.iter().map(|m| vec![0.0; m.len()]).collect()
    }

    /// Add one sequence's gradients into the accumulators.
    pub fn accumulate(backend: &B, acc: &mut [Vec<f32>], grads: &Gradients<B>) -> Result<()> {
        for (acc, t) in acc.iter_mut().zip(&grads.tensors) {
            let g = backend.to_host_f32(t)?;
            acc.par_iter_mut().zip(g.par_iter()).with_min_len(1 << 16).for_each(|(a, g)| *a += g);
        }
        Ok(())
    }

    /// One optimiser update of the masters with `grads`, then the model's weights replaced.
    pub fn apply(&mut self, backend: &B, grads: &[Vec<f32>]) -> Result<StepReport> {
        let report = self.opt.step(&mut self.masters, grads, &self.decay)?;
        let shapes: Vec<Vec<usize>> =
            self.lm.model.named_parameters().iter().map(|(_, t)| t.shape().to_vec()).collect();
        for ((param, master), shape) in self.lm.model.parameters_mut().into_iter().zip(&self.masters).zip(&shapes) {
            *param = backend.upload(HostData::F32(master), shape)?;
        }
        Ok(report)
    }
}
