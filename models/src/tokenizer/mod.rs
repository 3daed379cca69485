//! Tokenizer layer over Hugging Face `tokenizers`: loaded from a `tokenizer.json`, or
//! rebuilt from GGUF metadata (`tokenizer.ggml.*`, see [`gguf`]) so that it reproduces
//! the model's original tokenizer id for id: byte-level BPE with the pre-tokenizers of
//! Qwen2, SmolLM / StarCoder, Llama 3 and GPT-2, and SentencePiece-style vocabularies
//! (Llama 2, TinyLlama, Phi-3). Tested against the real tokenizer.json of Qwen and
//! against llama.cpp's own expected ids for each vocabulary (tests/tests/tokenizer.rs).

mod gguf;
mod stream;

use std::path::Path;
use std::sync::OnceLock;

pub use gguf::{GgufVocab, SUPPORTED_PRE};
pub use stream::DecodeStream;

use crate::error::ModelError;
use crate::gguf::GgufFile;

/// Names whose ids end generation when they exist (besides the declared EOS).
const STOP_TOKENS: [&str; 3] = ["<|im_end|>", "<|endoftext|>", "<|eot_id|>"];

type Inner = tokenizers::Tokenizer;

fn tok_err(what: &str, e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(format!("{what}: {e}"))
}

pub struct Tokenizer {
    /// Matches special tokens written in the text (`parse_special = true`).
    inner: Inner,
    /// Clone of `inner` that reads special tokens' text literally; built on first use.
    literal: OnceLock<Inner>,
    /// Ids of the special (control) tokens; collected on first use.
    specials: OnceLock<std::collections::HashSet<u32>>,
    vocab_size: usize,
    unused: Vec<u32>,
    stop: Vec<u32>,
    bos: Option<u32>,
    add_bos: bool,
}

impl Tokenizer {
    /// From a Hugging Face tokenizer.json. A `tokenizer_config.json` next to it, if any,
    /// supplies `eos_token`, `bos_token` and `add_bos_token`.
    pub fn from_file(path: &Path) -> Result<Tokenizer, ModelError> {
        std::fs::metadata(path).map_err(|e| ModelError::io(path, e))?;
        // The tokenizers crate panics on some malformed files (an `expect` in its decoder
        // deserialiser, found by fuzzing): contained here, reported as corrupt.
        let parsed = std::panic::catch_unwind(|| Inner::from_file(path)).map_err(|panic| {
            let why = panic.downcast_ref::<String>().cloned().unwrap_or_else(|| "the parser panicked".into());
            ModelError::corrupt(path, format!("not a valid tokenizer.json: {why}"))
        })?;
        let inner = parsed.map_err(|e| ModelError::corrupt(path, format!("not a valid tokenizer.json: {e}")))?;
        let vocab_size = inner.get_vocab(true).values().map(|&id| id as usize + 1).max().unwrap_or(0);
        let (mut eos, mut bos, mut add_bos) = (None, None, false);
        let config_path = path.with_file_name("tokenizer_config.json");
        if let Ok(text) = std::fs::read_to_string(&config_path) {
            let cfg: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| ModelError::corrupt(&config_path, format!("invalid JSON: {e}")))?;
            let token = |key: &str| {
                let v = cfg.get(key)?;
                let s = v.as_str().or_else(|| v.get("content")?.as_str())?;
                inner.token_to_id(s)
            };
            eos = token("eos_token");
            bos = token("bos_token");
            add_bos = cfg.get("add_bos_token").and_then(|v| v.as_bool()).unwrap_or(false);
        }
        Ok(Self::finish(inner, vocab_size, Vec::new(), eos, bos, add_bos))
    }

    /// Write a Hugging Face tokenizer.json that [`Tokenizer::from_file`] reads back to the same ids.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        self.inner.save(path, false).map_err(|e| ModelError::Tokenizer(format!("writing {}: {e}", path.display())))
    }

    /// Built from the GGUF metadata `tokenizer.ggml.*`.
    pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer, ModelError> {
        Self::from_vocab(GgufVocab::read(file)?)
    }

    /// Built from GGUF tokenizer metadata given as plain data.
    pub fn from_vocab(v: GgufVocab) -> Result<Tokenizer, ModelError> {
        let built = gguf::build(&v)?;
        Ok(Self::finish(built.inner, v.tokens.len(), built.unused, v.eos, v.bos, built.add_bos))
    }

    fn finish(
        inner: Inner,
        vocab_size: usize,
        unused: Vec<u32>,
        eos: Option<u32>,
        bos: Option<u32>,
        add_bos: bool,
    ) -> Tokenizer {
        let mut stop: Vec<u32> = eos.into_iter().collect();
        for name in STOP_TOKENS {
            if let Some(id) = inner.token_to_id(name) {
                if !stop.contains(&id) {
                    stop.push(id);
                }
            }
        }
        Tokenizer { inner, literal: OnceLock::new(), specials: OnceLock::new(), vocab_size, unused, stop, bos, add_bos }
    }

    /// Token ids of `text`. With `parse_special`, special-token text such as
    /// "<|im_start|>" becomes that token (use it for chat-templated prompts); without,
    /// it is tokenised as plain text. A BOS is prepended only when the metadata asks for it.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>, ModelError> {
        let ids = self.encode_without_bos(text, parse_special)?;
        let mut out = Vec::with_capacity(ids.len() + 1);
        out.extend(self.bos_if_added().filter(|&b| ids.first() != Some(&b)));
        out.extend(ids);
        Ok(out)
    }

    /// The BOS id when the metadata asks for one at the start of every encoding.
    pub fn bos_if_added(&self) -> Option<u32> {
        self.bos.filter(|_| self.add_bos)
    }

    /// [`Tokenizer::encode`] without the BOS: for a piece of a longer prompt.
    pub fn encode_without_bos(&self, text: &str, parse_special: bool) -> Result<Vec<u32>, ModelError> {
        let tok = if parse_special {
            &self.inner
        } else {
            self.literal.get_or_init(|| {
                let mut t = self.inner.clone();
                t.set_encode_special_tokens(true);
                t
            })
        };
        let enc = tok.encode_fast(text, false).map_err(|e| tok_err("encode", e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Whether `id` is a special (control) token: matched in text only when parsing
    /// special tokens, left out by `decode(…, skip_special = true)`.
    pub fn is_special(&self, id: u32) -> bool {
        self.specials
            .get_or_init(|| {
                self.inner.get_added_tokens_decoder().into_iter().filter(|(_, t)| t.special).map(|(id, _)| id).collect()
            })
            .contains(&id)
    }

    /// Text of `ids`. With `skip_special`, special (control) tokens are left out.
    /// Ids the tokenizer does not know (≥ `vocab_size()`) are an error; unused ids decode to "".
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, ModelError> {
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= self.vocab_size) {
            return Err(ModelError::Tokenizer(format!(
                "id {bad} is outside the vocabulary of {} tokens",
                self.vocab_size
            )));
        }
        self.inner.decode(ids, skip_special).map_err(|e| tok_err("decode", e))
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Number of ids the tokenizer knows (may be < the model's vocab rows).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Ids that must never be sampled, sorted: GGUF "unused" tokens (padding rows) and every
    /// id from `vocab_size()` up to the model's row count `model_vocab`.
    pub fn unsampleable(&self, model_vocab: usize) -> Vec<u32> {
        let mut ids: Vec<u32> = self.unused.iter().copied().filter(|&id| (id as usize) < model_vocab).collect();
        ids.extend((self.vocab_size..model_vocab).map(|id| id as u32));
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// End-of-generation ids: the EOS id plus "<|im_end|>", "<|endoftext|>", "<|eot_id|>" when present.
    pub fn stop_ids(&self) -> &[u32] {
        &self.stop
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }
}
