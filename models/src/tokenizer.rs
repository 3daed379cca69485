//! Tokenizer layer over Hugging Face `tokenizers`: loaded from a `tokenizer.json`, or
//! rebuilt from GGUF metadata (`tokenizer.ggml.*`) as a byte-level BPE that reproduces the
//! model's original tokenizer (checked id for id against the real Qwen tokenizer.json).
//!
//! GGUF token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
//! Control tokens become special added tokens (matched in text only when `parse_special`,
//! dropped by `decode(.., skip_special = true)`); user-defined ones become non-special added
//! tokens (always matched as whole tokens, never skipped) — exactly how the real Qwen
//! tokenizer.json declares `<tool_call>`; unused ones (padding rows) are left out of the
//! vocabulary and reported by [`Tokenizer::unsampleable`].

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use crate::error::ModelError;
use crate::gguf::GgufFile;

/// Pre-tokenizer regex of Qwen2 (`tokenizer.ggml.pre = "qwen2"`), as in its tokenizer.json.
pub const QWEN2_REGEX: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Names whose ids end generation when they exist (besides the declared EOS).
const STOP_TOKENS: [&str; 3] = ["<|im_end|>", "<|endoftext|>", "<|eot_id|>"];

const TYPE_CONTROL: i64 = 3;
const TYPE_USER_DEFINED: i64 = 4;
const TYPE_UNUSED: i64 = 5;

type Inner = tokenizers::Tokenizer;

pub struct Tokenizer {
    /// Matches special tokens written in the text (`parse_special = true`).
    inner: Inner,
    /// Clone of `inner` that reads special tokens' text literally; built on first use.
    literal: OnceLock<Inner>,
    vocab_size: usize,
    unused: Vec<u32>,
    stop: Vec<u32>,
    bos: Option<u32>,
    add_bos: bool,
}

/// The tokenizer part of GGUF metadata, as plain data (so that it can be built in tests).
#[derive(Clone, Debug, Default)]
pub struct GgufVocab {
    /// The file it came from, for error messages.
    pub path: PathBuf,
    /// `tokenizer.ggml.model`: only "gpt2" (byte-level BPE) is supported.
    pub model: String,
    /// `tokenizer.ggml.pre`: "qwen2", "smollm"; anything else gets the GPT-2 regex.
    pub pre: String,
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type`, one per token; empty means all normal.
    pub token_types: Vec<i64>,
    /// `tokenizer.ggml.merges`: "left right" pairs in rank order.
    pub merges: Vec<String>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub add_bos: bool,
}

fn tok_err(what: &str, e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(format!("{what}: {e}"))
}

impl GgufVocab {
    /// Reads `tokenizer.ggml.*` from a GGUF file.
    pub fn read(file: &GgufFile) -> Result<GgufVocab, ModelError> {
        let path = file.path();
        let bad = |key: &str, what: &str| ModelError::corrupt(path, format!("metadata {key} is not {what}"));
        let string = |key: &str| -> Result<Option<String>, ModelError> {
            match file.get(key) {
                None => Ok(None),
                Some(v) => v.as_str().map(|s| Some(s.to_string())).ok_or_else(|| bad(key, "a string")),
            }
        };
        let strings = |key: &str| -> Result<Vec<String>, ModelError> {
            let Some(v) = file.get(key) else { return Ok(Vec::new()) };
            let arr = v.as_array().ok_or_else(|| bad(key, "an array"))?;
            arr.iter().map(|s| s.as_str().map(str::to_string).ok_or_else(|| bad(key, "an array of strings"))).collect()
        };
        let id = |key: &str| -> Result<Option<u32>, ModelError> {
            match file.get(key) {
                None => Ok(None),
                Some(v) => {
                    v.as_u64().and_then(|x| u32::try_from(x).ok()).map(Some).ok_or_else(|| bad(key, "a token id"))
                }
            }
        };
        let model = string("tokenizer.ggml.model")?.ok_or_else(|| {
            ModelError::corrupt(path, "missing metadata key tokenizer.ggml.model (no tokenizer in this GGUF)")
        })?;
        let token_types = match file.get("tokenizer.ggml.token_type") {
            None => Vec::new(),
            Some(v) => v
                .as_array()
                .ok_or_else(|| bad("tokenizer.ggml.token_type", "an array"))?
                .iter()
                .map(|t| t.as_i64().ok_or_else(|| bad("tokenizer.ggml.token_type", "an array of integers")))
                .collect::<Result<_, _>>()?,
        };
        let add_bos = match file.get("tokenizer.ggml.add_bos_token") {
            None => false,
            Some(crate::gguf::GgufValue::Bool(b)) => *b,
            Some(_) => return Err(bad("tokenizer.ggml.add_bos_token", "a bool")),
        };
        Ok(GgufVocab {
            path: path.to_path_buf(),
            model,
            pre: string("tokenizer.ggml.pre")?.unwrap_or_default(),
            tokens: strings("tokenizer.ggml.tokens")?,
            token_types,
            merges: strings("tokenizer.ggml.merges")?,
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            add_bos,
        })
    }
}

impl Tokenizer {
    /// From a Hugging Face tokenizer.json. A `tokenizer_config.json` next to it, if any,
    /// supplies `eos_token`, `bos_token` and `add_bos_token`.
    pub fn from_file(path: &Path) -> Result<Tokenizer, ModelError> {
        std::fs::metadata(path).map_err(|e| ModelError::io(path, e))?;
        let inner = Inner::from_file(path)
            .map_err(|e| ModelError::corrupt(path, format!("not a valid tokenizer.json: {e}")))?;
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
        let path = v.path.as_path();
        if v.model != "gpt2" {
            return Err(ModelError::unsupported(
                path,
                format!(
                    "tokenizer.ggml.model = {:?} is not supported: entmin builds only byte-level BPE tokenizers (\"gpt2\")",
                    v.model
                ),
            ));
        }
        let n = v.tokens.len();
        if n == 0 {
            return Err(ModelError::corrupt(path, "tokenizer.ggml.tokens is missing or empty"));
        }
        if !v.token_types.is_empty() && v.token_types.len() != n {
            return Err(ModelError::corrupt(
                path,
                format!("tokenizer.ggml.token_type has {} entries for {n} tokens", v.token_types.len()),
            ));
        }
        for (key, id) in [("bos_token_id", v.bos), ("eos_token_id", v.eos)] {
            if let Some(id) = id.filter(|&id| id as usize >= n) {
                return Err(ModelError::corrupt(
                    path,
                    format!("tokenizer.ggml.{key} {id} is not below the {n} tokens"),
                ));
            }
        }
        let ty = |i: usize| v.token_types.get(i).copied().unwrap_or(1);

        let mut vocab = Vocab::with_capacity(n);
        let mut unused = Vec::new();
        let mut added = Vec::new();
        for (i, tok) in v.tokens.iter().enumerate() {
            let id = i as u32;
            match ty(i) {
                TYPE_UNUSED => {
                    unused.push(id);
                    continue;
                }
                // special=true: matched only when parsing specials, skippable on decode.
                TYPE_CONTROL => added.push(AddedToken::from(tok.as_str(), true).normalized(false)),
                // special=false: always matched as a whole token, never skipped.
                TYPE_USER_DEFINED => added.push(AddedToken::from(tok.as_str(), false).normalized(false)),
                _ => {}
            }
            // Added tokens stay in the BPE vocabulary so that they keep their GGUF ids.
            vocab.insert(tok.clone(), id);
        }
        let merges = v
            .merges
            .iter()
            .enumerate()
            .map(|(i, m)| {
                m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())).ok_or_else(|| {
                    ModelError::corrupt(path, format!("tokenizer.ggml.merges[{i}] = {m:?} is not \"left right\""))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| ModelError::corrupt(path, format!("cannot build the BPE tokenizer: {e}")))?;

        let mut inner = Inner::new(bpe);
        let pre: PreTokenizerWrapper = match v.pre.as_str() {
            "qwen2" => {
                inner.with_normalizer(Some(NormalizerWrapper::NFC(NFC)));
                let split =
                    Split::new(SplitPattern::Regex(QWEN2_REGEX.into()), SplitDelimiterBehavior::Isolated, false)
                        .map_err(|e| tok_err("qwen2 pre-tokenizer regex", e))?;
                Sequence::new(vec![split.into(), ByteLevel::new(false, false, false).into()]).into()
            }
            "smollm" => Sequence::new(vec![Digits::new(true).into(), ByteLevel::new(false, false, true).into()]).into(),
            // GPT-2's own regex, inside ByteLevel.
            _ => ByteLevel::new(false, false, true).into(),
        };
        inner.with_pre_tokenizer(Some(pre));
        inner.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())));
        inner.add_special_tokens(&added);
        Ok(Self::finish(inner, n, unused, v.eos, v.bos, v.add_bos))
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
        Tokenizer { inner, literal: OnceLock::new(), vocab_size, unused, stop, bos, add_bos }
    }

    /// Token ids of `text`. With `parse_special`, special-token text such as
    /// "<|im_start|>" becomes that token (use it for chat-templated prompts); without,
    /// it is tokenised as plain text. A BOS is prepended only when the metadata asks for it.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>, ModelError> {
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
        let ids = enc.get_ids();
        let mut out = Vec::with_capacity(ids.len() + 1);
        if let Some(bos) = self.bos.filter(|&b| self.add_bos && ids.first() != Some(&b)) {
            out.push(bos);
        }
        out.extend_from_slice(ids);
        Ok(out)
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

/// Incremental detokeniser for streaming: push ids one at a time and get the text they
/// complete. Text is held back while it ends in an incomplete UTF-8 character (a byte-level
/// token carrying only part of a character), so the concatenated pieces equal
/// `decode(all ids)` once the last character is complete.
pub struct DecodeStream<'a> {
    tok: &'a Tokenizer,
    skip_special: bool,
    /// Recent ids: the context chunk already emitted (`..prefix_index`) and pending ones.
    ids: Vec<u32>,
    /// Text of `ids[..prefix_index]`, already emitted.
    prefix: String,
    prefix_index: usize,
}

impl<'a> DecodeStream<'a> {
    pub fn new(tok: &'a Tokenizer, skip_special: bool) -> Self {
        DecodeStream { tok, skip_special, ids: Vec::new(), prefix: String::new(), prefix_index: 0 }
    }

    /// Adds one id; returns the newly completed text ("" when it is still pending).
    pub fn push(&mut self, id: u32) -> Result<String, ModelError> {
        if self.prefix.is_empty() && !self.ids.is_empty() {
            let text = self.tok.decode(&self.ids, self.skip_special)?;
            if !text.ends_with('\u{FFFD}') {
                self.prefix = text;
                self.prefix_index = self.ids.len();
            }
        }
        self.ids.push(id);
        let text = self.tok.decode(&self.ids, self.skip_special)?;
        if text.len() <= self.prefix.len() || text.ends_with('\u{FFFD}') {
            return Ok(String::new());
        }
        let Some(new) = text.strip_prefix(self.prefix.as_str()) else {
            return Err(ModelError::Tokenizer(format!(
                "streaming decode: text {text:?} after id {id} does not extend {:?}",
                self.prefix
            )));
        };
        let new = new.to_string();
        self.ids.drain(..self.prefix_index);
        self.prefix = self.tok.decode(&self.ids, self.skip_special)?;
        self.prefix_index = self.ids.len();
        Ok(new)
    }

    /// Text still held back (an incomplete character at the very end, decoded lossily).
    pub fn finish(self) -> Result<String, ModelError> {
        let text = self.tok.decode(&self.ids, self.skip_special)?;
        Ok(text.get(self.prefix.len()..).unwrap_or_default().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte-level vocabulary: the 256 byte symbols, a few merges, specials, padding.
    fn toy(model: &str, pre: &str) -> GgufVocab {
        let mut tokens: Vec<String> = (0u8..=255).map(|b| byte_symbol(b).to_string()).collect();
        let mut types = vec![1i64; 256];
        for (t, ty) in [
            ("he", 1),
            ("ll", 1),
            ("hell", 1),
            ("hello", 1),
            ("<|im_start|>", 3),
            ("<|im_end|>", 3),
            ("<tool>", 4),
            ("[PAD]", 5),
        ] {
            tokens.push(t.to_string());
            types.push(ty);
        }
        GgufVocab {
            path: PathBuf::from("/models/toy.gguf"),
            model: model.into(),
            pre: pre.into(),
            tokens,
            token_types: types,
            merges: vec!["h e".into(), "l l".into(), "he ll".into(), "hell o".into()],
            bos: None,
            eos: Some(261),
            add_bos: false,
        }
    }

    /// GPT-2's byte → printable-char table.
    fn byte_symbol(b: u8) -> char {
        let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        if printable(b) {
            return b as char;
        }
        let n = (0..b).filter(|&x| !printable(x)).count() as u32;
        char::from_u32(256 + n).unwrap()
    }

    #[test]
    fn unknown_model_is_a_clear_error() {
        let err = Tokenizer::from_vocab(toy("llama", "default")).err().expect("must fail").to_string();
        assert!(err.contains("/models/toy.gguf") && err.contains("\"llama\""), "{err}");
    }

    #[test]
    fn bad_metadata_is_an_error() {
        let mut v = toy("gpt2", "qwen2");
        v.token_types.pop();
        assert!(Tokenizer::from_vocab(v).is_err());
        let mut v = toy("gpt2", "qwen2");
        v.merges.push("nospace".into());
        assert!(Tokenizer::from_vocab(v).is_err());
        let mut v = toy("gpt2", "qwen2");
        v.eos = Some(10_000);
        assert!(Tokenizer::from_vocab(v).is_err());
    }

    #[test]
    fn toy_vocabulary() {
        for pre in ["qwen2", "smollm", "whatever"] {
            let t = Tokenizer::from_vocab(toy("gpt2", pre)).unwrap();
            assert_eq!(t.vocab_size(), 264);
            assert_eq!(t.encode("hello", true).unwrap(), vec![259]);
            let ids = t.encode("<|im_start|>hello<tool><|im_end|>", true).unwrap();
            assert_eq!(ids, vec![260, 259, 262, 261]);
            // Literal specials are split into bytes; user-defined tokens still match.
            let lit = t.encode("<|im_start|><tool>", false).unwrap();
            assert!(lit.len() > 2 && lit.ends_with(&[262]) && !lit.contains(&260), "{lit:?}");
            assert_eq!(t.decode(&ids, false).unwrap(), "<|im_start|>hello<tool><|im_end|>");
            assert_eq!(t.decode(&ids, true).unwrap(), "hello<tool>");
            assert_eq!(t.stop_ids(), &[261]);
            assert_eq!(t.unsampleable(266), vec![263, 264, 265]);
            assert_eq!(t.token_to_id("[PAD]"), None);
            assert!(t.decode(&[300], false).is_err());
        }
    }

    #[test]
    fn stream_holds_partial_characters() {
        let t = Tokenizer::from_vocab(toy("gpt2", "smollm")).unwrap();
        let text = "hé€😀 hello";
        let ids = t.encode(text, true).unwrap();
        let mut s = DecodeStream::new(&t, false);
        let mut out = String::new();
        for &id in &ids {
            let piece = s.push(id).unwrap();
            assert!(!piece.contains('\u{FFFD}'));
            out += &piece;
        }
        out += &s.finish().unwrap();
        assert_eq!(out, text);
    }
}
