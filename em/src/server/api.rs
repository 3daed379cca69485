//! The OpenAI request bodies `entmin serve` accepts, and how each becomes a library
//! [`Request`] (docs/server.md lists every field and extension). Parsing is strict:
//! an unknown field, a wrong type or a value out of range is a 400 naming it.

use serde::Deserialize;

use super::error::ApiError;
use crate::methods::{Method, MethodConfig};
use crate::models::Message;
use crate::runtime::{Prompt, Request};

/// Fields shared by both endpoints: sampling, limits, streaming and entmin's extensions.
/// (Unknown fields are refused by [`check_fields`]: serde cannot deny them through
/// `flatten`.)
#[derive(Deserialize, Debug, Default)]
pub struct Common {
    /// Checked to be a string, not matched: a server serves one model.
    #[allow(dead_code)]
    pub model: Option<String>,
    pub max_tokens: Option<u64>,
    pub max_completion_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub n: Option<u64>,
    pub stop: Option<Stop>,
    pub seed: Option<i64>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    /// Accepted only at their neutral values (0, empty): entmin does not implement them.
    pub frequency_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub logit_bias: Option<serde_json::Map<String, serde_json::Value>>,
    /// Ignored (OpenAI uses it for abuse monitoring).
    #[allow(dead_code)]
    pub user: Option<String>,
    // entmin's extensions.
    pub method: Option<String>,
    pub em_threshold: Option<f32>,
    pub em_lr: Option<f32>,
    pub em_steps: Option<u32>,
    pub em_kl: Option<f32>,
    pub votes: Option<u64>,
    pub top_k: Option<u64>,
    pub min_p: Option<f32>,
}

#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct StreamOptions {
    pub include_usage: Option<bool>,
}

const COMMON_FIELDS: &[&str] = &[
    "model",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "n",
    "stop",
    "seed",
    "stream",
    "stream_options",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "user",
    "method",
    "em_threshold",
    "em_lr",
    "em_steps",
    "em_kl",
    "votes",
    "top_k",
    "min_p",
];

/// The fields of a chat request beyond [`COMMON_FIELDS`].
pub const CHAT_FIELDS: &[&str] = &["messages", "logprobs", "top_logprobs", "response_format"];
/// The fields of a completion request beyond [`COMMON_FIELDS`].
pub const COMPLETION_FIELDS: &[&str] = &["prompt", "logprobs", "echo", "suffix", "best_of", "parse_special_tokens"];

/// Refuse a body that is not an object or has a field neither list names.
pub fn check_fields(body: &serde_json::Value, fields: &[&str]) -> Result<(), ApiError> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::invalid("the request body must be a JSON object", None));
    };
    match obj.keys().find(|k| !fields.contains(&k.as_str()) && !COMMON_FIELDS.contains(&k.as_str())) {
        Some(k) => Err(bad(k, format!("unrecognized request argument supplied: {k}"))),
        None => Ok(()),
    }
}

/// `POST /v1/chat/completions`.
#[derive(Deserialize, Debug)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u64>,
    /// Only `{"type": "text"}`.
    pub response_format: Option<serde_json::Value>,
    #[serde(flatten)]
    pub common: Common,
}

#[derive(Deserialize, Debug)]
pub struct ChatMessage {
    pub role: String,
    pub content: Option<Content>,
    /// Accepted, not shown to the model (chat templates have no place for it).
    #[allow(dead_code)]
    pub name: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Deserialize, Debug)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

/// `POST /v1/completions`.
#[derive(Deserialize, Debug)]
pub struct CompletionRequest {
    pub prompt: PromptField,
    /// The legacy API's integer: how many alternatives per token (0–20).
    pub logprobs: Option<u64>,
    pub echo: Option<bool>,
    pub suffix: Option<String>,
    pub best_of: Option<u64>,
    /// Read special-token text in the prompt as control tokens (default false: the
    /// prompt is data, so `<|im_start|>` typed by a user stays characters).
    pub parse_special_tokens: Option<bool>,
    #[serde(flatten)]
    pub common: Common,
}

#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum PromptField {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

/// What the server was started with that requests fall back on.
#[derive(Clone, Debug)]
pub struct Defaults {
    /// Decoding method of requests that name none.
    pub method: Method,
    /// OpenAI's documented default is 1; `--default-temperature` changes it.
    pub temperature: f32,
    /// When a request gives no max_tokens: chat takes up to this many (what the context
    /// leaves, if less), completions OpenAI's 16.
    pub chat_max_tokens: usize,
    /// Most choices (n) per request.
    pub max_n: usize,
}

/// A validated request: the library request, its choices, streaming and logprobs.
#[derive(Debug)]
pub struct Parsed {
    pub requests: Vec<Request>,
    pub choices: usize,
    /// True when the request gave max_tokens: going over the context is then an error,
    /// not a lower cap.
    pub explicit_max_tokens: bool,
    pub stream: bool,
    pub include_usage: bool,
    /// None: no logprobs; Some(k): logprobs with k alternatives.
    pub logprobs: Option<usize>,
    pub method: Method,
}

fn bad(param: &str, msg: impl Into<String>) -> ApiError {
    ApiError::invalid(msg, Some(param))
}

impl Common {
    fn parse(&self, defaults: &Defaults, default_max_tokens: usize) -> Result<Parsed, ApiError> {
        let method = match &self.method {
            None => defaults.method,
            Some(m) => Method::parse(m).ok_or_else(|| {
                let names: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
                bad("method", format!("unknown method {m:?}; one of {}", names.join(", ")))
            })?,
        };
        let mut c = MethodConfig::new(method);
        let temperature = self.temperature.map_or(defaults.temperature as f64, |t| t);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(bad("temperature", format!("temperature {temperature} is outside [0, 2]")));
        }
        c.sampling.temperature = temperature as f32;
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(bad("top_p", format!("top_p {p} is outside (0, 1]")));
            }
            c.sampling.top_p = p as f32;
        }
        if let Some(k) = self.top_k {
            c.sampling.top_k = k as usize;
        }
        if let Some(p) = self.min_p {
            if !(0.0..=1.0).contains(&p) {
                return Err(bad("min_p", format!("min_p {p} is outside [0, 1]")));
            }
            c.sampling.min_p = p;
        }
        if let Some(x) = self.em_threshold {
            c.em_inf.threshold = x;
            c.adaptive.threshold = x;
        }
        if let Some(x) = self.em_lr {
            c.em_inf.lr = x;
        }
        if let Some(x) = self.em_steps {
            c.em_inf.max_steps = x;
        }
        if let Some(x) = self.em_kl {
            c.em_inf.kl_weight = x;
        }
        c.em_inf.validate().map_err(|e| bad("em_inf", e.to_string()))?;
        if let Some(v) = self.votes {
            if v == 0 || v as usize > defaults.max_n {
                return Err(bad("votes", format!("votes must be 1..={}", defaults.max_n)));
            }
            c.votes = v as usize;
        }
        let n = self.n.unwrap_or(1);
        if n == 0 || n as usize > defaults.max_n {
            return Err(bad("n", format!("n must be 1..={}", defaults.max_n)));
        }
        for (name, v) in [("frequency_penalty", self.frequency_penalty), ("presence_penalty", self.presence_penalty)] {
            if v.is_some_and(|v| v != 0.0) {
                return Err(bad(name, format!("{name} is not supported (only 0)")));
            }
        }
        if self.logit_bias.as_ref().is_some_and(|m| !m.is_empty()) {
            return Err(bad("logit_bias", "logit_bias is not supported"));
        }
        let max_tokens = match (self.max_completion_tokens, self.max_tokens) {
            (Some(m), _) | (None, Some(m)) => Some(m),
            (None, None) => None,
        };
        if max_tokens == Some(0) {
            return Err(bad("max_tokens", "max_tokens must be at least 1"));
        }
        let stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        if stop.len() > 4 || stop.iter().any(|s| s.is_empty()) {
            return Err(bad("stop", "stop takes up to 4 non-empty strings"));
        }
        let include_usage = self.stream_options.as_ref().and_then(|o| o.include_usage).unwrap_or(false);
        if self.stream_options.is_some() && self.stream != Some(true) {
            return Err(bad("stream_options", "stream_options is only allowed with stream: true"));
        }
        let seed = match self.seed {
            Some(s) => s as u64,
            None => random_seed(),
        };
        let mut template = Request::new(Prompt::Tokens(Vec::new()))
            .method_config(c)
            .max_tokens(max_tokens.map_or(default_max_tokens, |m| m.min(usize::MAX as u64) as usize))
            .seed(seed);
        template.stop = stop;
        Ok(Parsed {
            requests: vec![template],
            choices: n as usize,
            explicit_max_tokens: max_tokens.is_some(),
            stream: self.stream.unwrap_or(false),
            include_usage,
            logprobs: None,
            method,
        })
    }
}

/// A seed for a request that gives none (OpenAI samples afresh each time).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}

impl ChatRequest {
    pub fn parse(self, defaults: &Defaults) -> Result<Parsed, ApiError> {
        let mut parsed = self.common.parse(defaults, defaults.chat_max_tokens)?;
        if let Some(f) = &self.response_format {
            if f.get("type").and_then(|t| t.as_str()) != Some("text") {
                return Err(bad("response_format", "only response_format {\"type\": \"text\"} is supported"));
            }
        }
        let top = self.top_logprobs.unwrap_or(0);
        if top > 20 {
            return Err(bad("top_logprobs", "top_logprobs must be 0..=20"));
        }
        if top > 0 && self.logprobs != Some(true) {
            return Err(bad("top_logprobs", "top_logprobs needs logprobs: true"));
        }
        parsed.logprobs = (self.logprobs == Some(true)).then_some(top as usize);
        if self.messages.is_empty() {
            return Err(bad("messages", "messages must not be empty"));
        }
        let mut messages = Vec::with_capacity(self.messages.len());
        for (i, m) in self.messages.iter().enumerate() {
            let role = match m.role.as_str() {
                "system" | "developer" => "system",
                "user" => "user",
                "assistant" => "assistant",
                other => {
                    return Err(bad(
                        &format!("messages[{i}].role"),
                        format!("role {other:?} is not supported (system, developer, user, assistant)"),
                    ))
                }
            };
            let text = match &m.content {
                None => String::new(),
                Some(Content::Text(t)) => t.clone(),
                Some(Content::Parts(parts)) => {
                    let mut t = String::new();
                    for (j, p) in parts.iter().enumerate() {
                        match (p.kind.as_str(), &p.text) {
                            ("text", Some(x)) => t.push_str(x),
                            _ => {
                                return Err(bad(
                                    &format!("messages[{i}].content[{j}]"),
                                    format!("content part of type {:?} is not supported (text only)", p.kind),
                                ))
                            }
                        }
                    }
                    t
                }
            };
            messages.push(Message::new(role, &text));
        }
        parsed.requests[0].prompt = Prompt::Chat(messages);
        Ok(parsed)
    }
}

impl CompletionRequest {
    pub fn parse(self, defaults: &Defaults) -> Result<Parsed, ApiError> {
        let mut parsed = self.common.parse(defaults, 16)?;
        if self.echo == Some(true) {
            return Err(bad("echo", "echo is not supported"));
        }
        if self.suffix.is_some() {
            return Err(bad("suffix", "suffix is not supported"));
        }
        if self.best_of.is_some_and(|b| b != 1) {
            return Err(bad("best_of", "best_of is not supported (only 1)"));
        }
        if let Some(k) = self.logprobs {
            if k > 20 {
                return Err(bad("logprobs", "logprobs must be 0..=20"));
            }
            parsed.logprobs = Some(k as usize);
        }
        let special = self.parse_special_tokens.unwrap_or(false);
        let text = |t: &str| Prompt::Raw { text: t.to_string(), parse_special_tokens: special };
        let prompts: Vec<Prompt> = match self.prompt {
            PromptField::Text(t) => vec![text(&t)],
            PromptField::Texts(ts) => ts.iter().map(|t| text(t)).collect(),
            PromptField::Tokens(ids) => vec![Prompt::Tokens(ids)],
            PromptField::TokenLists(ls) => ls.into_iter().map(Prompt::Tokens).collect(),
        };
        if prompts.is_empty() {
            return Err(bad("prompt", "prompt must not be empty"));
        }
        if prompts.len() * parsed.choices > defaults.max_n {
            return Err(bad("prompt", format!("prompts × n must be at most {}", defaults.max_n)));
        }
        let template = parsed.requests.pop().expect("one template");
        parsed.requests = prompts
            .into_iter()
            .map(|p| {
                let mut r = template.clone();
                r.prompt = p;
                r
            })
            .collect();
        Ok(parsed)
    }
}
