//! What every training method shares: the model, the optimiser, gradient accumulation
//! and the update of the model's weights. Where the weights are f32 in host memory (the
//! CPU backend), AdamW updates them in place: the weights are the masters. Where they
//! live on a device (GPU backends), AdamW runs on the host over f32 master copies and
//! each update uploads the new weights (docs/training.md).

use crate::engine::{Backend, DType, HostData};
use crate::error::{Error, Result};
use crate::models::train::Gradients;
use crate::models::LoadedModel;
use rayon::prelude::*;

use super::optim::{AdamW, StepReport};

/// A model with its optimiser: gradients for an update and AdamW applied to its weights.
pub struct Trainable<'a, B: Backend> {
    /// The model being trained (f32 weights).
    pub lm: &'a mut LoadedModel<B>,
    /// The optimiser: moments per parameter (none for frozen ones) and the update count.
    pub opt: AdamW,
    /// Weight decay applies to matrices only, not to norms and biases.
    decay: Vec<bool>,
    /// The gradient set of the last update, zeroed in place for the next one: a fresh
    /// set would cost the kernel a page fault and a page clear per 4 KiB every update.
    spare: Option<Gradients<B>>,
    /// Host f32 masters of device-resident weights (empty for frozen ones); None when
    /// the weights are updated in place in host memory.
    masters: Option<Vec<Vec<f32>>>,
}

impl<'a, B: Backend> Trainable<'a, B> {
    /// Prepare `lm` for training with `opt`, copying device-resident weights to host f32 masters.
    /// Refuses an optimiser that does not match the model's parameters, and weights that are not f32.
    pub fn new(backend: &B, lm: &'a mut LoadedModel<B>, opt: AdamW) -> Result<Self> {
        let params = lm.model.named_parameters();
        // Empty moments mark a frozen parameter.
        if params.len() != opt.m.len()
            || params.iter().zip(&opt.m).any(|((_, t), m)| !m.is_empty() && t.len() != m.len())
        {
            return Err(Error::training(format!(
                "optimizer state does not match the model's {} parameters",
                params.len()
            )));
        }
        let decay = params.iter().map(|(_, t)| t.shape().len() == 2).collect();
        if let Some((name, t)) = params.iter().find(|(_, t)| t.dtype() != DType::F32) {
            return Err(Error::training(format!(
                "training needs f32 weights (load the model in f32); {name} is {}",
                t.dtype()
            )));
        }
        drop(params);
        let masters = if lm.model.parameters_mut().into_iter().all(|t| backend.host_f32_mut(t).is_some()) {
            None
        } else {
            let params = lm.model.named_parameters();
            let copy = |(t, m): (&crate::engine::Tensor<B>, &Vec<f32>)| -> Result<Vec<f32>> {
                Ok(if m.is_empty() { Vec::new() } else { backend.to_host_f32(t)? })
            };
            Some(params.iter().map(|(_, t)| *t).zip(&opt.m).map(copy).collect::<Result<Vec<_>>>()?)
        };
        Ok(Trainable { lm, opt, decay, spare: None, masters })
    }

    /// Zero gradients for one update; each sequence's backward adds into them.
    pub fn zero_grads(&mut self, backend: &B) -> Result<Gradients<B>> {
        let Some(mut grads) = self.spare.take() else { return Ok(self.lm.model.zero_gradients(backend)?) };
        for t in &mut grads.tensors {
            let g = backend.host_f32_mut(t).expect("spare gradients are kept for host weights only");
            g.par_chunks_mut(1 << 16).for_each(|c| c.fill(0.0));
        }
        Ok(grads)
    }

    /// One optimiser update of the model's weights with `grads`.
    pub fn apply(&mut self, backend: &B, mut grads: Gradients<B>) -> Result<StepReport> {
        let Some(masters) = &mut self.masters else {
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
            return report;
        };
        let frozen: Vec<bool> = self.opt.m.iter().map(Vec::is_empty).collect();
        let host_grads = grads
            .tensors
            .iter()
            .zip(&frozen)
            .map(|(g, &frozen)| if frozen { Ok(Vec::new()) } else { Ok(backend.to_host_f32(g)?) })
            .collect::<Result<Vec<_>>>()?;
        drop(grads);
        let mut params: Vec<&mut [f32]> = masters.iter_mut().map(Vec::as_mut_slice).collect();
        let host: Vec<&[f32]> = host_grads.iter().map(Vec::as_slice).collect();
        let report = self.opt.step(&mut params, &host, &self.decay)?;
        for ((t, master), frozen) in self.lm.model.parameters_mut().into_iter().zip(masters.iter()).zip(frozen) {
            if !frozen {
                *t = backend.upload(HostData::F32(master), t.shape())?;
            }
        }
        Ok(report)
    }
}
