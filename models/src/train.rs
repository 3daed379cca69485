//! Training: a forward pass over one whole sequence that keeps what the backward pass
//! needs, and the hand-written backward pass through the decoder. Every objective only
//! supplies the gradient at the head (`train_head`).
//!
//! Activation memory (docs/training.md): by default every layer keeps its ten
//! intermediate tensors; with `recompute` a layer keeps only its input and is run
//! forward again during the backward pass (activation checkpointing: about one extra
//! forward pass of compute for ~10× less activation memory).

use entmin_engine::{AttentionShape, Backend, Tensor};

use crate::error::{ModelError, Result};
use crate::model::{Layer, Linear, Model};

/// Projection names in a layer, in [`Model::named_parameters`] order.
pub const LINEAR_NAMES: [&str; 7] = [
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
];

impl<B: Backend> Layer<B> {
    /// The projections in [`LINEAR_NAMES`] order.
    pub fn linears(&self) -> [&Linear<B>; 7] {
        [&self.q, &self.k, &self.v, &self.o, &self.gate, &self.up, &self.down]
    }
}

/// What one layer's forward produced, as its backward needs it (q and k after RoPE).
pub struct LayerActivations<B: Backend> {
    h_attn: Tensor<B>,
    q: Tensor<B>,
    k: Tensor<B>,
    v: Tensor<B>,
    attn: Tensor<B>,
    x_mid: Tensor<B>,
    h_ffn: Tensor<B>,
    gate: Tensor<B>,
    up: Tensor<B>,
    mlp: Tensor<B>,
}

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

/// Parameter gradients, in [`Model::named_parameters`] order.
pub struct Gradients<B: Backend> {
    pub tensors: Vec<Tensor<B>>,
}

fn copy<B: Backend>(b: &B, x: &Tensor<B>) -> Result<Tensor<B>> {
    Ok(b.concat_rows(&[x])?)
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

    fn attention_shape(&self) -> AttentionShape {
        let c = &self.config;
        AttentionShape { n_heads: c.n_heads, n_kv_heads: c.n_kv_heads, head_dim: c.head_dim, start_pos: 0 }
    }

    fn layer_forward(
        &self,
        b: &B,
        layer: &Layer<B>,
        x_in: &Tensor<B>,
        positions: &[u32],
    ) -> Result<(Tensor<B>, LayerActivations<B>)> {
        let c = &self.config;
        let lin = |x: &Tensor<B>, l: &Linear<B>| b.linear(x, &l.weight, l.bias.as_ref());
        let h_attn = b.rms_norm(x_in, &layer.attn_norm, c.rms_eps)?;
        let mut q = lin(&h_attn, &layer.q)?;
        let mut k = lin(&h_attn, &layer.k)?;
        let v = lin(&h_attn, &layer.v)?;
        b.rope(&mut q, c.head_dim, positions, c.rope_theta)?;
        b.rope(&mut k, c.head_dim, positions, c.rope_theta)?;
        // The sequence is its own cache: keys and values of every position, start 0.
        let attn = b.attention(&q, &k, &v, self.attention_shape())?;
        let x_mid = sum(b, copy(b, x_in)?, &lin(&attn, &layer.o)?)?;
        let h_ffn = b.rms_norm(&x_mid, &layer.ffn_norm, c.rms_eps)?;
        let gate = lin(&h_ffn, &layer.gate)?;
        let up = lin(&h_ffn, &layer.up)?;
        let mlp = b.silu_mul(&gate, &up)?;
        let x_out = sum(b, copy(b, &x_mid)?, &lin(&mlp, &layer.down)?)?;
        Ok((x_out, LayerActivations { h_attn, q, k, v, attn, x_mid, h_ffn, gate, up, mlp }))
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
            let (x_out, acts) = self.layer_forward(b, layer, &x, &positions)?;
            inputs.push(x);
            layers.push(if recompute { None } else { Some(acts) });
            x = x_out;
        }
        let hidden = b.rms_norm(&x, &self.norm, c.rms_eps)?;
        Ok(Activations { ids: ids.to_vec(), positions, inputs, layers, x_final: x, hidden })
    }

    /// Gradients of every parameter given ∂loss/∂hidden and ∂loss/∂head weight. Weights
    /// must be f32 (training keeps f32 master weights).
    pub fn backward(
        &self,
        b: &B,
        acts: &Activations<B>,
        d_hidden: &Tensor<B>,
        d_head: Tensor<B>,
    ) -> Result<Gradients<B>> {
        let c = &self.config;
        let (mut dx, d_norm) = b.rms_norm_backward(&acts.x_final, &self.norm, d_hidden, c.rms_eps)?;
        let mut per_layer = Vec::with_capacity(self.layers.len());
        for (l, layer) in self.layers.iter().enumerate().rev() {
            let recomputed;
            let a = match &acts.layers[l] {
                Some(a) => a,
                None => {
                    recomputed = self.layer_forward(b, layer, &acts.inputs[l], &acts.positions)?.1;
                    &recomputed
                }
            };
            let (d_in, grads) = self.layer_backward(b, layer, &acts.inputs[l], a, &acts.positions, &dx)?;
            per_layer.push(grads);
            dx = d_in;
        }
        let mut d_embed = b.embedding_backward(&acts.ids, &dx, c.vocab_size)?;
        let mut tensors = Vec::new();
        let tied = self.lm_head.is_none();
        if tied {
            b.add_assign(&mut d_embed, &d_head)?;
        }
        tensors.push(d_embed);
        tensors.extend(per_layer.into_iter().rev().flatten());
        tensors.push(d_norm);
        if !tied {
            tensors.push(d_head);
        }
        Ok(Gradients { tensors })
    }

    /// One layer backward: (∂loss/∂input, the layer's gradients in parameter order:
    /// the two norms, then each projection's weight and bias as in [`LINEAR_NAMES`]).
    fn layer_backward(
        &self,
        b: &B,
        layer: &Layer<B>,
        x_in: &Tensor<B>,
        a: &LayerActivations<B>,
        positions: &[u32],
        d_out: &Tensor<B>,
    ) -> Result<(Tensor<B>, Vec<Tensor<B>>)> {
        let c = &self.config;
        // x_out = x_mid + down(mlp): the residual passes d_out straight to x_mid.
        let (d_mlp, d_down, _) = b.linear_backward(&a.mlp, &layer.down.weight, d_out)?;
        let (d_gate_out, d_up_out) = b.silu_mul_backward(&a.gate, &a.up, &d_mlp)?;
        let (dh_gate, d_gate, _) = b.linear_backward(&a.h_ffn, &layer.gate.weight, &d_gate_out)?;
        let (dh_up, d_up, _) = b.linear_backward(&a.h_ffn, &layer.up.weight, &d_up_out)?;
        let dh_ffn = sum(b, dh_gate, &dh_up)?;
        let (dx_norm, d_ffn_norm) = b.rms_norm_backward(&a.x_mid, &layer.ffn_norm, &dh_ffn, c.rms_eps)?;
        let d_mid = sum(b, dx_norm, d_out)?;
        // x_mid = x_in + o(attn).
        let (d_attn, d_o, _) = b.linear_backward(&a.attn, &layer.o.weight, &d_mid)?;
        let (mut dq, mut dk, dv) = b.attention_backward(&a.q, &a.k, &a.v, &d_attn, self.attention_shape())?;
        b.rope_backward(&mut dq, c.head_dim, positions, c.rope_theta)?;
        b.rope_backward(&mut dk, c.head_dim, positions, c.rope_theta)?;
        let mut qkv = Vec::new();
        let mut dh_attn: Option<Tensor<B>> = None;
        for (lin, d) in [(&layer.q, &dq), (&layer.k, &dk), (&layer.v, &dv)] {
            let (dh, dw, db) = b.linear_backward(&a.h_attn, &lin.weight, d)?;
            dh_attn = Some(match dh_attn {
                Some(acc) => sum(b, acc, &dh)?,
                None => dh,
            });
            qkv.push(dw);
            if lin.bias.is_some() {
                qkv.push(db);
            }
        }
        let dh_attn = dh_attn.expect("three projections");
        let (dx_attn_norm, d_attn_norm) = b.rms_norm_backward(x_in, &layer.attn_norm, &dh_attn, c.rms_eps)?;
        let d_in = sum(b, dx_attn_norm, &d_mid)?;
        let mut ordered = vec![d_attn_norm, d_ffn_norm];
        ordered.extend(qkv);
        ordered.extend([d_o, d_gate, d_up, d_down]);
        Ok((d_in, ordered))
    }
}
