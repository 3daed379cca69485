//! Building OpenAI response bodies from a job's events: whole responses, and the SSE
//! chunks of a stream (`data: {…}` lines, then `data: [DONE]`). Both endpoints share
//! it; [`Endpoint`] says which shape.

use serde_json::{json, Value};

use crate::models::{Generation, StopReason};
use crate::runtime::{Completion, TokenEvent};
use crate::Method;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
        }
    }
}

/// What a response carries besides the choices.
pub struct Header {
    pub endpoint: Endpoint,
    pub id: String,
    pub created: u64,
    pub model: String,
    pub method: Method,
    /// None: no logprobs.
    pub logprobs: Option<usize>,
}

/// One choice's text and tokens as they arrive.
#[derive(Default)]
pub struct ChoiceState {
    /// Text so far (stop strings not yet cut).
    pub text: String,
    /// Bytes of `text` already sent in a stream.
    pub sent: usize,
    pub tokens: Vec<TokenEvent>,
}

pub fn finish_reason(stop: StopReason) -> &'static str {
    match stop {
        StopReason::StopToken | StopReason::StopString => "stop",
        StopReason::MaxTokens | StopReason::ContextFull => "length",
        StopReason::Cancelled => "cancelled",
    }
}

/// Bytes of `text` that can be sent: all but a stop string it now holds (the library
/// cuts it from the answer) and a tail that may still grow into one.
pub fn releasable(text: &str, stops: &[String]) -> usize {
    if let Some(at) = stops.iter().filter_map(|s| text.find(s.as_str())).min() {
        return at;
    }
    let mut hold = 0;
    for s in stops {
        for k in (1..s.len()).rev() {
            if k > hold && s.is_char_boundary(k) && text.ends_with(&s[..k]) {
                hold = k;
                break;
            }
        }
    }
    text.len() - hold
}

fn token_entry(t: &TokenEvent) -> Value {
    json!({
        "token": t.piece,
        "logprob": t.logprob,
        "bytes": t.piece.as_bytes(),
        "top_logprobs": t.top.iter().map(|a| json!({"token": a.text, "logprob": a.logprob, "bytes": a.text.as_bytes()}))
            .collect::<Vec<_>>(),
        "entropy": t.entropy,
        "sampled_entropy": t.sampled_entropy,
        "em_inf": t.em_inf.map(|s| json!({"steps": s.steps, "entropy_after": s.entropy_after})),
    })
}

/// The logprobs object of `tokens`, in the endpoint's shape; `offset` is the text
/// length before the first of them (completions' `text_offset`).
pub fn logprobs(endpoint: Endpoint, tokens: &[TokenEvent], offset: usize) -> Value {
    match endpoint {
        Endpoint::Chat => json!({"content": tokens.iter().map(token_entry).collect::<Vec<_>>()}),
        Endpoint::Completions => {
            let mut at = offset;
            let offsets: Vec<usize> = tokens
                .iter()
                .map(|t| {
                    let o = at;
                    at += t.text.len();
                    o
                })
                .collect();
            json!({
                "tokens": tokens.iter().map(|t| &t.piece).collect::<Vec<_>>(),
                "token_logprobs": tokens.iter().map(|t| t.logprob).collect::<Vec<_>>(),
                "top_logprobs": tokens.iter().map(|t| t.top.iter().map(|a| (a.text.clone(), json!(a.logprob)))
                    .collect::<serde_json::Map<_, _>>()).collect::<Vec<_>>(),
                "text_offset": offsets,
                "entropies": tokens.iter().map(|t| t.entropy).collect::<Vec<_>>(),
                "sampled_entropies": tokens.iter().map(|t| t.sampled_entropy).collect::<Vec<_>>(),
                "em_inf_steps": tokens.iter().map(|t| t.em_inf.map_or(0, |s| s.steps)).collect::<Vec<_>>(),
            })
        }
    }
}

/// entmin's per-choice summary: the method, mean entropies, EM-INF's work, the vote.
pub fn summary(method: Method, c: &Completion) -> Value {
    let g: &Generation = c.generation();
    let mut v = json!({
        "method": method.name(),
        "mean_entropy": g.mean_entropy(),
        "mean_sampled_entropy": g.mean_sampled_entropy(),
        "em_inf_steps": g.em_inf_steps(),
        "tokens_optimised": g.em_inf.iter().filter(|s| s.steps > 0).count(),
    });
    if let Some(vote) = &c.vote {
        v["vote"] = json!({
            "answer": vote.answer,
            "chosen_sample": c.chosen,
            "tally": vote.tally.iter().map(|(a, n)| json!({"answer": a, "votes": n})).collect::<Vec<_>>(),
        });
    }
    v
}

/// Tokens a choice generated (all samples under self-consistency).
pub fn completion_tokens(c: &Completion) -> usize {
    c.samples.iter().map(|g| g.tokens.len()).sum()
}

pub fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

impl Header {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.endpoint, chunk) {
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
            (Endpoint::Completions, _) => "text_completion",
        }
    }

    /// The whole response: `done[i]` is choice i's answer and `states[i]` its tokens.
    pub fn response(&self, done: &[&Completion], states: &[ChoiceState], prompt_tokens: usize) -> Value {
        let choices: Vec<Value> = done
            .iter()
            .zip(states)
            .enumerate()
            .map(|(i, (c, st))| {
                let lp = self.logprobs.map(|_| logprobs(self.endpoint, &st.tokens, 0));
                let mut choice = match self.endpoint {
                    Endpoint::Chat => json!({"index": i, "message": {"role": "assistant", "content": c.text}}),
                    Endpoint::Completions => json!({"index": i, "text": c.text}),
                };
                choice["logprobs"] = lp.unwrap_or(Value::Null);
                choice["finish_reason"] = json!(finish_reason(c.generation().stop));
                choice["entmin"] = summary(self.method, c);
                choice
            })
            .collect();
        let completion: usize = done.iter().map(|c| completion_tokens(c)).sum();
        json!({
            "id": self.id, "object": self.object(false), "created": self.created, "model": self.model,
            "system_fingerprint": Value::Null,
            "choices": choices, "usage": usage(prompt_tokens, completion),
        })
    }

    /// One stream chunk with one choice's delta; `usage` is null in every chunk but the
    /// last when the client asked for it (`with_usage`), as OpenAI sends it.
    #[allow(clippy::too_many_arguments)]
    pub fn chunk(
        &self,
        index: usize,
        text: Option<&str>,
        first: bool,
        tokens: &[TokenEvent],
        offset: usize,
        finish: Option<(&str, &Completion)>,
        with_usage: bool,
    ) -> Value {
        let mut choice = match self.endpoint {
            Endpoint::Chat => {
                let mut delta = json!({});
                if first {
                    delta["role"] = json!("assistant");
                }
                if let Some(t) = text {
                    delta["content"] = json!(t);
                }
                json!({"index": index, "delta": delta})
            }
            Endpoint::Completions => json!({"index": index, "text": text.unwrap_or("")}),
        };
        choice["logprobs"] = if self.logprobs.is_some() && !tokens.is_empty() {
            logprobs(self.endpoint, tokens, offset)
        } else {
            Value::Null
        };
        choice["finish_reason"] = finish.map_or(Value::Null, |(f, _)| json!(f));
        if let Some((_, c)) = finish {
            choice["entmin"] = summary(self.method, c);
        }
        let mut v = json!({
            "id": self.id, "object": self.object(true), "created": self.created, "model": self.model,
            "system_fingerprint": Value::Null, "choices": [choice],
        });
        if with_usage {
            v["usage"] = Value::Null;
        }
        v
    }

    /// The last chunk when usage was asked for: no choices, the totals.
    pub fn usage_chunk(&self, prompt_tokens: usize, completion: usize) -> Value {
        json!({
            "id": self.id, "object": self.object(true), "created": self.created, "model": self.model,
            "system_fingerprint": Value::Null, "choices": [], "usage": usage(prompt_tokens, completion),
        })
    }
}

/// An SSE event line.
pub fn sse(v: &Value) -> String {
    format!("data: {v}\n\n")
}

#[cfg(test)]
mod tests {
    use super::releasable;

    #[test]
    fn stop_string_prefixes_are_held_back() {
        let stops = vec!["\n\n".to_string(), "END".to_string()];
        assert_eq!(releasable("hello", &stops), 5);
        assert_eq!(releasable("hello\n", &stops), 5);
        assert_eq!(releasable("hello E", &stops), 6);
        assert_eq!(releasable("hello EN", &stops), 6);
        assert_eq!(releasable("hello ENx", &stops), 9);
        assert_eq!(releasable("hello END", &stops), 6);
        assert_eq!(releasable("a\n\nb", &stops), 1);
        // A multi-byte stop string: only whole-character prefixes count.
        let stops = vec!["→x".to_string()];
        assert_eq!(releasable("a→", &stops), 1);
        assert_eq!(releasable("a", &stops), 1);
    }
}
