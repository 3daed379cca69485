//! The LM head of the training objectives, run in chunks of positions so the
//! [tokens × vocabulary] logits never exist at once (at V = 151936 and 4096 tokens they
//! would be 2.5 GB): memory for the head grows with the chunk, not the sequence.
//!
//! Every objective is a function of two numbers per position, the log-probability of
//! the next token and the entropy of the next-token distribution (both at one
//! temperature): EM-FT uses the entropy, EM-RL's PPO and KL terms the log-probability and
//! its entropy bonus the entropy. The objective supplies ∂loss/∂log p and ∂loss/∂H per
//! position; the head turns them into ∂loss/∂hidden and ∂loss/∂W_head with one fused
//! kernel (`Backend::policy_grad`).

use entmin_engine::{Backend, DType, Tensor};

use crate::error::{ModelError, Result};
use crate::model::Model;
use crate::train::Activations;

/// Which positions a head pass computes, and how.
#[derive(Clone, Copy, Debug)]
pub struct HeadSpec<'a> {
    /// Positions that enter the objective; chunks with none are skipped.
    pub active: &'a [bool],
    /// 1 / temperature of the distributions.
    pub inv_temperature: f32,
    /// Vocabulary rows masked as in generation.
    pub banned: &'a [u32],
    /// Positions per chunk.
    pub chunk: usize,
}

/// log p(next token), H and the self-certainty KL(U ‖ p) of the next-token distribution
/// at each position (0 where the position is not active), from one fused pass over each
/// row of logits. The last position has no next token: its log p is 0.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TokenStats {
    pub logp: Vec<f32>,
    pub entropy: Vec<f32>,
    pub self_certainty: Vec<f32>,
}

/// The objective's upstream gradients for the positions `start..start + n`, given their
/// log-probabilities and entropies: (∂loss/∂log p, ∂loss/∂H), n values each.
pub type Upstream<'a> = dyn FnMut(usize, &[f32], &[f32]) -> Result<(Vec<f32>, Vec<f32>)> + 'a;

/// The entropy objective at the head: loss Σ_p w_p·H_p over positions with w_p ≠ 0.
pub struct HeadOutput<B: Backend> {
    pub loss: f64,
    /// H_p in nats for every position (0 where w_p = 0: not computed).
    pub entropies: Vec<f32>,
    /// ∂loss/∂hidden, `[tokens, hidden]`.
    pub d_hidden: Tensor<B>,
}

impl<B: Backend> Model<B> {
    /// Log-probabilities and entropies at the active positions, without gradients (the
    /// old-policy and reference passes of EM-RL).
    pub fn token_stats(&self, b: &B, acts: &Activations<B>, spec: HeadSpec<'_>) -> Result<TokenStats> {
        Ok(self.head_pass(b, acts, spec, None)?.0)
    }

    /// The head's forward and backward for an objective given by `upstream`: adds
    /// ∂loss/∂W_head `[vocab, hidden]` into `d_head` ([`Model::head_gradient`]) and
    /// returns the statistics and ∂loss/∂hidden `[tokens, hidden]`.
    pub fn head_backward(
        &self,
        b: &B,
        acts: &Activations<B>,
        spec: HeadSpec<'_>,
        upstream: &mut Upstream<'_>,
        d_head: &mut Tensor<B>,
    ) -> Result<(TokenStats, Tensor<B>)> {
        let (stats, d_hidden) = self.head_pass(b, acts, spec, Some((upstream, d_head)))?;
        Ok((stats, d_hidden.expect("gradients were asked for")))
    }

    /// Σ_p w_p·H(softmax(logits_p)) over the positions with w_p ≠ 0 and its gradients
    /// (EM-FT), at temperature 1; ∂loss/∂W_head is added into `d_head`.
    pub fn entropy_head(
        &self,
        b: &B,
        acts: &Activations<B>,
        weights: &[f32],
        banned: &[u32],
        chunk: usize,
        d_head: &mut Tensor<B>,
    ) -> Result<HeadOutput<B>> {
        let active: Vec<bool> = weights.iter().map(|&w| w != 0.0).collect();
        if weights.len() != acts.ids.len() {
            return Err(ModelError::Invalid(format!(
                "{} loss weights for {} positions",
                weights.len(),
                acts.ids.len()
            )));
        }
        let spec = HeadSpec { active: &active, inv_temperature: 1.0, banned, chunk };
        let mut loss = 0f64;
        let mut upstream = |start: usize, _: &[f32], entropy: &[f32]| {
            let w = &weights[start..start + entropy.len()];
            loss += w.iter().zip(entropy).map(|(&w, &h)| w as f64 * h as f64).sum::<f64>();
            Ok((vec![0.0; w.len()], w.to_vec()))
        };
        let (stats, d_hidden) = self.head_backward(b, acts, spec, &mut upstream, d_head)?;
        Ok(HeadOutput { loss, entropies: stats.entropy, d_hidden })
    }

    fn head_pass(
        &self,
        b: &B,
        acts: &Activations<B>,
        spec: HeadSpec<'_>,
        mut grad: Option<(&mut Upstream<'_>, &mut Tensor<B>)>,
    ) -> Result<(TokenStats, Option<Tensor<B>>)> {
        let (tokens, hidden) = (acts.ids.len(), self.config.hidden_size);
        if spec.active.len() != tokens || spec.chunk == 0 {
            return Err(ModelError::Invalid(format!(
                "{} active flags for {tokens} positions (chunk {})",
                spec.active.len(),
                spec.chunk
            )));
        }
        let head = self.head();
        let targets: Vec<u32> = (0..tokens).map(|p| acts.ids.get(p + 1).copied().unwrap_or(0)).collect();
        let mut stats =
            TokenStats { logp: vec![0.0; tokens], entropy: vec![0.0; tokens], self_certainty: vec![0.0; tokens] };
        let mut d_rows = Vec::new();
        for start in (0..tokens).step_by(spec.chunk) {
            let end = (start + spec.chunk).min(tokens);
            let active = &spec.active[start..end];
            if !active.iter().any(|&a| a) {
                if grad.is_some() {
                    d_rows.push(b.zeros(&[end - start, hidden], DType::F32)?);
                }
                continue;
            }
            let h = b.slice_rows(&acts.hidden, start, end)?;
            let mut logits = b.linear(&h, head, None)?;
            b.mask_columns(&mut logits, spec.banned)?;
            let (lse, ent, certainty) = b.softmax_entropy_certainty(&logits, spec.inv_temperature)?;
            let logp = b.token_logprobs(&logits, &lse, &targets[start..end], spec.inv_temperature)?;
            let (logp_host, ent_host) = (b.to_host_f32(&logp)?, b.to_host_f32(&ent)?);
            let certainty_host = b.to_host_f32(&certainty)?;
            for (i, &is_active) in active.iter().enumerate() {
                if !is_active {
                    continue;
                }
                if !ent_host[i].is_finite() {
                    return Err(ModelError::Invalid(format!("entropy at position {} is {}", start + i, ent_host[i])));
                }
                stats.entropy[start + i] = ent_host[i];
                stats.logp[start + i] = logp_host[i];
                stats.self_certainty[start + i] = certainty_host[i];
            }
            let Some((upstream, d_head)) = grad.as_mut() else { continue };
            let (mut d_logp, mut d_ent) = upstream(start, &stats.logp[start..end], &stats.entropy[start..end])?;
            if d_logp.len() != end - start || d_ent.len() != end - start {
                return Err(ModelError::Invalid(format!(
                    "objective gave {} / {} upstream values for {} positions",
                    d_logp.len(),
                    d_ent.len(),
                    end - start
                )));
            }
            for (i, &is_active) in active.iter().enumerate() {
                if !is_active {
                    (d_logp[i], d_ent[i]) = (0.0, 0.0);
                }
            }
            let n = end - start;
            let (d_logp, d_ent) = (b.upload_as(&d_logp, &[n], DType::F32)?, b.upload_as(&d_ent, &[n], DType::F32)?);
            let d_logits =
                b.policy_grad(&logits, &lse, &ent, &targets[start..end], &d_logp, &d_ent, spec.inv_temperature)?;
            drop(logits);
            d_rows.push(b.linear_backward(&h, head, &d_logits, d_head, None)?);
        }
        let d_hidden = match grad {
            Some(_) => Some(b.concat_rows(&d_rows.iter().collect::<Vec<_>>())?),
            None => None,
        };
        Ok((stats, d_hidden))
    }
}
