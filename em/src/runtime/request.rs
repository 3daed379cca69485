//! A generation request as a value, and what comes back.

use crate::methods::self_consistency::Vote;
use crate::methods::{Method, MethodConfig};
use crate::models::{Cancel, Generation, Message};

/// What the model is asked.
#[derive(Clone, Debug)]
pub enum Prompt {
    /// A conversation, put in the model's chat template. Message text is data: typed
    /// control-token text such as `<|im_start|>` stays characters.
    Chat(Vec<Message>),
    /// Text fed as is (a completion, or a chat the caller rendered). With
    /// `parse_special_tokens`, special-token text in it becomes those tokens, as the
    /// model's own tokenizer reads it.
    Raw {
        /// The text.
        text: String,
        /// Read `<|im_start|>`-like text as control tokens (true) or as characters.
        parse_special_tokens: bool,
    },
    /// Token ids, used as they are.
    Tokens(Vec<u32>),
}

/// Everything one generation depends on besides the model.
#[derive(Clone, Debug)]
pub struct Request {
    /// The prompt.
    pub prompt: Prompt,
    /// Decoding method with its parameters and sampling (temperature, top-k, …).
    pub method: MethodConfig,
    /// At most this many new tokens (lowered to what the context holds).
    pub max_tokens: usize,
    /// Generation ends when the text ends with one of these; it is cut from the output.
    pub stop: Vec<String>,
    /// Seed of the sampler (self-consistency sample i uses `seed + i`).
    pub seed: u64,
    /// A handle that stops the generation from another thread.
    pub cancel: Option<Cancel>,
}

impl Request {
    /// One user message in the chat template, EM-INF with the paper's defaults.
    pub fn chat(user: &str) -> Request {
        Request::new(Prompt::Chat(vec![Message::new("user", user)]))
    }

    /// A whole conversation in the chat template.
    pub fn messages(messages: Vec<Message>) -> Request {
        Request::new(Prompt::Chat(messages))
    }

    /// Raw text, special-token text parsed as the model's tokenizer does.
    pub fn raw(text: &str) -> Request {
        Request::new(Prompt::Raw { text: text.into(), parse_special_tokens: true })
    }

    /// Token ids as they are.
    pub fn tokens(ids: Vec<u32>) -> Request {
        Request::new(Prompt::Tokens(ids))
    }

    /// `prompt` with EM-INF at the paper's defaults, 512 new tokens at most, seed 0.
    pub fn new(prompt: Prompt) -> Request {
        Request {
            prompt,
            method: MethodConfig::new(Method::EmInf),
            max_tokens: 512,
            stop: Vec::new(),
            seed: 0,
            cancel: None,
        }
    }

    /// Put a system message first (chat prompts only; others are left as they are).
    pub fn system(mut self, text: &str) -> Request {
        if let Prompt::Chat(messages) = &mut self.prompt {
            messages.insert(0, Message::new("system", text));
        }
        self
    }

    /// Use `method` with its default parameters.
    pub fn method(mut self, method: Method) -> Request {
        self.method = MethodConfig::new(method);
        self
    }

    /// Use a fully configured method.
    pub fn method_config(mut self, config: MethodConfig) -> Request {
        self.method = config;
        self
    }

    /// At most `n` new tokens.
    pub fn max_tokens(mut self, n: usize) -> Request {
        self.max_tokens = n;
        self
    }

    /// Sampler seed.
    pub fn seed(mut self, seed: u64) -> Request {
        self.seed = seed;
        self
    }

    /// Add a stop string.
    pub fn stop(mut self, text: &str) -> Request {
        self.stop.push(text.into());
        self
    }

    /// Stop when `cancel` is cancelled.
    pub fn cancel(mut self, cancel: Cancel) -> Request {
        self.cancel = Some(cancel);
        self
    }
}

/// The answer to a [`Request`].
#[derive(Clone, Debug)]
pub struct Completion {
    /// The answer: the only sample's text, or under self-consistency the text of a sample
    /// that gave the winning answer.
    pub text: String,
    /// Every sequence generated (one, or the self-consistency samples), with per-token
    /// ids, entropies, log-probs, EM-INF statistics, stop reason and timings.
    pub samples: Vec<Generation>,
    /// Which sample `text` is.
    pub chosen: usize,
    /// Self-consistency's vote (None for other methods).
    pub vote: Option<Vote>,
}

impl Completion {
    /// The sample the answer comes from.
    pub fn generation(&self) -> &Generation {
        &self.samples[self.chosen]
    }
}
