use crate::{DType, EmInfParams, EmInfRowStats, HostData, HostVec, Result, Rng, SampleOutcome, SamplingParams, Tensor};

/// What a backend can do, queried at run time rather than assumed.
#[derive(Clone, Debug)]
pub struct Capabilities {
    /// Human-readable device name (CPU model, adapter name, GPU name).
    pub device: String,
    /// Storage dtypes the backend accepts for weights.
    pub weight_dtypes: Vec<DType>,
    /// Subgroup / warp / SIMD width used by reductions, if any.
    pub simd_width: Option<u32>,
    /// Largest single buffer the backend can allocate, in bytes.
    pub max_buffer_bytes: u64,
    /// Worker threads (CPU) or compute units (GPU).
    pub parallelism: usize,
}

/// Geometry of one attention call: `q` holds `tokens` rows of `n_heads * head_dim`;
/// query row `i` sits at position `start_pos + i` and attends causally to cache rows
/// `0..=start_pos + i`.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub start_pos: usize,
}

/// One method per op. Activations are f32 tensors of shape `[rows, cols]`; weights
/// may be any [`DType`] the backend lists in [`Capabilities::weight_dtypes`].
/// Every op has an f64 reference in [`crate::reference`] and a parity test.
pub trait Backend: Send + Sync + Sized + 'static {
    type Storage: Send + Sync;

    fn name(&self) -> &'static str;
    fn capabilities(&self) -> Capabilities;
    /// Wait until all work recorded so far has run (GPU backends queue work; timing
    /// code calls this before reading the clock).
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
    /// Run `f`, wait for its work, and return the device time of its kernels when the
    /// backend can measure it (GPU timestamp queries); None means "use a wall clock".
    fn timed<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<(T, Option<std::time::Duration>)> {
        let out = f()?;
        self.synchronize()?;
        Ok((out, None))
    }

    // --- memory ---
    fn upload(&self, data: HostData<'_>, shape: &[usize]) -> Result<Tensor<Self>>;
    /// Upload `data`, converted to `dtype` on the way (e.g. f32 weights stored as bf16).
    fn upload_as(&self, data: &[f32], shape: &[usize], dtype: DType) -> Result<Tensor<Self>>;
    /// Upload data the caller no longer needs (the CPU backend keeps it without copying).
    fn upload_owned(&self, data: HostVec, shape: &[usize]) -> Result<Tensor<Self>>;
    fn zeros(&self, shape: &[usize], dtype: DType) -> Result<Tensor<Self>>;
    fn to_host_f32(&self, t: &Tensor<Self>) -> Result<Vec<f32>>;
    /// The tensor's values, consuming it: without a copy where the backend can hand its
    /// storage over (the CPU backend's f32 tensors).
    fn take_host_f32(&self, t: Tensor<Self>) -> Result<Vec<f32>> {
        self.to_host_f32(&t)
    }
    /// The tensor's f32 values in place, where they live in host memory (the CPU backend's
    /// f32 tensors); None otherwise. Lets the optimiser update weights without copies.
    fn host_f32_mut<'t>(&self, t: &'t mut Tensor<Self>) -> Option<&'t mut [f32]> {
        let _ = t;
        None
    }
    /// Rows `start..end` of a 2-D tensor, as a new tensor.
    fn slice_rows(&self, x: &Tensor<Self>, start: usize, end: usize) -> Result<Tensor<Self>>;

    /// Stack 2-D tensors with the same number of columns.
    fn concat_rows(&self, parts: &[&Tensor<Self>]) -> Result<Tensor<Self>>;
    /// Set columns `ids` of every row to −inf (tokens that must never be chosen).
    fn mask_columns(&self, x: &mut Tensor<Self>, ids: &[u32]) -> Result<()>;

    // --- forward ops ---
    /// Gather rows of `table [vocab, dim]` for `ids`: `[ids.len(), dim]` f32.
    fn embedding(&self, table: &Tensor<Self>, ids: &[u32]) -> Result<Tensor<Self>>;
    /// `x / rms(x) * weight` per row.
    fn rms_norm(&self, x: &Tensor<Self>, weight: &Tensor<Self>, eps: f32) -> Result<Tensor<Self>>;
    /// `x [m, k] · wᵀ` with `w [n, k]`, plus `bias [n]`.
    fn linear(&self, x: &Tensor<Self>, w: &Tensor<Self>, bias: Option<&Tensor<Self>>) -> Result<Tensor<Self>>;
    /// Rotary embedding in place, Hugging Face rotate-half layout: `x [tokens, heads * head_dim]`,
    /// row `i` rotated for position `positions[i]`.
    fn rope(&self, x: &mut Tensor<Self>, head_dim: usize, positions: &[u32], theta: f32) -> Result<()>;
    /// Copy `x [t, dim]` into rows `start_pos..start_pos + t` of `cache [capacity, dim]`.
    fn write_kv(&self, cache: &mut Tensor<Self>, x: &Tensor<Self>, start_pos: usize) -> Result<()>;
    /// Causal grouped-query attention of `q` over the cached keys and values.
    fn attention(
        &self,
        q: &Tensor<Self>,
        k_cache: &Tensor<Self>,
        v_cache: &Tensor<Self>,
        shape: AttentionShape,
    ) -> Result<Tensor<Self>>;
    /// `silu(gate) * up`, elementwise.
    fn silu_mul(&self, gate: &Tensor<Self>, up: &Tensor<Self>) -> Result<Tensor<Self>>;
    /// `x += y`, elementwise.
    fn add_assign(&self, x: &mut Tensor<Self>, y: &Tensor<Self>) -> Result<()>;

    // --- entropy-minimisation kernels ---
    /// One pass per row of `logits [rows, V]` at temperature `1 / inv_temperature`:
    /// returns `(lse [rows], entropy [rows])` in nats. Rows of only −inf give
    /// lse = −inf and entropy = 0.
    fn softmax_entropy(&self, logits: &Tensor<Self>, inv_temperature: f32) -> Result<(Tensor<Self>, Tensor<Self>)>;
    /// [`Backend::softmax_entropy`] with, from the same pass, each row's self-certainty
    /// KL(U ‖ p) = −log n − (1/n)·Σ_j log p_j over the row's n unmasked entries, which is
    /// lse − mean_j x_j − log n with x = z·inv_temperature (Intuitor's reward, in nats,
    /// ≥ 0): `(lse, entropy, self_certainty)`. Rows with nothing unmasked give 0; rows
    /// holding NaN give NaN.
    #[allow(clippy::type_complexity)]
    fn softmax_entropy_certainty(
        &self,
        logits: &Tensor<Self>,
        inv_temperature: f32,
    ) -> Result<(Tensor<Self>, Tensor<Self>, Tensor<Self>)>;
    /// ∂H/∂z of H(softmax(z / T)) for each row, scaled by `upstream[row]`, given the row's
    /// `lse` and `entropy` from [`Backend::softmax_entropy`] at the same temperature:
    /// −(1/T)·p_i·(x_i − Σ_j p_j x_j) with x = z/T and Σ_j p_j x_j = lse − H.
    /// Masked (−inf) logits get a zero gradient.
    fn entropy_grad(
        &self,
        logits: &Tensor<Self>,
        lse: &Tensor<Self>,
        entropy: &Tensor<Self>,
        upstream: &Tensor<Self>,
        inv_temperature: f32,
    ) -> Result<Tensor<Self>>;
    /// The whole EM-INF loop for every row of `logits [rows, V]` (see [`EmInfParams`]);
    /// returns the optimised logits z′ (−inf entries stay −inf) and per-row statistics.
    fn em_inf(&self, logits: &Tensor<Self>, params: &EmInfParams) -> Result<(Tensor<Self>, Vec<EmInfRowStats>)>;
    /// Sample one token per row with the row's generator. Never returns a token in
    /// `params.banned`; errors on a row with NaN logits.
    fn sample(&self, logits: &Tensor<Self>, params: &SamplingParams, rngs: &mut [Rng]) -> Result<Vec<SampleOutcome>>;

    // --- backward ops (training). Each has a finite-difference test. ---
    /// Gradients of [`Backend::rms_norm`] given `dy`: returns dx and adds dweight (summed
    /// over rows) into `d_weight`. Weight gradients accumulate, as PyTorch's `.grad`
    /// does: the sequences of a batch add into one set of tensors, with no per-sequence
    /// copy of the model's gradients.
    fn rms_norm_backward(
        &self,
        x: &Tensor<Self>,
        weight: &Tensor<Self>,
        dy: &Tensor<Self>,
        eps: f32,
        d_weight: &mut Tensor<Self>,
    ) -> Result<Tensor<Self>>;
    /// Gradients of [`Backend::linear`] given `dy [m, n]`: returns dx [m, k], adds dyᵀ·x
    /// into `dw [n, k]` and Σ_rows dy into `d_bias [n]` when given (accumulating, as
    /// [`Backend::rms_norm_backward`]). Training keeps f32 master weights, so `w` must be f32.
    fn linear_backward(
        &self,
        x: &Tensor<Self>,
        w: &Tensor<Self>,
        dy: &Tensor<Self>,
        dw: &mut Tensor<Self>,
        d_bias: Option<&mut Tensor<Self>>,
    ) -> Result<Tensor<Self>>;
    /// The backward of [`Backend::rope`], in place on `dy`: the inverse rotation.
    fn rope_backward(&self, dy: &mut Tensor<Self>, head_dim: usize, positions: &[u32], theta: f32) -> Result<()>;
    /// Gradients of [`Backend::attention`] given `dout`: (dq, dk, dv), dk and dv shaped
    /// like the caches (rows the queries never see get zeros). Probabilities are recomputed.
    fn attention_backward(
        &self,
        q: &Tensor<Self>,
        k: &Tensor<Self>,
        v: &Tensor<Self>,
        dout: &Tensor<Self>,
        shape: AttentionShape,
    ) -> Result<(Tensor<Self>, Tensor<Self>, Tensor<Self>)>;
    /// Gradients of [`Backend::silu_mul`] given `dy`: (dgate, dup).
    fn silu_mul_backward(
        &self,
        gate: &Tensor<Self>,
        up: &Tensor<Self>,
        dy: &Tensor<Self>,
    ) -> Result<(Tensor<Self>, Tensor<Self>)>;
    /// Gradient of [`Backend::embedding`]: the rows of `dy` added into the rows `ids` of
    /// `d_table [vocab, dim]` (repeated ids accumulate; the other rows are not touched,
    /// so the cost grows with the tokens, not with the vocabulary).
    fn embedding_backward(&self, ids: &[u32], dy: &Tensor<Self>, d_table: &mut Tensor<Self>) -> Result<()>;
    /// log p(targets[r]) of each row of `logits [rows, V]` under softmax(z·inv_t), given
    /// the rows' `lse` from [`Backend::softmax_entropy`] at the same temperature: the
    /// log-probabilities of the tokens a policy-gradient objective scores.
    fn token_logprobs(
        &self,
        logits: &Tensor<Self>,
        lse: &Tensor<Self>,
        targets: &[u32],
        inv_temperature: f32,
    ) -> Result<Tensor<Self>>;
    /// ∂/∂z of Σ_r (d_logp[r]·log p(targets[r]) + d_entropy[r]·H_r) at temperature
    /// 1/inv_t, given `lse` and `entropy` from [`Backend::softmax_entropy`]:
    /// inv_t·(d_logp·(1[i = target] − p_i) − d_entropy·p_i·(x_i − (lse − H))), x = z·inv_t.
    /// With d_logp = 0 this is [`Backend::entropy_grad`]. Masked (−inf) logits get 0, a
    /// masked target too.
    #[allow(clippy::too_many_arguments)]
    fn policy_grad(
        &self,
        logits: &Tensor<Self>,
        lse: &Tensor<Self>,
        entropy: &Tensor<Self>,
        targets: &[u32],
        d_logp: &Tensor<Self>,
        d_entropy: &Tensor<Self>,
        inv_temperature: f32,
    ) -> Result<Tensor<Self>>;
}
