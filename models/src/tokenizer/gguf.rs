//! Tokenizers rebuilt from GGUF metadata (`tokenizer.ggml.*`).
//!
//! GGUF token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
//! Control (and unknown) tokens become special added tokens (matched in text only when
//! `parse_special`, dropped by `decode(.., skip_special = true)`); user-defined ones become
//! non-special added tokens (always matched as whole tokens, never skipped) — exactly how
//! the real Qwen tokenizer.json declares `<tool_call>`; unused ones (padding rows) are left
//! out of the vocabulary and reported by [`super::Tokenizer::unsampleable`].
//!
//! - `tokenizer.ggml.model = "gpt2"`: byte-level BPE over the file's merges, split first
//!   by the pre-tokenizer `tokenizer.ggml.pre` names. Only names whose splitting is known
//!   and tested are accepted ([`SUPPORTED_PRE`]); any other is an error, never a guess,
//!   since a wrong split gives ids the model was not trained on.
//! - `tokenizer.ggml.model = "llama"` (SentencePiece): tokens with scores and no merges.
//!   SentencePiece's BPE merges, at each step, the adjacent pair whose joined piece has the
//!   highest score; that is BPE with the merge list "every (a, b) whose a + b is a normal
//!   token, ranked by the score of a + b", which is how it is built here. Spaces become
//!   `▁`, one is prepended (`add_space_prefix`, default on), and characters outside the
//!   vocabulary fall back to the `<0xXX>` byte tokens.

use std::collections::HashMap;
use std::path::PathBuf;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::replace::Replace;
use tokenizers::normalizers::unicode::NFC;
use tokenizers::normalizers::{NormalizerWrapper, Prepend, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use super::{tok_err, Inner};
use crate::error::ModelError;
use crate::gguf::{GgufFile, GgufValue};

/// Pre-tokenizer regex of Qwen2 (`tokenizer.ggml.pre = "qwen2"`), as in its tokenizer.json.
pub const QWEN2_REGEX: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Pre-tokenizer regex of Llama 3 (`llama-bpe`), as in its tokenizer.json: Qwen2's with
/// numbers split into groups of up to three digits.
pub const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The `tokenizer.ggml.pre` names a byte-level BPE vocabulary may have, each tested
/// against llama.cpp's expected ids for a real vocabulary of that kind.
pub const SUPPORTED_PRE: [&str; 8] =
    ["qwen2", "smollm", "starcoder", "refact", "llama-bpe", "llama3", "llama-v3", "gpt-2"];

const TYPE_UNKNOWN: i64 = 2;
const TYPE_CONTROL: i64 = 3;
const TYPE_USER_DEFINED: i64 = 4;
const TYPE_UNUSED: i64 = 5;

/// The tokenizer part of GGUF metadata, as plain data (so that it can be built in tests).
#[derive(Clone, Debug, Default)]
pub struct GgufVocab {
    /// The file it came from, for error messages.
    pub path: PathBuf,
    /// `tokenizer.ggml.model`: "gpt2" (byte-level BPE) or "llama" (SentencePiece).
    pub model: String,
    /// `tokenizer.ggml.pre`: one of [`SUPPORTED_PRE`] for "gpt2".
    pub pre: String,
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type`, one per token; empty means all normal.
    pub token_types: Vec<i64>,
    /// `tokenizer.ggml.merges`: "left right" pairs in rank order ("gpt2").
    pub merges: Vec<String>,
    /// `tokenizer.ggml.scores`, one per token ("llama").
    pub scores: Vec<f32>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub unknown: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`; absent: on for SentencePiece and Llama 3, as llama.cpp.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix` ("llama"); absent: on.
    pub add_space_prefix: Option<bool>,
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
        let array = |key: &str| -> Result<&[GgufValue], ModelError> {
            match file.get(key) {
                None => Ok(&[]),
                Some(v) => v.as_array().ok_or_else(|| bad(key, "an array")),
            }
        };
        let strings = |key: &str| -> Result<Vec<String>, ModelError> {
            array(key)?
                .iter()
                .map(|s| s.as_str().map(str::to_string).ok_or_else(|| bad(key, "an array of strings")))
                .collect()
        };
        let id = |key: &str| -> Result<Option<u32>, ModelError> {
            match file.get(key) {
                None => Ok(None),
                Some(v) => {
                    v.as_u64().and_then(|x| u32::try_from(x).ok()).map(Some).ok_or_else(|| bad(key, "a token id"))
                }
            }
        };
        let flag = |key: &str| -> Result<Option<bool>, ModelError> {
            match file.get(key) {
                None => Ok(None),
                Some(GgufValue::Bool(b)) => Ok(Some(*b)),
                Some(_) => Err(bad(key, "a bool")),
            }
        };
        let model = string("tokenizer.ggml.model")?.ok_or_else(|| {
            ModelError::corrupt(path, "missing metadata key tokenizer.ggml.model (no tokenizer in this GGUF)")
        })?;
        let token_types = array("tokenizer.ggml.token_type")?
            .iter()
            .map(|t| t.as_i64().ok_or_else(|| bad("tokenizer.ggml.token_type", "an array of integers")))
            .collect::<Result<_, _>>()?;
        let scores = array("tokenizer.ggml.scores")?
            .iter()
            .map(|t| t.as_f64().map(|x| x as f32).ok_or_else(|| bad("tokenizer.ggml.scores", "an array of numbers")))
            .collect::<Result<_, _>>()?;
        Ok(GgufVocab {
            path: path.to_path_buf(),
            model,
            pre: string("tokenizer.ggml.pre")?.unwrap_or_default(),
            tokens: strings("tokenizer.ggml.tokens")?,
            token_types,
            merges: strings("tokenizer.ggml.merges")?,
            scores,
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            unknown: id("tokenizer.ggml.unknown_token_id")?,
            add_bos: flag("tokenizer.ggml.add_bos_token")?,
            add_space_prefix: flag("tokenizer.ggml.add_space_prefix")?,
        })
    }
}

/// A tokenizer built from a [`GgufVocab`], before the stop ids are worked out.
pub(super) struct Built {
    pub inner: Inner,
    pub unused: Vec<u32>,
    pub add_bos: bool,
}

pub(super) fn build(v: &GgufVocab) -> Result<Built, ModelError> {
    let path = v.path.as_path();
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
    for (key, id) in [("bos_token_id", v.bos), ("eos_token_id", v.eos), ("unknown_token_id", v.unknown)] {
        if let Some(id) = id.filter(|&id| id as usize >= n) {
            return Err(ModelError::corrupt(path, format!("tokenizer.ggml.{key} {id} is not below the {n} tokens")));
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
            TYPE_CONTROL | TYPE_UNKNOWN => added.push(AddedToken::from(tok.as_str(), true).normalized(false)),
            // special=false: always matched as a whole token, never skipped.
            TYPE_USER_DEFINED => added.push(AddedToken::from(tok.as_str(), false).normalized(false)),
            _ => {}
        }
        // Added tokens stay in the BPE vocabulary so that they keep their GGUF ids.
        if vocab.insert(tok.clone(), id).is_some() {
            return Err(ModelError::corrupt(path, format!("tokenizer.ggml.tokens lists {tok:?} twice")));
        }
    }
    let (mut inner, add_bos) = match v.model.as_str() {
        "gpt2" => byte_level_bpe(v, vocab)?,
        "llama" => sentencepiece(v, vocab, &ty)?,
        other => {
            return Err(ModelError::unsupported(
                path,
                format!(
                    "tokenizer.ggml.model = {other:?} is not supported: entmin builds byte-level BPE (\"gpt2\") \
                     and SentencePiece (\"llama\") tokenizers"
                ),
            ))
        }
    };
    inner.add_special_tokens(&added);
    Ok(Built { inner, unused, add_bos })
}

fn byte_level_bpe(v: &GgufVocab, vocab: Vocab) -> Result<(Inner, bool), ModelError> {
    let path = v.path.as_path();
    let (regex, digits_first, nfc, ignore_merges, default_bos) = match v.pre.as_str() {
        "qwen2" => (Some(QWEN2_REGEX), false, true, false, false),
        "smollm" | "starcoder" | "refact" => (None, true, false, false, false),
        "llama-bpe" | "llama3" | "llama-v3" => (Some(LLAMA3_REGEX), false, false, true, true),
        "gpt-2" => (None, false, false, false, false),
        "" => {
            return Err(ModelError::unsupported(
                path,
                format!(
                    "tokenizer.ggml.pre is missing: entmin will not guess how this vocabulary splits text \
                     (supported: {})",
                    SUPPORTED_PRE.join(", ")
                ),
            ))
        }
        other => {
            return Err(ModelError::unsupported(
                path,
                format!(
                    "tokenizer.ggml.pre = {other:?} is not supported: its text splitting is unknown to entmin, \
                     and a wrong split gives ids the model was not trained on (supported: {})",
                    SUPPORTED_PRE.join(", ")
                ),
            ))
        }
    };
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
        .ignore_merges(ignore_merges)
        .build()
        .map_err(|e| ModelError::corrupt(path, format!("cannot build the BPE tokenizer: {e}")))?;
    let mut inner = Inner::new(bpe);
    if nfc {
        inner.with_normalizer(Some(NormalizerWrapper::NFC(NFC)));
    }
    let pre: PreTokenizerWrapper = match (regex, digits_first) {
        (Some(regex), _) => {
            let split = Split::new(SplitPattern::Regex(regex.into()), SplitDelimiterBehavior::Isolated, false)
                .map_err(|e| tok_err("pre-tokenizer regex", e))?;
            Sequence::new(vec![split.into(), ByteLevel::new(false, false, false).into()]).into()
        }
        (None, true) => Sequence::new(vec![Digits::new(true).into(), ByteLevel::new(false, false, true).into()]).into(),
        // GPT-2's own regex, inside ByteLevel.
        (None, false) => ByteLevel::new(false, false, true).into(),
    };
    inner.with_pre_tokenizer(Some(pre));
    inner.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())));
    Ok((inner, v.add_bos.unwrap_or(default_bos)))
}

fn sentencepiece(v: &GgufVocab, vocab: Vocab, ty: &dyn Fn(usize) -> i64) -> Result<(Inner, bool), ModelError> {
    let path = v.path.as_path();
    if v.scores.len() != v.tokens.len() {
        return Err(ModelError::corrupt(
            path,
            format!("tokenizer.ggml.scores has {} entries for {} tokens", v.scores.len(), v.tokens.len()),
        ));
    }
    let merges = merges_from_scores(&v.tokens, &v.scores, ty);
    let unk = v.unknown.or_else(|| v.tokens.iter().position(|t| t == "<unk>").map(|i| i as u32)).ok_or_else(|| {
        ModelError::corrupt(path, "a SentencePiece vocabulary needs tokenizer.ggml.unknown_token_id or an <unk>")
    })?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .unk_token(v.tokens[unk as usize].clone())
        .fuse_unk(true)
        .byte_fallback(true)
        .build()
        .map_err(|e| ModelError::corrupt(path, format!("cannot build the SentencePiece tokenizer: {e}")))?;
    let mut inner = Inner::new(bpe);
    let space = |to: &str, from: &str| Replace::new(from, to).map_err(|e| tok_err("SentencePiece normaliser", e));
    let prefix = v.add_space_prefix.unwrap_or(true);
    let mut normalizers = Vec::new();
    if prefix {
        normalizers.push(NormalizerWrapper::Prepend(Prepend::new("\u{2581}".into())));
    }
    normalizers.push(NormalizerWrapper::Replace(space("\u{2581}", " ")?));
    inner.with_normalizer(Some(NormalizerWrapper::Sequence(NormalizerSequence::new(normalizers))));
    let mut decoders = vec![
        DecoderWrapper::Replace(space(" ", "\u{2581}")?),
        DecoderWrapper::ByteFallback(ByteFallback::new()),
        DecoderWrapper::Fuse(Fuse::new()),
    ];
    if prefix {
        decoders.push(DecoderWrapper::Strip(Strip::new(' ', 1, 0)));
    }
    inner.with_decoder(Some(DecoderWrapper::Sequence(DecoderSequence::new(decoders))));
    Ok((inner, v.add_bos.unwrap_or(true)))
}

/// SentencePiece's merge order as a BPE merge list: every split (a, b) of a normal token
/// whose halves are both tokens, ranked by the token's score (highest first; ties by id).
fn merges_from_scores(tokens: &[String], scores: &[f32], ty: &dyn Fn(usize) -> i64) -> Vec<(String, String)> {
    let index: HashMap<&str, usize> = tokens.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
    let mut ranked = Vec::new();
    for (i, t) in tokens.iter().enumerate().filter(|&(i, _)| ty(i) == 1) {
        for (k, _) in t.char_indices().skip(1) {
            let (a, b) = t.split_at(k);
            if index.contains_key(a) && index.contains_key(b) {
                ranked.push((scores[i], i, a, b));
            }
        }
    }
    ranked.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
    ranked.into_iter().map(|(_, _, a, b)| (a.to_string(), b.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::{DecodeStream, Tokenizer};

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
            eos: Some(261),
            ..Default::default()
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
    fn unknown_model_or_pre_tokenizer_is_a_clear_error() {
        let err = Tokenizer::from_vocab(toy("bert", "default")).err().expect("must fail").to_string();
        assert!(err.contains("/models/toy.gguf") && err.contains("\"bert\""), "{err}");
        // An unknown split is refused, not replaced by GPT-2's.
        let err = Tokenizer::from_vocab(toy("gpt2", "deepseek-llm")).err().expect("must fail").to_string();
        assert!(err.contains("\"deepseek-llm\"") && err.contains("qwen2"), "{err}");
        let err = Tokenizer::from_vocab(toy("gpt2", "")).err().expect("must fail").to_string();
        assert!(err.contains("tokenizer.ggml.pre is missing"), "{err}");
        // SentencePiece needs one score per token.
        let err = Tokenizer::from_vocab(toy("llama", "default")).err().expect("must fail").to_string();
        assert!(err.contains("tokenizer.ggml.scores"), "{err}");
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
        for pre in ["qwen2", "smollm", "llama-bpe", "gpt-2"] {
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
