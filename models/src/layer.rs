//! One decoder layer (pre-norm attention then a SwiGLU MLP, each added to the residual
//! stream), written once for inference and training. The two differ only in where
//! attention reads keys and values (a KV cache per sequence, or the sequence itself)
//! and in whether the intermediate tensors are kept for the backward pass; both are
//! parameters here, so inference does not pay for what training keeps.

use entmin_engine::{Backend, Tensor};

use crate::config::ModelConfig;
use crate::error::Result;

/// A projection `y = x·Wᵀ + b`.
pub struct Linear<B: Backend> {
    pub weight: Tensor<B>,
    pub bias: Option<Tensor<B>>,
}

/// One decoder layer's weights.
pub struct Layer<B: Backend> {
    pub attn_norm: Tensor<B>,
    pub q: Linear<B>,
    pub k: Linear<B>,
    pub v: Linear<B>,
    pub o: Linear<B>,
    pub ffn_norm: Tensor<B>,
    pub gate: Linear<B>,
    pub up: Linear<B>,
    pub down: Linear<B>,
}

/// Projection names in a layer, in [`Layer::linears`] order (Hugging Face names).
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
    pub(crate) h_attn: Tensor<B>,
    pub(crate) q: Tensor<B>,
    pub(crate) k: Tensor<B>,
    pub(crate) v: Tensor<B>,
    pub(crate) attn: Tensor<B>,
    pub(crate) x_mid: Tensor<B>,
    pub(crate) h_ffn: Tensor<B>,
    pub(crate) gate: Tensor<B>,
    pub(crate) up: Tensor<B>,
    pub(crate) mlp: Tensor<B>,
}

pub(crate) fn linear<B: Backend>(b: &B, x: &Tensor<B>, l: &Linear<B>) -> Result<Tensor<B>> {
    Ok(b.linear(x, &l.weight, l.bias.as_ref())?)
}

/// A copy of `x` (the backward pass needs tensors the residual stream overwrites).
pub(crate) fn copy<B: Backend>(b: &B, x: &Tensor<B>) -> Result<Tensor<B>> {
    Ok(b.concat_rows(&[x])?)
}

/// Runs `layer` on the residual stream `x` (`[tokens, hidden]`, tokens at `positions`)
/// in place. `attend(q, k, v)` returns attention's output for q and k after RoPE: it
/// decides which keys and values each query sees. With `keep` the intermediate tensors
/// come back for the backward pass; without, they are dropped as soon as they are used.
pub(crate) fn forward<B: Backend>(
    b: &B,
    c: &ModelConfig,
    layer: &Layer<B>,
    x: &mut Tensor<B>,
    positions: &[u32],
    mut attend: impl FnMut(&Tensor<B>, &Tensor<B>, &Tensor<B>) -> Result<Tensor<B>>,
    keep: bool,
) -> Result<Option<LayerActivations<B>>> {
    let h_attn = b.rms_norm(x, &layer.attn_norm, c.rms_eps)?;
    let mut q = linear(b, &h_attn, &layer.q)?;
    let mut k = linear(b, &h_attn, &layer.k)?;
    let v = linear(b, &h_attn, &layer.v)?;
    b.rope(&mut q, c.head_dim, positions, c.rope_theta)?;
    b.rope(&mut k, c.head_dim, positions, c.rope_theta)?;
    let attn = attend(&q, &k, &v)?;
    b.add_assign(x, &linear(b, &attn, &layer.o)?)?;
    let x_mid = if keep { Some(copy(b, x)?) } else { None };
    let h_ffn = b.rms_norm(x, &layer.ffn_norm, c.rms_eps)?;
    let gate = linear(b, &h_ffn, &layer.gate)?;
    let up = linear(b, &h_ffn, &layer.up)?;
    let mlp = b.silu_mul(&gate, &up)?;
    b.add_assign(x, &linear(b, &mlp, &layer.down)?)?;
    Ok(x_mid.map(|x_mid| LayerActivations { h_attn, q, k, v, attn, x_mid, h_ffn, gate, up, mlp }))
}
