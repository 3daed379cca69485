//! Training: a forward pass over one whole sequence that keeps what the backward pass
//! needs, and the hand-written backward pass through the decoder. Every objective only
//! supplies the gradient at the head (`train_head`).
//!
//! Activation memory (docs/training.md): by default every layer keeps its ten
//! intermediate tensors; with `recompute` a layer keeps only its input and is run
//! forward again during the backward pass (activation checkpointing: about one extra
//! forward pass of compute for ~10× less activation memory).

use entmin_engine::{AttentionShape, Backend, DType, Tensor};

use crate::error::{ModelError, Result};
use crate::layer::{self, copy, Layer, LayerActivations, Linear, LINEAR_NAMES};
use crate::model::Model;

/// One sequence's forward pass, kept for [`Model::backward`].
pub struct Activations<B: Backend> {
    pub(crate) ids: Vec<u32>,
    positions: Vec<u32>,
    /// Each layer's input (the residual stream entering it).
    inputs: Vec<Tensor<B>>,
    /// None for layers to recompute.
    layers: Vec<Option<LayerActivations<B>>>,
    x_final: Tensor<B>,
    /// The final norm's output: the head's input, `[tokens, hidden]`.
    pub hidden: Tensor<B>,
}

/// Parameter gradients, in [`Model::named_parameters`] order. The backward pass adds
/// into them, so the sequences of a batch accumulate into one set (zero it with
/// [`Model::zero_gradients`]).
pub struct Gradients<B: Backend> {
    pub tensors: Vec<Tensor<B>>,
}

/// One layer's gradients: the two norms, then each projection's (weight, bias) in
/// [`LINEAR_NAMES`] order.
struct LayerGradients<'g, B: Backend> {
    attn_norm: &'g mut Tensor<B>,
    ffn_norm: &'g mut Tensor<B>,
    linears: Vec<(&'g mut Tensor<B>, Option<&'g mut Tensor<B>>)>,
}

/// [`Gradients`] split by the part of the model each tensor belongs to; with a tied
/// head the head's gradient is the embedding's.
struct GradientParts<'g, B: Backend> {
    embed: &'g mut Tensor<B>,
    layers: Vec<LayerGradients<'g, B>>,
    norm: &'g mut Tensor<B>,
}

fn sum<B: Backend>(b: &B, mut a: Tensor<B>, c: &Tensor<B>) -> Result<Tensor<B>> {
    b.add_assign(&mut a, c)?;
    Ok(a)
}

impl<B: Backend> Model<B> {
    /// Every weight by Hugging Face name; this order is the order of [`Gradients`] and of
    /// [`Model::parameters_mut`].
    pub fn named_parameters(&self) -> Vec<(String, &Tensor<B>)> {
        let mut out: Vec<(String, &Tensor<B>)> = vec![("model.embed_tokens.weight".into(), &self.embed)];
        for (l, layer) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{l}");
            out.push((format!("{p}.input_layernorm.weight"), &layer.attn_norm));
            out.push((format!("{p}.post_attention_layernorm.weight"), &layer.ffn_norm));
            for (name, lin) in LINEAR_NAMES.iter().zip(layer.linears()) {
                out.push((format!("{p}.{name}.weight"), &lin.weight));
                if let Some(b) = &lin.bias {
                    out.push((format!("{p}.{name}.bias"), b));
                }
            }
        }
        out.push(("model.norm.weight".into(), &self.norm));
        if let Some(h) = &self.lm_head {
            out.push(("lm_head.weight".into(), h));
        }
        out
    }

    /// The weights, mutable, in [`Model::named_parameters`] order.
    pub fn parameters_mut(&mut self) -> Vec<&mut Tensor<B>> {
        let mut out = vec![&mut self.embed];
        for layer in &mut self.layers {
            let Layer { attn_norm, q, k, v, o, ffn_norm, gate, up, down } = layer;
            out.push(attn_norm);
            out.push(ffn_norm);
            for lin in [q, k, v, o, gate, up, down] {
                out.push(&mut lin.weight);
                if let Some(bias) = lin.bias.as_mut() {
                    out.push(bias);
                }
            }
        }
        out.push(&mut self.norm);
        if let Some(head) = self.lm_head.as_mut() {
            out.push(head);
        }
        out
    }

    /// Zero gradients, f32, one per parameter.
    pub fn zero_gradients(&self, b: &B) -> Result<Gradients<B>> {
        let zeros: std::result::Result<Vec<_>, _> =
            self.named_parameters().iter().map(|(_, t)| b.zeros(t.shape(), DType::F32)).collect();
        Ok(Gradients { tensors: zeros.map_err(ModelError::Engine)? })
    }

    /// The gradient the LM head's weight adds into: the embedding's when tied.
    pub fn head_gradient<'g>(&self, grads: &'g mut Gradients<B>) -> Result<&'g mut Tensor<B>> {
        let tied = self.lm_head.is_none();
        let slot = if tied { grads.tensors.first_mut() } else { grads.tensors.last_mut() };
        slot.ok_or_else(|| ModelError::Invalid("empty gradient set".into()))
    }

    fn split_gradients<'g>(&self, grads: &'g mut Gradients<B>) -> Result<GradientParts<'g, B>> {
        let count = grads.tensors.len();
        let mut it = grads.tensors.iter_mut();
        let wrong =
            || ModelError::Invalid(format!("{count} gradients for {} parameters", self.named_parameters().len()));
        let mut next = || it.next().ok_or_else(wrong);
        let embed = next()?;
        let mut layers = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let (attn_norm, ffn_norm) = (next()?, next()?);
            let mut linears = Vec::with_capacity(LINEAR_NAMES.len());
            for lin in layer.linears() {
                let weight = next()?;
                linears.push((weight, if lin.bias.is_some() { Some(next()?) } else { None }));
            }
            layers.push(LayerGradients { attn_norm, ffn_norm, linears });
        }
        let norm = next()?;
        let head_slots = usize::from(self.lm_head.is_some());
        if it.len() != head_slots {
            return Err(wrong());
        }
        Ok(GradientParts { embed, layers, norm })
    }

    fn attention_shape(&self) -> AttentionShape {
        let c = &self.config;
        AttentionShape { n_heads: c.n_heads, n_kv_heads: c.n_kv_heads, head_dim: c.head_dim, start_pos: 0 }
    }

    /// One layer forward over a whole sequence (its own cache: keys and values of every
    /// position, start 0), keeping what the backward pass needs when `keep`.
    fn layer_forward(
        &self,
        b: &B,
        layer: &Layer<B>,
        x: &mut Tensor<B>,
        positions: &[u32],
        keep: bool,
    ) -> Result<Option<LayerActivations<B>>> {
        let shape = self.attention_shape();
        let attend = |q: &Tensor<B>, k: &Tensor<B>, v: &Tensor<B>| Ok(b.attention(q, k, v, shape)?);
        layer::forward(b, &self.config, layer, x, positions, attend, keep)
    }

    /// The forward pass over `ids` (positions 0..), keeping activations for
    /// [`Model::backward`]; with `recompute` only each layer's input is kept.
    pub fn forward_train(&self, b: &B, ids: &[u32], recompute: bool) -> Result<Activations<B>> {
        let c = &self.config;
        if ids.is_empty() {
            return Err(ModelError::Invalid("forward_train called with no tokens".into()));
        }
        if ids.len() > c.context_length {
            return Err(ModelError::ContextOverflow { prompt: ids.len(), new: 0, context: c.context_length });
        }
        let positions: Vec<u32> = (0..ids.len() as u32).collect();
        let mut x = b.embedding(&self.embed, ids)?;
        let (mut inputs, mut layers) = (Vec::new(), Vec::new());
        for layer in &self.layers {
            inputs.push(copy(b, &x)?);
            layers.push(self.layer_forward(b, layer, &mut x, &positions, !recompute)?);
        }
        let hidden = b.rms_norm(&x, &self.norm, c.rms_eps)?;
        Ok(Activations { ids: ids.to_vec(), positions, inputs, layers, x_final: x, hidden })
    }

    /// Adds the gradients of every parameter but the head's (added by the head pass,
    /// `train_head`) into `grads`, given ∂loss/∂hidden. Weights must be f32 (training
    /// keeps f32 master weights).
    pub fn backward(&self, b: &B, acts: &Activations<B>, d_hidden: &Tensor<B>, grads: &mut Gradients<B>) -> Result<()> {
        let c = &self.config;
        let parts = self.split_gradients(grads)?;
        let mut dx = b.rms_norm_backward(&acts.x_final, &self.norm, d_hidden, c.rms_eps, parts.norm)?;
        for ((l, layer), g) in self.layers.iter().enumerate().zip(parts.layers).rev() {
            let recomputed;
            let a = match &acts.layers[l] {
                Some(a) => a,
                None => {
                    let mut x = copy(b, &acts.inputs[l])?;
                    recomputed = self.layer_forward(b, layer, &mut x, &acts.positions, true)?;
                    recomputed.as_ref().expect("kept when asked")
                }
            };
            dx = self.layer_backward(b, layer, &acts.inputs[l], a, &acts.positions, &dx, g)?;
        }
        b.embedding_backward(&acts.ids, &dx, parts.embed)?;
        Ok(())
    }

    /// One layer backward: adds the layer's gradients into `g` and returns ∂loss/∂input.
    #[allow(clippy::too_many_arguments)]
    fn layer_backward(
        &self,
        b: &B,
        layer: &Layer<B>,
        x_in: &Tensor<B>,
        a: &LayerActivations<B>,
        positions: &[u32],
        d_out: &Tensor<B>,
        g: LayerGradients<'_, B>,
    ) -> Result<Tensor<B>> {
        let c = &self.config;
        let LayerGradients { attn_norm, ffn_norm, linears } = g;
        let Ok::<[_; 7], _>([gq, gk, gv, go, g_gate, g_up, g_down]) = linears.try_into() else {
            return Err(ModelError::Invalid("a layer has seven projections".into()));
        };
        let back =
            |x: &Tensor<B>, lin: &Linear<B>, dy: &Tensor<B>, (dw, db): (&mut Tensor<B>, Option<&mut Tensor<B>>)| {
                b.linear_backward(x, &lin.weight, dy, dw, db)
            };
        // x_out = x_mid + down(mlp): the residual passes d_out straight to x_mid.
        let d_mlp = back(&a.mlp, &layer.down, d_out, g_down)?;
        let (d_gate_out, d_up_out) = b.silu_mul_backward(&a.gate, &a.up, &d_mlp)?;
        let dh_ffn =
            sum(b, back(&a.h_ffn, &layer.gate, &d_gate_out, g_gate)?, &back(&a.h_ffn, &layer.up, &d_up_out, g_up)?)?;
        let dx_norm = b.rms_norm_backward(&a.x_mid, &layer.ffn_norm, &dh_ffn, c.rms_eps, ffn_norm)?;
        let d_mid = sum(b, dx_norm, d_out)?;
        // x_mid = x_in + o(attn).
        let d_attn = back(&a.attn, &layer.o, &d_mid, go)?;
        let (mut dq, mut dk, dv) = b.attention_backward(&a.q, &a.k, &a.v, &d_attn, self.attention_shape())?;
        b.rope_backward(&mut dq, c.head_dim, positions, c.rope_theta)?;
        b.rope_backward(&mut dk, c.head_dim, positions, c.rope_theta)?;
        let mut dh_attn = back(&a.h_attn, &layer.q, &dq, gq)?;
        b.add_assign(&mut dh_attn, &back(&a.h_attn, &layer.k, &dk, gk)?)?;
        b.add_assign(&mut dh_attn, &back(&a.h_attn, &layer.v, &dv, gv)?)?;
        let dx_attn_norm = b.rms_norm_backward(x_in, &layer.attn_norm, &dh_attn, c.rms_eps, attn_norm)?;
        sum(b, dx_attn_norm, &d_mid)
    }
}
