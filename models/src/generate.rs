//! Prefill then decode with a KV cache, one sequence or many at once. How each
//! token is chosen is a [`TokenPicker`]: plain sampling lives here, the EM
//! methods (EM-INF, adaptive temperature) in the `entmin` crate.

use std::time::Instant;

use entmin_engine::{Backend, Rng, SampleOutcome, SamplingParams, Tensor};

use crate::error::{ModelError, Result};
use crate::loader::LoadedModel;
use crate::model::{BatchItem, KvCache, Logits};
use crate::tokenizer::DecodeStream;

/// Chooses the next token of every active sequence from its logits row.
pub trait TokenPicker<B: Backend> {
    /// `logits [rows, V]` already has the banned columns at −inf; one generator per row.
    fn pick(&mut self, backend: &B, logits: &Tensor<B>, rngs: &mut [Rng]) -> Result<Vec<SampleOutcome>>;
}

/// Plain sampling with temperature / top-k / top-p / min-p.
pub struct Sampler(pub SamplingParams);

impl<B: Backend> TokenPicker<B> for Sampler {
    fn pick(&mut self, backend: &B, logits: &Tensor<B>, rngs: &mut [Rng]) -> Result<Vec<SampleOutcome>> {
        Ok(backend.sample(logits, &self.0, rngs)?)
    }
}

#[derive(Clone, Debug)]
pub struct GenerationParams {
    pub max_new_tokens: usize,
    /// Generation ends when the text ends with one of these; it is cut from the output.
    pub stop_strings: Vec<String>,
}

impl Default for GenerationParams {
    fn default() -> Self {
        GenerationParams { max_new_tokens: 256, stop_strings: Vec::new() }
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
}

impl StopReason {
    pub fn describe(self) -> &'static str {
        match self {
            StopReason::StopToken => "end of turn",
            StopReason::StopString => "stop string",
            StopReason::MaxTokens => "max tokens",
            StopReason::ContextFull => "context full",
        }
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
    /// Entropy in nats of the model's next-token distribution at T = 1.
    pub entropy: f32,
    pub logprob: f32,
}

#[derive(Clone, Debug)]
pub struct Generation {
    pub prompt_tokens: usize,
    pub tokens: Vec<u32>,
    pub text: String,
    pub entropies: Vec<f32>,
    pub logprobs: Vec<f32>,
    pub stop: StopReason,
    pub prefill_secs: f64,
    pub decode_secs: f64,
}

impl Generation {
    pub fn mean_entropy(&self) -> f32 {
        if self.entropies.is_empty() {
            return 0.0;
        }
        self.entropies.iter().sum::<f32>() / self.entropies.len() as f32
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

/// One sequence; see [`generate_batch`].
pub fn generate<B: Backend>(
    backend: &B,
    lm: &LoadedModel<B>,
    prompt: &[u32],
    params: &GenerationParams,
    picker: &mut dyn TokenPicker<B>,
    seed: u64,
    mut on_step: impl FnMut(&Step<'_>),
) -> Result<Generation> {
    let mut out = generate_batch(backend, lm, &[prompt.to_vec()], params, picker, &[seed], &mut on_step)?;
    Ok(out.pop().expect("one generation per prompt"))
}

struct Active<'t, B: Backend> {
    cache: KvCache<B>,
    max_new: usize,
    stream: DecodeStream<'t>,
    out: Generation,
    done: bool,
}

/// Generate for every prompt at once: one prefill over all prompts, then one
/// batched forward per step over the sequences still running. Sequence `i` draws
/// from `Rng::new(seeds[i])`, so its text does not depend on the batch it ran in
/// (up to floating-point summation order).
pub fn generate_batch<B: Backend>(
    backend: &B,
    lm: &LoadedModel<B>,
    prompts: &[Vec<u32>],
    params: &GenerationParams,
    picker: &mut dyn TokenPicker<B>,
    seeds: &[u64],
    on_step: &mut dyn FnMut(&Step<'_>),
) -> Result<Vec<Generation>> {
    let context = lm.model.config.context_length;
    if seeds.len() != prompts.len() {
        return Err(ModelError::Invalid(format!("{} seeds for {} prompts", seeds.len(), prompts.len())));
    }
    let mut seqs = Vec::with_capacity(prompts.len());
    for p in prompts {
        if p.is_empty() {
            return Err(ModelError::Invalid("a prompt is empty".into()));
        }
        if p.len() >= context {
            return Err(ModelError::ContextOverflow { prompt: p.len(), new: params.max_new_tokens, context });
        }
        let max_new = params.max_new_tokens.min(context - p.len());
        seqs.push(Active {
            cache: KvCache::new(backend, &lm.model.config, p.len() + max_new)?,
            max_new,
            stream: DecodeStream::new(&lm.tokenizer, true),
            out: Generation {
                prompt_tokens: p.len(),
                tokens: Vec::new(),
                text: String::new(),
                entropies: Vec::new(),
                logprobs: Vec::new(),
                stop: StopReason::MaxTokens,
                prefill_secs: 0.0,
                decode_secs: 0.0,
            },
            done: max_new == 0,
        });
    }
    let mut rngs: Vec<Rng> = seeds.iter().map(|&s| Rng::new(s)).collect();
    let t0 = Instant::now();
    let mut items: Vec<BatchItem<'_, B>> =
        seqs.iter_mut().zip(prompts).map(|(s, p)| BatchItem { ids: p, cache: &mut s.cache }).collect();
    let mut logits = lm.model.forward_batch(backend, &mut items, Logits::Last)?;
    drop(items);
    let prefill_secs = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    // Rows of `logits` belong to these sequences, in order.
    let mut rows: Vec<usize> = (0..seqs.len()).filter(|&i| !seqs[i].done).collect();
    let mut step_rngs: Vec<Rng> = Vec::new();
    while !rows.is_empty() {
        backend.mask_columns(&mut logits, &lm.banned_ids)?;
        let entropies = row_entropies(backend, &logits)?;
        step_rngs.clear();
        step_rngs.extend(rows.iter().map(|&i| rngs[i].clone()));
        let picks = picker.pick(backend, &logits, &mut step_rngs)?;
        let mut next_tokens = Vec::with_capacity(rows.len());
        for (r, &i) in rows.iter().enumerate() {
            rngs[i] = step_rngs[r].clone();
            let s = &mut seqs[i];
            let pick = picks[r];
            s.out.tokens.push(pick.token);
            s.out.entropies.push(entropies[r]);
            s.out.logprobs.push(pick.logprob);
            if lm.stop_ids.contains(&pick.token) {
                s.out.stop = StopReason::StopToken;
                s.done = true;
                continue;
            }
            let piece = s.stream.push(pick.token)?;
            s.out.text.push_str(&piece);
            on_step(&Step { seq: i, token: pick.token, text: &piece, entropy: entropies[r], logprob: pick.logprob });
            if let Some(stop) = params.stop_strings.iter().find(|t| !t.is_empty() && s.out.text.ends_with(t.as_str())) {
                let cut = s.out.text.len() - stop.len();
                s.out.text.truncate(cut);
                s.out.stop = StopReason::StopString;
                s.done = true;
            } else if s.out.tokens.len() >= s.max_new {
                if s.max_new < params.max_new_tokens {
                    s.out.stop = StopReason::ContextFull;
                }
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
        logits = lm.model.forward_batch(backend, &mut items, Logits::Last)?;
    }
    let decode_secs = t1.elapsed().as_secs_f64();
    Ok(seqs
        .into_iter()
        .map(|mut s| {
            if let Ok(rest) = s.stream.finish() {
                s.out.text.push_str(&rest);
            }
            s.out.prefill_secs = prefill_secs;
            s.out.decode_secs = decode_secs;
            s.out
        })
        .collect())
}
