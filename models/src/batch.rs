//! The generation loop, one step at a time: a [`DecodeBatch`] holds the running
//! sequences, each with its own KV cache, generator, stop rules and decoder of text;
//! sequences join between steps (their prompt is prefilled in the same forward pass as
//! the other sequences' next tokens) and leave as they finish. [`generate_batch`]
//! (a fixed set of prompts) and the server's continuous batching both run it.
//!
//! A sequence's tokens do not depend on its batch mates: each draws from its own
//! `Rng::new(seed)`, the EM kernels and the quantised CPU GEMV are batch-invariant
//! bit for bit (docs/design.md), and attention reads only the sequence's own cache.
//!
//! [`generate_batch`]: crate::generate::generate_batch

use std::time::Instant;

use entmin_engine::{Backend, Rng, Tensor};

use crate::error::{ModelError, Result};
use crate::generate::{row_entropies, Cancel, Decoder, Flow, Generation, GenerationParams, Pick, Step, StopReason};
use crate::model::{BatchItem, KvCache, Logits};
use crate::tokenizer::DecodeStream;

/// A sequence to add to a [`DecodeBatch`].
#[derive(Clone, Debug)]
pub struct NewSequence {
    pub prompt: Vec<u32>,
    /// Token cap, stop strings and cancel handle of this sequence.
    pub params: GenerationParams,
    /// Seed of its own generator.
    pub seed: u64,
    /// Sequences of one group are picked in one call (their logits rows together), so
    /// a group shares one token picker; see [`DecodeBatch::step`].
    pub group: u64,
}

struct Running<'t, B: Backend> {
    id: usize,
    group: u64,
    params: GenerationParams,
    cache: KvCache<B>,
    max_new: usize,
    rng: Rng,
    stream: Option<DecodeStream<'t>>,
    out: Generation,
    /// The prompt, until the step that prefills it.
    prompt: Option<Vec<u32>>,
    /// The token to feed at the next forward pass.
    next: Option<u32>,
    /// Its row in the last step's logits: (which forward pass, row).
    row: Option<(usize, usize)>,
    prefilled_at: Option<Instant>,
    done: bool,
}

/// The running sequences of a continuous batch; see the module docs.
pub struct DecodeBatch<'a, B: Backend> {
    decoder: Decoder<'a, B>,
    seqs: Vec<Running<'a, B>>,
    /// Logits of the last step's forward passes.
    logits: Vec<Tensor<B>>,
    next_id: usize,
    separate_prefills: bool,
}

/// The token picker of a step: called once per group with the group, the ids of its
/// sequences being picked, their logits rows (banned columns already at −inf) and one
/// generator per row.
pub type PickFn<'f, B> = dyn FnMut(u64, &[usize], &Tensor<B>, &mut [Rng]) -> Result<Vec<Pick>> + 'f;

impl<'a, B: Backend> DecodeBatch<'a, B> {
    /// A batch that prefills the prompts added between two steps in one forward pass.
    pub fn new(decoder: impl Into<Decoder<'a, B>>) -> Self {
        DecodeBatch {
            decoder: decoder.into(),
            seqs: Vec::new(),
            logits: Vec::new(),
            next_id: 0,
            separate_prefills: false,
        }
    }

    /// A batch that prefills every prompt in a forward pass of its own, exactly as if it
    /// ran alone: with dense weights the row count of a matrix product decides its
    /// summation order (docs/design.md, "CPU kernels"), so a server that promises the
    /// same tokens whatever the batch prefills each request alone.
    pub fn with_separate_prefills(decoder: impl Into<Decoder<'a, B>>) -> Self {
        DecodeBatch { separate_prefills: true, ..DecodeBatch::new(decoder) }
    }

    /// Sequences added and not yet returned by [`DecodeBatch::step`].
    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    /// Add a sequence; it is prefilled by the next step. Returns its id (0, 1, … in
    /// order of addition), the `seq` of its [`Step`]s. Its KV cache holds the prompt
    /// and `max_new_tokens`, lowered to what the context leaves.
    pub fn add(&mut self, backend: &B, seq: NewSequence) -> Result<usize> {
        let context = self.decoder.model.config.context_length;
        let n = seq.prompt.len();
        if n == 0 {
            return Err(ModelError::Invalid("a prompt is empty".into()));
        }
        if n >= context {
            return Err(ModelError::ContextOverflow { prompt: n, new: seq.params.max_new_tokens, context });
        }
        let max_new = seq.params.max_new_tokens.min(context - n);
        let cache = KvCache::new(backend, &self.decoder.model.config, n + max_new)?;
        let cancelled = seq.params.cancel.as_ref().is_some_and(Cancel::is_cancelled);
        let stop = match () {
            _ if cancelled => StopReason::Cancelled,
            _ if max_new < seq.params.max_new_tokens => StopReason::ContextFull,
            _ => StopReason::MaxTokens,
        };
        let id = self.next_id;
        self.next_id += 1;
        self.seqs.push(Running {
            id,
            group: seq.group,
            out: Generation {
                prompt_tokens: n,
                tokens: Vec::new(),
                text: String::new(),
                entropies: Vec::new(),
                sampled_entropies: Vec::new(),
                logprobs: Vec::new(),
                em_inf: Vec::new(),
                stop,
                prefill_secs: 0.0,
                decode_secs: 0.0,
                pick_secs: 0.0,
                kv_cache_bytes: cache.size_bytes(),
            },
            cache,
            max_new,
            rng: Rng::new(seq.seed),
            stream: self.decoder.tokenizer.map(|t| DecodeStream::new(t, true)),
            params: seq.params,
            prompt: Some(seq.prompt),
            next: None,
            row: None,
            prefilled_at: None,
            done: cancelled || max_new == 0,
        });
        Ok(id)
    }

    /// One step: pick the next token of every sequence that has logits (calling `pick`
    /// once per group, `on_step` once per token but a final end-of-turn one; `on_step`
    /// returning [`Flow::Stop`] ends that sequence), then one forward pass over the
    /// sequences that go on and one over the prompts added since the last step (one per
    /// prompt [`with_separate_prefills`](DecodeBatch::with_separate_prefills)). Returns
    /// the sequences that finished, with their ids.
    pub fn step(
        &mut self,
        backend: &B,
        pick: &mut PickFn<'_, B>,
        on_step: &mut dyn FnMut(&Step<'_>) -> Flow,
    ) -> Result<Vec<(usize, Generation)>> {
        for s in self.seqs.iter_mut().filter(|s| !s.done) {
            if s.params.cancel.as_ref().is_some_and(Cancel::is_cancelled) {
                s.out.stop = StopReason::Cancelled;
                s.done = true;
            }
        }
        let mut logits = std::mem::take(&mut self.logits);
        if !logits.is_empty() {
            for part in &mut logits {
                backend.mask_columns(part, self.decoder.banned_ids)?;
            }
            self.pick_all(backend, &logits, pick, on_step)?;
        }
        self.forward(backend)?;
        let mut finished = Vec::new();
        let mut i = 0;
        while i < self.seqs.len() {
            if self.seqs[i].done {
                finished.push(finish(self.seqs.remove(i)));
            } else {
                i += 1;
            }
        }
        Ok(finished)
    }

    fn pick_all(
        &mut self,
        backend: &B,
        logits: &[Tensor<B>],
        pick: &mut PickFn<'_, B>,
        on_step: &mut dyn FnMut(&Step<'_>) -> Flow,
    ) -> Result<()> {
        // Groups in order of first appearance, each with its sequences' indices.
        let mut groups: Vec<(u64, Vec<usize>)> = Vec::new();
        for (i, s) in self.seqs.iter().enumerate() {
            if s.row.is_none() || s.done {
                continue;
            }
            match groups.iter_mut().find(|(g, _)| *g == s.group) {
                Some((_, members)) => members.push(i),
                None => groups.push((s.group, vec![i])),
            }
        }
        for (group, members) in groups {
            let rows: Vec<(usize, usize)> = members.iter().map(|&i| self.seqs[i].row.expect("picked rows")).collect();
            let (part0, row0) = rows[0];
            let contiguous = rows.iter().enumerate().all(|(k, &(p, r))| p == part0 && r == row0 + k);
            let part;
            let group_logits = if contiguous && row0 == 0 && rows.len() == logits[part0].shape()[0] {
                &logits[part0]
            } else if contiguous {
                part = backend.slice_rows(&logits[part0], row0, row0 + rows.len())?;
                &part
            } else {
                let parts: Vec<Tensor<B>> =
                    rows.iter().map(|&(p, r)| backend.slice_rows(&logits[p], r, r + 1)).collect::<Result<_, _>>()?;
                part = backend.concat_rows(&parts.iter().collect::<Vec<_>>())?;
                &part
            };
            let mut rngs: Vec<Rng> = members.iter().map(|&i| self.seqs[i].rng.clone()).collect();
            let tp = Instant::now();
            let ids: Vec<usize> = members.iter().map(|&i| self.seqs[i].id).collect();
            let picks = pick(group, &ids, group_logits, &mut rngs)?;
            let pick_secs = tp.elapsed().as_secs_f64();
            if picks.len() != members.len() {
                return Err(ModelError::Invalid(format!(
                    "the picker gave {} tokens for {} rows",
                    picks.len(),
                    rows.len()
                )));
            }
            // A second softmax-entropy pass only where the picker did not make one.
            let entropies = match picks.iter().map(|p| p.model_entropy).collect::<Option<Vec<f32>>>() {
                Some(known) => known,
                None => row_entropies(backend, group_logits)?,
            };
            for (k, &i) in members.iter().enumerate() {
                let s = &mut self.seqs[i];
                s.rng = rngs[k].clone();
                s.out.pick_secs += pick_secs;
                s.accept(&self.decoder, picks[k], entropies[k], on_step)?;
            }
        }
        Ok(())
    }

    fn forward(&mut self, backend: &B) -> Result<()> {
        // Sequences that go on, then the new prompts: alone or all together.
        let mut passes: Vec<Vec<usize>> = Vec::new();
        let running: Vec<usize> =
            (0..self.seqs.len()).filter(|&i| !self.seqs[i].done && self.seqs[i].prompt.is_none()).collect();
        let new: Vec<usize> =
            (0..self.seqs.len()).filter(|&i| !self.seqs[i].done && self.seqs[i].prompt.is_some()).collect();
        if !running.is_empty() {
            passes.push(running);
        }
        if self.separate_prefills {
            passes.extend(new.iter().map(|&i| vec![i]));
        } else if !new.is_empty() {
            passes.push(new);
        }
        for s in &mut self.seqs {
            s.row = None;
        }
        for (p, members) in passes.iter().enumerate() {
            let t0 = Instant::now();
            let mut tokens: Vec<[u32; 1]> = Vec::new();
            for &i in members {
                if self.seqs[i].prompt.is_none() {
                    tokens.push([self.seqs[i].next.take().expect("a running sequence has its next token")]);
                }
            }
            let mut singles = tokens.iter();
            let mut items: Vec<BatchItem<'_, B>> = Vec::with_capacity(members.len());
            let mut taken: Vec<Option<&mut Running<'a, B>>> = self.seqs.iter_mut().map(Some).collect();
            for &i in members {
                let s = taken[i].take().expect("a sequence is in one pass");
                let ids: &[u32] = match &s.prompt {
                    Some(prompt) => prompt,
                    None => singles.next().expect("one token per running sequence"),
                };
                items.push(BatchItem { ids, cache: &mut s.cache });
            }
            let logits = self.decoder.model.forward_batch(backend, &mut items, Logits::Last)?;
            drop(items);
            drop(taken);
            let prefill = self.seqs[members[0]].prompt.is_some();
            if prefill {
                backend.synchronize()?;
            }
            let now = Instant::now();
            for (row, &i) in members.iter().enumerate() {
                let s = &mut self.seqs[i];
                s.row = Some((p, row));
                if s.prompt.take().is_some() {
                    s.out.prefill_secs = (now - t0).as_secs_f64();
                    s.prefilled_at = Some(now);
                }
            }
            self.logits.push(logits);
        }
        Ok(())
    }
}

impl<B: Backend> Running<'_, B> {
    /// Record `pick` as this sequence's next token and apply its stop rules.
    fn accept(
        &mut self,
        d: &Decoder<'_, B>,
        pick: Pick,
        entropy: f32,
        on_step: &mut dyn FnMut(&Step<'_>) -> Flow,
    ) -> Result<()> {
        let out = &mut self.out;
        out.tokens.push(pick.token);
        out.entropies.push(entropy);
        out.sampled_entropies.push(pick.sampled_entropy);
        out.logprobs.push(pick.logprob);
        out.em_inf.extend(pick.em_inf);
        if !self.params.ignore_stops && d.stop_ids.contains(&pick.token) {
            out.stop = StopReason::StopToken;
            self.done = true;
            return Ok(());
        }
        let piece = match &mut self.stream {
            Some(stream) => stream.push(pick.token)?,
            None => String::new(),
        };
        out.text.push_str(&piece);
        let step = Step {
            seq: self.id,
            token: pick.token,
            text: &piece,
            entropy,
            sampled_entropy: pick.sampled_entropy,
            logprob: pick.logprob,
            em_inf: pick.em_inf,
        };
        let flow = on_step(&step);
        let stop_string = if self.params.ignore_stops {
            None
        } else {
            self.params.stop_strings.iter().find(|t| !t.is_empty() && out.text.ends_with(t.as_str()))
        };
        if let Some(stop) = stop_string {
            let cut = out.text.len() - stop.len();
            out.text.truncate(cut);
            out.stop = StopReason::StopString;
            self.done = true;
        } else if flow == Flow::Stop {
            out.stop = StopReason::Cancelled;
            self.done = true;
        } else if out.tokens.len() >= self.max_new {
            self.done = true;
        } else {
            self.next = Some(pick.token);
        }
        Ok(())
    }
}

fn finish<B: Backend>(mut s: Running<'_, B>) -> (usize, Generation) {
    // The text of a stop string stays cut: what the stream still holds is an
    // incomplete character, flushed only when the sequence did not end on a stop string.
    if s.out.stop != StopReason::StopString {
        if let Some(Ok(rest)) = s.stream.take().map(DecodeStream::finish) {
            s.out.text.push_str(&rest);
        }
    }
    if let Some(t) = s.prefilled_at {
        s.out.decode_secs = t.elapsed().as_secs_f64();
    }
    (s.id, s.out)
}
