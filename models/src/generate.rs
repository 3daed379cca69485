//! Prefill then decode with a KV cache, streaming each token as it is chosen.

use std::time::Instant;

use entmin_engine::{Backend, Rng, SamplingParams, Tensor};

use crate::error::{ModelError, Result};
use crate::loader::LoadedModel;
use crate::model::{KvCache, Logits};
use crate::tokenizer::DecodeStream;

#[derive(Clone, Debug)]
pub struct GenerationParams {
    pub sampling: SamplingParams,
    pub max_new_tokens: usize,
    pub seed: u64,
    /// Generation ends when the text ends with one of these; it is cut from the output.
    pub stop_strings: Vec<String>,
}

impl Default for GenerationParams {
    fn default() -> Self {
        GenerationParams { sampling: SamplingParams::default(), max_new_tokens: 256, seed: 0, stop_strings: Vec::new() }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// An end-of-turn / end-of-text token.
    StopToken,
    StopString,
    MaxTokens,
}

/// What the caller sees for each new token.
#[derive(Clone, Debug)]
pub struct Step<'a> {
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

pub fn generate<B: Backend>(
    backend: &B,
    lm: &LoadedModel<B>,
    prompt: &[u32],
    params: &GenerationParams,
    mut on_step: impl FnMut(&Step<'_>),
) -> Result<Generation> {
    let context = lm.model.config.context_length;
    if prompt.is_empty() {
        return Err(ModelError::Invalid("the prompt is empty".into()));
    }
    if prompt.len() >= context {
        return Err(ModelError::ContextOverflow { prompt: prompt.len(), new: params.max_new_tokens, context });
    }
    let max_new = params.max_new_tokens.min(context - prompt.len());
    let mut sampling = params.sampling.clone();
    sampling.banned.extend(&lm.banned_ids);
    sampling.validate()?;
    let mut cache = KvCache::new(backend, &lm.model.config, prompt.len() + max_new)?;
    let mut rng = [Rng::new(params.seed)];
    let mut stream = DecodeStream::new(&lm.tokenizer, true);
    let mut out = Generation {
        prompt_tokens: prompt.len(),
        tokens: Vec::new(),
        text: String::new(),
        entropies: Vec::new(),
        logprobs: Vec::new(),
        stop: StopReason::MaxTokens,
        prefill_secs: 0.0,
        decode_secs: 0.0,
    };
    let t0 = Instant::now();
    let mut logits = lm.model.forward(backend, prompt, &mut cache, Logits::Last)?;
    out.prefill_secs = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    for step in 0..max_new {
        let entropy = row_entropies(backend, &logits)?[0];
        let pick = backend.sample(&logits, &sampling, &mut rng)?[0];
        out.tokens.push(pick.token);
        out.entropies.push(entropy);
        out.logprobs.push(pick.logprob);
        if lm.stop_ids.contains(&pick.token) {
            out.stop = StopReason::StopToken;
            break;
        }
        let piece = stream.push(pick.token)?;
        out.text.push_str(&piece);
        on_step(&Step { token: pick.token, text: &piece, entropy, logprob: pick.logprob });
        if let Some(s) = params.stop_strings.iter().find(|s| !s.is_empty() && out.text.ends_with(s.as_str())) {
            out.text.truncate(out.text.len() - s.len());
            out.stop = StopReason::StopString;
            break;
        }
        if step + 1 < max_new {
            logits = lm.model.forward(backend, &[pick.token], &mut cache, Logits::Last)?;
        }
    }
    out.decode_secs = t1.elapsed().as_secs_f64();
    Ok(out)
}
