//! The generation loop: prefill then decode with a KV cache, one sequence or many at
//! once. It is the only one: generate, eval, self-consistency, bench and the training
//! rollouts all run it. How each token is chosen is a [`TokenPicker`] (plain sampling
//! here, the EM methods in the `entmin` crate); each token's statistics reach the caller
//! through a callback that can stop the sequence, and a [`Cancel`] handle stops the
//! whole call from another thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use entmin_engine::{Backend, EmInfRowStats, Rng, SamplingParams, Tensor};

use crate::error::{ModelError, Result};
use crate::loader::LoadedModel;
use crate::model::{BatchItem, KvCache, Logits, Model};
use crate::tokenizer::{DecodeStream, Tokenizer};

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

/// Chooses the next token of every active sequence from its logits row.
pub trait TokenPicker<B: Backend> {
    /// `logits [rows, V]` already has the banned columns at −inf; one generator per row.
    fn pick(&mut self, backend: &B, logits: &Tensor<B>, rngs: &mut [Rng]) -> Result<Vec<Pick>>;
}

/// Plain sampling with temperature / top-k / top-p / min-p.
pub struct Sampler(pub SamplingParams);

impl<B: Backend> TokenPicker<B> for Sampler {
    fn pick(&mut self, backend: &B, logits: &Tensor<B>, rngs: &mut [Rng]) -> Result<Vec<Pick>> {
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

struct Active<'t, B: Backend> {
    cache: KvCache<B>,
    max_new: usize,
    stream: Option<DecodeStream<'t>>,
    out: Generation,
    done: bool,
}

/// Generate for every prompt at once: one prefill over all prompts, then one
/// batched forward per step over the sequences still running. Sequence `i` draws
/// from `Rng::new(seeds[i])`, so its text does not depend on the batch it ran in.
/// `on_step` sees every token but the final end-of-turn one; returning [`Flow::Stop`]
/// ends that sequence.
pub fn generate_batch<'a, B: Backend, R: Into<Flow>>(
    backend: &B,
    model: impl Into<Decoder<'a, B>>,
    prompts: &[Vec<u32>],
    params: &GenerationParams,
    picker: &mut dyn TokenPicker<B>,
    seeds: &[u64],
    mut on_step: impl FnMut(&Step<'_>) -> R,
) -> Result<Vec<Generation>> {
    let d: Decoder<'a, B> = model.into();
    let context = d.model.config.context_length;
    if seeds.len() != prompts.len() {
        return Err(ModelError::Invalid(format!("{} seeds for {} prompts", seeds.len(), prompts.len())));
    }
    let cancelled = || params.cancel.as_ref().is_some_and(Cancel::is_cancelled);
    let mut seqs = Vec::with_capacity(prompts.len());
    for p in prompts {
        if p.is_empty() {
            return Err(ModelError::Invalid("a prompt is empty".into()));
        }
        if p.len() >= context {
            return Err(ModelError::ContextOverflow { prompt: p.len(), new: params.max_new_tokens, context });
        }
        let max_new = params.max_new_tokens.min(context - p.len());
        let cache = KvCache::new(backend, &d.model.config, p.len() + max_new)?;
        seqs.push(Active {
            out: Generation {
                prompt_tokens: p.len(),
                tokens: Vec::new(),
                text: String::new(),
                entropies: Vec::new(),
                sampled_entropies: Vec::new(),
                logprobs: Vec::new(),
                em_inf: Vec::new(),
                stop: if max_new < params.max_new_tokens { StopReason::ContextFull } else { StopReason::MaxTokens },
                prefill_secs: 0.0,
                decode_secs: 0.0,
                pick_secs: 0.0,
                kv_cache_bytes: cache.size_bytes(),
            },
            cache,
            max_new,
            stream: d.tokenizer.map(|t| DecodeStream::new(t, true)),
            done: max_new == 0,
        });
    }
    if cancelled() {
        for s in &mut seqs {
            s.out.stop = StopReason::Cancelled;
        }
        return Ok(seqs.into_iter().map(|s| s.out).collect());
    }
    let mut rngs: Vec<Rng> = seeds.iter().map(|&s| Rng::new(s)).collect();
    let t0 = Instant::now();
    let mut items: Vec<BatchItem<'_, B>> =
        seqs.iter_mut().zip(prompts).map(|(s, p)| BatchItem { ids: p, cache: &mut s.cache }).collect();
    let mut logits = d.model.forward_batch(backend, &mut items, Logits::Last)?;
    drop(items);
    backend.synchronize()?;
    let prefill_secs = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut pick_secs = 0.0;
    // Rows of `logits` belong to these sequences, in order.
    let mut rows: Vec<usize> = (0..seqs.len()).filter(|&i| !seqs[i].done).collect();
    let mut step_rngs: Vec<Rng> = Vec::new();
    while !rows.is_empty() {
        if cancelled() {
            for &i in &rows {
                seqs[i].out.stop = StopReason::Cancelled;
            }
            break;
        }
        backend.mask_columns(&mut logits, d.banned_ids)?;
        step_rngs.clear();
        step_rngs.extend(rows.iter().map(|&i| rngs[i].clone()));
        let tp = Instant::now();
        let picks = picker.pick(backend, &logits, &mut step_rngs)?;
        pick_secs += tp.elapsed().as_secs_f64();
        // A second softmax-entropy pass only where the picker did not make one.
        let entropies = match picks.iter().map(|p| p.model_entropy).collect::<Option<Vec<f32>>>() {
            Some(known) => known,
            None => row_entropies(backend, &logits)?,
        };
        let mut next_tokens = Vec::with_capacity(rows.len());
        for (r, &i) in rows.iter().enumerate() {
            rngs[i] = step_rngs[r].clone();
            let s = &mut seqs[i];
            let pick = picks[r];
            s.out.tokens.push(pick.token);
            s.out.entropies.push(entropies[r]);
            s.out.sampled_entropies.push(pick.sampled_entropy);
            s.out.logprobs.push(pick.logprob);
            s.out.em_inf.extend(pick.em_inf);
            if !params.ignore_stops && d.stop_ids.contains(&pick.token) {
                s.out.stop = StopReason::StopToken;
                s.done = true;
                continue;
            }
            let piece = match &mut s.stream {
                Some(stream) => stream.push(pick.token)?,
                None => String::new(),
            };
            s.out.text.push_str(&piece);
            let step = Step {
                seq: i,
                token: pick.token,
                text: &piece,
                entropy: entropies[r],
                sampled_entropy: pick.sampled_entropy,
                logprob: pick.logprob,
                em_inf: pick.em_inf,
            };
            let flow: Flow = on_step(&step).into();
            let stop_string = if params.ignore_stops {
                None
            } else {
                params.stop_strings.iter().find(|t| !t.is_empty() && s.out.text.ends_with(t.as_str()))
            };
            if let Some(stop) = stop_string {
                let cut = s.out.text.len() - stop.len();
                s.out.text.truncate(cut);
                s.out.stop = StopReason::StopString;
                s.done = true;
            } else if flow == Flow::Stop {
                s.out.stop = StopReason::Cancelled;
                s.done = true;
            } else if s.out.tokens.len() >= s.max_new {
                s.done = true;
            } else {
                next_tokens.push((i, pick.token));
            }
        }
        rows = next_tokens.iter().map(|&(i, _)| i).collect();
        if rows.is_empty() {
            break;
        }
        let toks: Vec<[u32; 1]> = next_tokens.iter().map(|&(_, t)| [t]).collect();
        let mut items: Vec<BatchItem<'_, B>> = Vec::with_capacity(rows.len());
        let mut caches: Vec<Option<&mut KvCache<B>>> = seqs.iter_mut().map(|s| Some(&mut s.cache)).collect();
        for (k, &i) in rows.iter().enumerate() {
            let cache = caches[i].take().expect("each sequence appears once");
            items.push(BatchItem { ids: &toks[k], cache });
        }
        logits = d.model.forward_batch(backend, &mut items, Logits::Last)?;
    }
    backend.synchronize()?;
    let decode_secs = t1.elapsed().as_secs_f64();
    Ok(seqs
        .into_iter()
        .map(|mut s| {
            if let Some(Ok(rest)) = s.stream.map(DecodeStream::finish) {
                s.out.text.push_str(&rest);
            }
            s.out.prefill_secs = prefill_secs;
            s.out.decode_secs = decode_secs;
            s.out.pick_secs = pick_secs;
            s.out
        })
        .collect())
}
