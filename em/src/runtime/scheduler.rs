//! Continuous batching for servers: [`Engine::serve_jobs`] takes [`Job`]s from a
//! channel, lets each join the running [`DecodeBatch`] between steps and leave when it
//! is done, and reports every job's progress as [`JobEvent`]s. Each job keeps its own
//! method, sampling, seeds and KV caches, so its output does not depend on the jobs it
//! shared the batch with (see `models/src/batch.rs`); all of them share the weight reads.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{Receiver, TryRecvError};

use crate::engine::{Backend, EmInfRowStats};
use crate::error::{Error, Result};
use crate::methods::self_consistency::majority_vote;
use crate::methods::Method;
use crate::models::{
    Cancel, DecodeBatch, Flow, Generation, GenerationParams, LoadedModel, NewSequence, Step, TokenPicker,
};

use super::{encode, Completion, Engine, ModelTask, Request};

/// A request for [`Engine::serve_jobs`].
pub struct Job {
    /// Prompt, method, token cap, stops and seed; its cancel handle (one is made when
    /// it has none) stops every sequence of the job.
    pub request: Request,
    /// Independent answers (OpenAI's `n`): choice c draws with seed `seed + c`, or
    /// under self-consistency its votes with `seed + c·votes + i`.
    pub choices: usize,
    /// Alternatives to report per token with their log-probs (0: none).
    pub top_logprobs: usize,
    /// Refuse the job when the prompt and `max_tokens` do not fit the context (an
    /// explicit token cap); otherwise the cap is lowered to what fits.
    pub strict_context: bool,
    /// Receives the job's events, on the model thread; returning false (the client went
    /// away) cancels the job.
    pub events: Box<dyn FnMut(JobEvent) -> bool + Send>,
}

/// One token of one choice, as a [`JobEvent::Token`] reports it.
#[derive(Clone, Debug)]
pub struct TokenEvent {
    /// Which choice.
    pub choice: usize,
    /// Token id.
    pub token: u32,
    /// Newly completed text (may be empty inside a UTF-8 character).
    pub text: String,
    /// The token's own text, decoded alone (special tokens included).
    pub piece: String,
    /// Log-prob under the distribution it was drawn from (see [`Step::logprob`]).
    pub logprob: f32,
    /// The model's entropy (nats, T = 1).
    pub entropy: f32,
    /// Entropy of the distribution it was drawn from.
    pub sampled_entropy: f32,
    /// What EM-INF did (None for other methods).
    pub em_inf: Option<EmInfRowStats>,
    /// The most likely tokens of that distribution, best first (`Job::top_logprobs`).
    pub top: Vec<TopToken>,
}

/// An alternative token with its log-prob.
#[derive(Clone, Debug)]
pub struct TopToken {
    /// Token id.
    pub id: u32,
    /// Its text, decoded alone.
    pub text: String,
    /// Its log-prob under the distribution the token was drawn from.
    pub logprob: f32,
}

/// What happens to a [`Job`], in order: `Started` (or `Done(Err)` if it cannot start),
/// `Token`s (none under self-consistency, whose answer is known only after the vote),
/// then `Done`.
#[derive(Debug)]
pub enum JobEvent {
    /// The prompt was read and the job joined the batch.
    Started {
        /// Tokens of the prompt.
        prompt_tokens: usize,
    },
    /// A new token of one choice.
    Token(TokenEvent),
    /// Every choice's answer, in order, or why there is none.
    Done(Result<Vec<Completion>>),
}

/// How [`Engine::serve_jobs`] batches.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// At most this many sequences in the batch (a job with n choices takes n, under
    /// self-consistency n·votes); a job larger than this runs alone.
    pub max_batch: usize,
}

/// What [`Engine::serve_jobs`] reports after each step (for metrics).
pub trait StepObserver {
    /// A step ran `rows` sequences, and EM-INF took `em_inf_steps` Adam steps in it.
    fn step(&mut self, rows: usize, em_inf_steps: u64);
}

impl StepObserver for () {
    fn step(&mut self, _: usize, _: u64) {}
}

impl Engine {
    /// Serve `jobs` until the channel closes and the last job is done. Call it on a
    /// thread of its own: it blocks, and the model runs on it.
    pub fn serve_jobs(&self, jobs: &Receiver<Job>, options: ServeOptions, observer: &mut dyn StepObserver) {
        self.run(ServeTask { jobs, options, observer });
    }
}

struct ServeTask<'a> {
    jobs: &'a Receiver<Job>,
    options: ServeOptions,
    observer: &'a mut dyn StepObserver,
}

/// A job in the batch.
struct Active<B: Backend> {
    job: Job,
    cancel: Cancel,
    picker: Box<dyn TokenPicker<B>>,
    /// Sequences per choice (votes under self-consistency, else 1).
    per_choice: usize,
    /// Finished sequences by (choice, sample).
    done: BTreeMap<(usize, usize), Generation>,
    remaining: usize,
    /// Top log-probs of the tokens just picked, by sequence id.
    tops: HashMap<usize, Vec<(u32, f32)>>,
    /// (choice, sample) of each of its sequence ids.
    seqs: HashMap<usize, (usize, usize)>,
}

impl ModelTask for ServeTask<'_> {
    type Output = ();

    fn run<B: Backend>(self, backend: &B, lm: &LoadedModel<B>) {
        let ServeTask { jobs, options, observer } = self;
        let mut batch = DecodeBatch::with_separate_prefills(lm);
        let active: RefCell<HashMap<u64, Active<B>>> = RefCell::new(HashMap::new());
        let mut owner: HashMap<usize, u64> = HashMap::new();
        let mut waiting: Option<Job> = None;
        let mut next_group = 0u64;
        let mut closed = false;
        loop {
            // Admit jobs while they fit; block only when nothing runs.
            loop {
                let job = match waiting.take() {
                    Some(j) => j,
                    None if closed => break,
                    None if batch.is_empty() => match jobs.recv() {
                        Ok(j) => j,
                        Err(_) => {
                            closed = true;
                            break;
                        }
                    },
                    None => match jobs.try_recv() {
                        Ok(j) => j,
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    },
                };
                let size = job.choices.max(1) * per_choice(&job.request);
                if !batch.is_empty() && batch.len() + size > options.max_batch.max(1) {
                    waiting = Some(job);
                    break;
                }
                let group = next_group;
                next_group += 1;
                if let Some(a) = admit(backend, lm, &mut batch, job, group, &mut owner) {
                    active.borrow_mut().insert(group, a);
                }
            }
            if batch.is_empty() {
                if closed && waiting.is_none() {
                    return;
                }
                continue;
            }
            let rows = batch.len();
            let mut em_inf_steps = 0u64;
            let stepped = batch.step(
                backend,
                &mut |group, ids, logits, rngs| {
                    let mut table = active.borrow_mut();
                    let a = table.get_mut(&group).expect("a group belongs to an active job");
                    let k = a.job.top_logprobs;
                    if k == 0 {
                        return a.picker.pick(backend, logits, rngs);
                    }
                    let mut tops = Vec::with_capacity(ids.len());
                    let picks = a.picker.pick_observed(backend, logits, rngs, &mut |_, seen, t| {
                        tops.extend(top_logprobs(&backend.to_host_f32(seen)?, seen.shape()[1], t, k));
                        Ok(())
                    })?;
                    a.tops.extend(ids.iter().copied().zip(tops));
                    Ok(picks)
                },
                &mut |step: &Step<'_>| {
                    em_inf_steps += step.em_inf.map_or(0, |s| s.steps as u64);
                    let mut table = active.borrow_mut();
                    let a = table.get_mut(&owner[&step.seq]).expect("a sequence belongs to an active job");
                    if a.job.request.method.method == Method::SelfConsistency {
                        return Flow::Continue;
                    }
                    let (choice, _) = a.seqs[&step.seq];
                    let piece = |id: u32| lm.tokenizer.decode(&[id], false).unwrap_or_default();
                    let top = a.tops.remove(&step.seq).unwrap_or_default();
                    let event = TokenEvent {
                        choice,
                        token: step.token,
                        text: step.text.to_string(),
                        piece: piece(step.token),
                        logprob: step.logprob,
                        entropy: step.entropy,
                        sampled_entropy: step.sampled_entropy,
                        em_inf: step.em_inf,
                        top: top.into_iter().map(|(id, logprob)| TopToken { id, text: piece(id), logprob }).collect(),
                    };
                    if (a.job.events)(JobEvent::Token(event)) {
                        Flow::Continue
                    } else {
                        a.cancel.cancel();
                        Flow::Stop
                    }
                },
            );
            observer.step(rows, em_inf_steps);
            let finished = match stepped {
                Ok(f) => f,
                Err(e) => {
                    // A failed forward pass leaves the caches in no known state: every
                    // job of this batch fails with the error, and the batch starts over.
                    let msg = e.to_string();
                    for (_, mut a) in active.borrow_mut().drain() {
                        (a.job.events)(JobEvent::Done(Err(Error::invalid(format!("generation failed: {msg}")))));
                    }
                    owner.clear();
                    batch = DecodeBatch::with_separate_prefills(lm);
                    continue;
                }
            };
            let mut table = active.borrow_mut();
            for (id, g) in finished {
                let group = owner.remove(&id).expect("a finished sequence has an owner");
                let a = table.get_mut(&group).expect("its job is active");
                let at = a.seqs[&id];
                a.tops.remove(&id);
                a.done.insert(at, g);
                a.remaining -= 1;
                if a.remaining == 0 {
                    let mut a = table.remove(&group).expect("just found");
                    let completions = completions(&mut a);
                    (a.job.events)(JobEvent::Done(Ok(completions)));
                }
            }
        }
    }
}

fn per_choice(request: &Request) -> usize {
    if request.method.method == Method::SelfConsistency {
        request.method.votes.max(1)
    } else {
        1
    }
}

/// Read the job's prompt and add its sequences to the batch, or report why not.
fn admit<B: Backend>(
    backend: &B,
    lm: &LoadedModel<B>,
    batch: &mut DecodeBatch<'_, B>,
    mut job: Job,
    group: u64,
    owner: &mut HashMap<usize, u64>,
) -> Option<Active<B>> {
    let cancel = job.request.cancel.get_or_insert_with(Cancel::new).clone();
    let r = &job.request;
    let checked = (|| {
        if job.choices == 0 {
            return Err(Error::invalid("a job needs at least one choice"));
        }
        if r.method.method == Method::SelfConsistency && r.method.votes == 0 {
            return Err(Error::invalid("self-consistency needs at least one sample"));
        }
        r.method.sampling.validate()?;
        r.method.em_inf.validate()?;
        let ids = encode(lm, &r.prompt)?;
        let context = lm.model.config.context_length;
        if job.strict_context && ids.len() + r.max_tokens > context {
            return Err(Error::invalid(format!(
                "the prompt is {} tokens and max_tokens {}: together over the model's context of {context}",
                ids.len(),
                r.max_tokens
            )));
        }
        if ids.len() >= context {
            return Err(Error::invalid(format!(
                "the prompt is {} tokens; the model's context holds {context}, new tokens included",
                ids.len()
            )));
        }
        Ok(ids)
    })();
    let ids = match checked {
        Ok(ids) => ids,
        Err(e) => {
            (job.events)(JobEvent::Done(Err(e)));
            return None;
        }
    };
    if !(job.events)(JobEvent::Started { prompt_tokens: ids.len() }) {
        return None;
    }
    let per_choice = per_choice(&job.request);
    let params = GenerationParams {
        max_new_tokens: job.request.max_tokens,
        stop_strings: job.request.stop.clone(),
        ignore_stops: false,
        cancel: Some(cancel.clone()),
    };
    let mut seqs = HashMap::new();
    for choice in 0..job.choices {
        for sample in 0..per_choice {
            let seed = job.request.seed.wrapping_add((choice * per_choice + sample) as u64);
            let seq = NewSequence { prompt: ids.clone(), params: params.clone(), seed, group };
            match batch.add(backend, seq) {
                Ok(id) => {
                    owner.insert(id, group);
                    seqs.insert(id, (choice, sample));
                }
                Err(e) => {
                    // Sequences already added end at the next step, cancelled.
                    cancel.cancel();
                    (job.events)(JobEvent::Done(Err(e.into())));
                    for id in seqs.keys() {
                        owner.remove(id);
                    }
                    return None;
                }
            }
        }
    }
    let picker = job.request.method.picker::<B>();
    Some(Active {
        remaining: seqs.len(),
        job,
        cancel,
        picker,
        per_choice,
        done: BTreeMap::new(),
        tops: HashMap::new(),
        seqs,
    })
}

/// Each choice's answer; under self-consistency its samples' vote.
fn completions<B: Backend>(a: &mut Active<B>) -> Vec<Completion> {
    let mut done = std::mem::take(&mut a.done);
    (0..a.job.choices)
        .map(|c| {
            let samples: Vec<Generation> =
                (0..a.per_choice).map(|s| done.remove(&(c, s)).expect("every sample finished")).collect();
            if a.job.request.method.method != Method::SelfConsistency {
                return Completion { text: samples[0].text.clone(), samples, chosen: 0, vote: None };
            }
            let texts: Vec<String> = samples.iter().map(|g| g.text.clone()).collect();
            let vote = majority_vote(&texts);
            Completion {
                text: texts[vote.representative].clone(),
                chosen: vote.representative,
                samples,
                vote: Some(vote),
            }
        })
        .collect()
}

/// The `k` most likely tokens of each row of `logits` (`cols` wide) under
/// softmax(z/T), as (id, log-prob), best first; ties go to the lower id. Computed in f64.
pub fn top_logprobs(logits: &[f32], cols: usize, temperature: f32, k: usize) -> Vec<Vec<(u32, f32)>> {
    let inv_t = 1.0 / temperature as f64;
    logits
        .chunks(cols.max(1))
        .map(|row| {
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &z| m.max(z as f64 * inv_t));
            if !max.is_finite() {
                return Vec::new();
            }
            let lse = max + row.iter().map(|&z| (z as f64 * inv_t - max).exp()).sum::<f64>().ln();
            let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
            for (id, &z) in row.iter().enumerate() {
                if z == f32::NEG_INFINITY {
                    continue;
                }
                if best.len() == k && best.last().is_some_and(|&(_, w)| z <= w) {
                    continue;
                }
                let at = best.partition_point(|&(_, w)| w >= z);
                best.insert(at, (id as u32, z));
                best.truncate(k);
            }
            best.into_iter().map(|(id, z)| (id, (z as f64 * inv_t - lse) as f32)).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::top_logprobs;

    #[test]
    fn top_logprobs_against_a_hand_computation() {
        // Row 0: z = [1, 3, 2, −inf] at T = 1: lse = ln(e + e³ + e²).
        let z = [1.0f32, 3.0, 2.0, f32::NEG_INFINITY, 0.0, 0.0, 0.0, 5.0];
        let got = top_logprobs(&z, 4, 1.0, 2);
        let lse = (1f64.exp() + 3f64.exp() + 2f64.exp()).ln();
        assert_eq!(got[0].iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!((got[0][0].1 as f64 - (3.0 - lse)).abs() < 1e-6);
        assert!((got[0][1].1 as f64 - (2.0 - lse)).abs() < 1e-6);
        // Row 1 at T = 0.5, k larger than the row: all four, ties by id.
        let got = top_logprobs(&z, 4, 0.5, 9);
        let lse = (3.0 * 0f64.exp() + 10f64.exp()).ln();
        assert_eq!(got[1].iter().map(|t| t.0).collect::<Vec<_>>(), vec![3, 0, 1, 2]);
        assert!((got[1][0].1 as f64 - (10.0 - lse)).abs() < 1e-6);
        assert!((got[1][3].1 as f64 - (0.0 - lse)).abs() < 1e-6);
    }
}
