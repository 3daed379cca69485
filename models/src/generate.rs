//! Generation: prefill then decode with a KV cache, one sequence or many at once, on
//! the one loop ([`DecodeBatch`], `batch.rs`): generate, eval, self-consistency, bench,
//! the training rollouts and the server all run it. How each token is chosen is a [`TokenPicker`] (plain sampling
//! here, the EM methods in the `entmin` crate); each token's statistics reach the caller
//! through a callback that can stop the sequence, and a [`Cancel`] handle stops the
//! whole call from another thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use entmin_engine::{Backend, EmInfRowStats, Rng, SamplingParams, Tensor};

use crate::batch::{DecodeBatch, NewSequence};
use crate::error::{ModelError, Result};
use crate::loader::LoadedModel;
use crate::model::Model;
use crate::tokenizer::Tokenizer;

/// How one token was chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pick {
    pub token: u32,
    /// Log-probability of the token under the distribution it was drawn from, before the
    /// top-k / top-p / min-p filters (softmax(z/T), or softmax(z′/T) under EM-INF).
    pub logprob: f32,
    /// Entropy (nats) of that distribution: 0 for greedy decoding.
    pub sampled_entropy: f32,
    /// Entropy (nats) of softmax(z) of the logits the picker was given, when the picker
    /// computed it on the way (EM-INF's entropy before its steps; a draw at T = 1 or a
    /// greedy one without extra banned ids). The loop computes it when this is None.
    pub model_entropy: Option<f32>,
    /// What EM-INF did to the logits first (None for other methods).
    pub em_inf: Option<EmInfRowStats>,
}

/// What a picker shows of the distribution it drew from: (first row, the logits of
/// those rows the tokens were drawn from, the temperature applied to them).
pub type SeenFn<'f, B> = dyn FnMut(usize, &Tensor<B>, f32) -> Result<()> + 'f;

/// Chooses the next token of every active sequence from its logits row.
pub trait TokenPicker<B: Backend> {
    /// `logits [rows, V]` already has the banned columns at −inf; one generator per row.
    /// `seen` is shown the logits every row's token was drawn from (EM-INF's optimised
    /// ones, say) and their temperature (1 for greedy), for reporting top log-probs.
    fn pick_observed(
        &mut self,
        backend: &B,
        logits: &Tensor<B>,
        rngs: &mut [Rng],
        seen: &mut SeenFn<'_, B>,
    ) -> Result<Vec<Pick>>;

    /// [`TokenPicker::pick_observed`] without looking.
    fn pick(&mut self, backend: &B, logits: &Tensor<B>, rngs: &mut [Rng]) -> Result<Vec<Pick>> {
        self.pick_observed(backend, logits, rngs, &mut |_, _, _| Ok(()))
    }
}

/// Plain sampling with temperature / top-k / top-p / min-p.
pub struct Sampler(pub SamplingParams);

impl<B: Backend> TokenPicker<B> for Sampler {
    fn pick_observed(
        &mut self,
        backend: &B,
        logits: &Tensor<B>,
        rngs: &mut [Rng],
        seen: &mut SeenFn<'_, B>,
    ) -> Result<Vec<Pick>> {
        seen(0, logits, self.0.effective_temperature())?;
        sample_with_entropy(backend, logits, &self.0, rngs, None)
    }
}

/// Draw a token per row of `logits` and report the entropy of the distribution each was
/// drawn from (the sampler computes it with the draw; 0 for greedy decoding, a point
/// mass). `em_inf[r]`, when given, is attached to row r's pick, and `logits` are then
/// EM-INF's optimised ones, so the model's entropy is its `entropy_before`.
pub fn sample_with_entropy<B: Backend>(
    backend: &B,
    logits: &Tensor<B>,
    sampling: &SamplingParams,
    rngs: &mut [Rng],
    em_inf: Option<&[EmInfRowStats]>,
) -> Result<Vec<Pick>> {
    let greedy = sampling.temperature == 0.0;
    // The sampler's entropy is of softmax(z/T) with T = 1 for greedy decoding.
    let at_unit_temperature = (greedy || sampling.temperature == 1.0) && sampling.banned.is_empty();
    Ok(backend
        .sample(logits, sampling, rngs)?
        .iter()
        .enumerate()
        .map(|(r, o)| Pick {
            token: o.token,
            logprob: o.logprob,
            sampled_entropy: if greedy { 0.0 } else { o.entropy },
            model_entropy: match em_inf {
                Some(stats) => Some(stats[r].entropy_before),
                None => at_unit_temperature.then_some(o.entropy),
            },
            em_inf: em_inf.map(|s| s[r]),
        })
        .collect())
}

/// Stops a running generation from any thread: the sequences still running end with
/// [`StopReason::Cancelled`] before their next forward pass.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Self {
        Cancel::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Debug)]
pub struct GenerationParams {
    pub max_new_tokens: usize,
    /// Generation ends when the text ends with one of these; it is cut from the output.
    pub stop_strings: Vec<String>,
    /// Decode exactly `max_new_tokens` (context permitting): end-of-turn tokens and stop
    /// strings do not end a sequence. For speed measurements.
    pub ignore_stops: bool,
    pub cancel: Option<Cancel>,
}

impl Default for GenerationParams {
    fn default() -> Self {
        GenerationParams { max_new_tokens: 256, stop_strings: Vec::new(), ignore_stops: false, cancel: None }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// An end-of-turn / end-of-text token.
    StopToken,
    StopString,
    MaxTokens,
    /// The context window filled up before `max_new_tokens` (the cap was lowered to fit).
    ContextFull,
    /// The step callback returned [`Flow::Stop`] or the [`Cancel`] handle was used.
    Cancelled,
}

impl StopReason {
    pub fn describe(self) -> &'static str {
        match self {
            StopReason::StopToken => "end of turn",
            StopReason::StopString => "stop string",
            StopReason::MaxTokens => "max tokens",
            StopReason::ContextFull => "context full",
            StopReason::Cancelled => "cancelled",
        }
    }
}

/// What a step callback asks for: go on, or stop this sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

impl From<()> for Flow {
    fn from(_: ()) -> Flow {
        Flow::Continue
    }
}

/// What the caller sees for each new token.
#[derive(Clone, Debug)]
pub struct Step<'a> {
    /// Which sequence of the batch.
    pub seq: usize,
    pub token: u32,
    /// Newly completed text (may be empty while a UTF-8 character is incomplete).
    pub text: &'a str,
    /// Entropy in nats of the model's own next-token distribution, softmax(z) at T = 1.
    pub entropy: f32,
    /// Entropy of the distribution the token was actually drawn from (see [`Pick`]).
    pub sampled_entropy: f32,
    pub logprob: f32,
    /// Under EM-INF: Adam steps taken and the entropy of softmax(z′) after them.
    pub em_inf: Option<EmInfRowStats>,
}

#[derive(Clone, Debug)]
pub struct Generation {
    pub prompt_tokens: usize,
    /// Generated ids, the final end-of-turn token included.
    pub tokens: Vec<u32>,
    pub text: String,
    /// Per token: the model's entropy (T = 1), see [`Step::entropy`].
    pub entropies: Vec<f32>,
    /// Per token: the entropy of the distribution sampled, see [`Step::sampled_entropy`].
    pub sampled_entropies: Vec<f32>,
    pub logprobs: Vec<f32>,
    /// Per token under EM-INF (empty for other methods).
    pub em_inf: Vec<EmInfRowStats>,
    pub stop: StopReason,
    pub prefill_secs: f64,
    pub decode_secs: f64,
    /// Time in the token picker (EM-INF loop, sampling), part of `decode_secs`; shared by
    /// the sequences of a batch, as the prefill and decode times are.
    pub pick_secs: f64,
    /// Size of this sequence's KV cache.
    pub kv_cache_bytes: usize,
}

fn mean(xs: &[f32]) -> f32 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f32>() / xs.len() as f32
    }
}

impl Generation {
    /// Mean of the model's own per-token entropy.
    pub fn mean_entropy(&self) -> f32 {
        mean(&self.entropies)
    }

    /// Mean entropy of the distributions the tokens were drawn from.
    pub fn mean_sampled_entropy(&self) -> f32 {
        mean(&self.sampled_entropies)
    }

    /// EM-INF Adam steps over the whole generation.
    pub fn em_inf_steps(&self) -> u64 {
        self.em_inf.iter().map(|s| s.steps as u64).sum()
    }

    /// Decode speed over the tokens after the first (the first comes from prefill).
    pub fn decode_tokens_per_sec(&self) -> f64 {
        if self.decode_secs > 0.0 {
            self.tokens.len().saturating_sub(1) as f64 / self.decode_secs
        } else {
            0.0
        }
    }
}

/// Entropy (nats, T = 1) of each row of `logits`; errors on NaN.
pub fn row_entropies<B: Backend>(backend: &B, logits: &Tensor<B>) -> Result<Vec<f32>> {
    let (_, ent) = backend.softmax_entropy(logits, 1.0)?;
    let ent = backend.to_host_f32(&ent)?;
    if let Some(row) = ent.iter().position(|h| h.is_nan()) {
        return Err(ModelError::Invalid(format!("the model produced NaN logits (row {row})")));
    }
    Ok(ent)
}

/// What the loop needs of a model: a [`LoadedModel`] gives all of it; a model without a
/// tokenizer (random weights for a speed measurement) generates ids with empty text.
pub struct Decoder<'a, B: Backend> {
    pub model: &'a Model<B>,
    pub tokenizer: Option<&'a Tokenizer>,
    /// Ids that end a generation.
    pub stop_ids: &'a [u32],
    /// Ids never sampled (set to −inf before the picker sees the logits).
    pub banned_ids: &'a [u32],
}

// By hand: a derive would ask for `B: Copy`.
impl<B: Backend> Clone for Decoder<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: Backend> Copy for Decoder<'_, B> {}

impl<'a, B: Backend> From<&'a LoadedModel<B>> for Decoder<'a, B> {
    fn from(lm: &'a LoadedModel<B>) -> Self {
        Decoder { model: &lm.model, tokenizer: Some(&lm.tokenizer), stop_ids: &lm.stop_ids, banned_ids: &lm.banned_ids }
    }
}

/// One sequence; see [`generate_batch`].
pub fn generate<'a, B: Backend, R: Into<Flow>>(
    backend: &B,
    model: impl Into<Decoder<'a, B>>,
    prompt: &[u32],
    params: &GenerationParams,
    picker: &mut dyn TokenPicker<B>,
    seed: u64,
    mut on_step: impl FnMut(&Step<'_>) -> R,
) -> Result<Generation> {
    let mut out = generate_batch(backend, model, &[prompt.to_vec()], params, picker, &[seed], &mut on_step)?;
    Ok(out.pop().expect("one generation per prompt"))
}

/// Generate for every prompt at once: one prefill over all prompts, then one
/// batched forward per step over the sequences still running ([`DecodeBatch`]).
/// Sequence `i` draws from `Rng::new(seeds[i])`, so its text does not depend on the
/// batch it ran in. `on_step` sees every token but the final end-of-turn one, with
/// `Step::seq` = i; returning [`Flow::Stop`] ends that sequence.
pub fn generate_batch<'a, B: Backend, R: Into<Flow>>(
    backend: &B,
    model: impl Into<Decoder<'a, B>>,
    prompts: &[Vec<u32>],
    params: &GenerationParams,
    picker: &mut dyn TokenPicker<B>,
    seeds: &[u64],
    mut on_step: impl FnMut(&Step<'_>) -> R,
) -> Result<Vec<Generation>> {
    if seeds.len() != prompts.len() {
        return Err(ModelError::Invalid(format!("{} seeds for {} prompts", seeds.len(), prompts.len())));
    }
    let mut batch = DecodeBatch::new(model);
    for (prompt, &seed) in prompts.iter().zip(seeds) {
        batch.add(backend, NewSequence { prompt: prompt.clone(), params: params.clone(), seed, group: 0 })?;
    }
    let mut out: Vec<Option<Generation>> = vec![None; prompts.len()];
    while !batch.is_empty() {
        let finished =
            batch.step(backend, &mut |_, _, logits, rngs| picker.pick(backend, logits, rngs), &mut |step| {
                on_step(step).into()
            })?;
        for (id, g) in finished {
            out[id] = Some(g);
        }
    }
    backend.synchronize()?;
    Ok(out.into_iter().map(|g| g.expect("every sequence finishes")).collect())
}
