//! The fuzz targets: one per parser of untrusted input. A target returns Err when a
//! property that must hold for every input is broken (a parse error is not that: it is
//! the expected answer to most inputs); a panic is a crash. Both are findings.

use std::path::{Path, PathBuf};

use entmin::answer::{extract_answer, is_equivalent};
use entmin::engine::cpu::CpuBackend;
use entmin::engine::DType;
use entmin::models::gguf::GgufFile;
use entmin::models::tokenizer::Tokenizer;
use entmin::models::{ChatTemplate, Message, ModelConfig};

/// What the targets share: a scratch folder, and the real tokenizers and chat templates
/// of the cached models (absent ones are skipped).
pub struct Fixtures {
    pub dir: PathBuf,
    /// The real tokenizers of the catalog models that are cached.
    pub tokenizers: Vec<RealTokenizer>,
    pub templates: Vec<(String, ChatTemplate)>,
    /// A small valid tokenizer.json, for the safetensors target's folder.
    pub tiny_tokenizer_json: Vec<u8>,
    pub tiny_config_json: Vec<u8>,
}

pub struct RealTokenizer {
    pub name: String,
    pub tokenizer: Tokenizer,
    /// Its control tokens (chat role markers, end of text).
    pub control: Vec<u32>,
    /// Bytes its vocabulary has no token for (SmolLM2 lacks six control characters): the
    /// model's own tokenizer drops them too, so round trips are compared without them.
    pub unrepresentable: Vec<u8>,
}

pub struct Target {
    pub name: &'static str,
    pub about: &'static str,
    pub run: fn(&Fixtures, &[u8]) -> Result<(), String>,
}

pub const TARGETS: [Target; 9] = [
    Target { name: "gguf", about: "GGUF header, metadata, tensor table, dequantisation, full load", run: gguf },
    Target { name: "safetensors", about: "safetensors header and tensors of a Hugging Face folder", run: safetensors },
    Target { name: "config-json", about: "Hugging Face config.json", run: config_json },
    Target { name: "tokenizer-json", about: "tokenizer.json loading, then an encode/decode", run: tokenizer_json },
    Target {
        name: "tokenize",
        about: "the real tokenizers on any text: literal text never yields a control token; round trips",
        run: tokenize,
    },
    Target {
        name: "chat-messages",
        about: "the real chat templates on hostile messages: rendered verbatim, no panic",
        run: chat_messages,
    },
    Target {
        name: "chat-template",
        about: "hostile chat templates (GGUF metadata) rendered under a fuel limit",
        run: chat_template,
    },
    Target { name: "dataset-jsonl", about: "dataset JSONL (questions, gold answers, prompts)", run: dataset_jsonl },
    Target { name: "answer", about: "answer extraction and equivalence: x ≡ x for every extracted x", run: answer },
];

pub fn find(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

fn scratch(f: &Fixtures, name: &str, bytes: &[u8]) -> PathBuf {
    let p = f.dir.join(name);
    std::fs::write(&p, bytes).expect("scratch folder is writable");
    p
}

fn gguf(f: &Fixtures, data: &[u8]) -> Result<(), String> {
    let path = scratch(f, "fuzz.gguf", data);
    if let Ok(file) = GgufFile::open(&path) {
        for t in file.tensors.iter().filter(|t| t.byte_len <= 1 << 22) {
            let _ = file.tensor_as(t, DType::F32);
        }
        let _ = ModelConfig::from_gguf(&file);
        let _ = Tokenizer::from_gguf(&file);
    }
    let _ = entmin::models::load(&CpuBackend, &path, DType::F32);
    Ok(())
}

fn hf_folder(f: &Fixtures, name: &str) -> PathBuf {
    let dir = f.dir.join(name);
    std::fs::create_dir_all(&dir).expect("scratch folder is writable");
    dir
}

fn safetensors(f: &Fixtures, data: &[u8]) -> Result<(), String> {
    let dir = hf_folder(f, "hf-safetensors");
    std::fs::write(dir.join("config.json"), &f.tiny_config_json).expect("writable");
    std::fs::write(dir.join("tokenizer.json"), &f.tiny_tokenizer_json).expect("writable");
    std::fs::write(dir.join("model.safetensors"), data).expect("writable");
    let _ = entmin::models::load(&CpuBackend, &dir, DType::F32);
    Ok(())
}

fn config_json(f: &Fixtures, data: &[u8]) -> Result<(), String> {
    let path = scratch(f, "config.json", data);
    if let Ok((c, _)) = ModelConfig::from_hf_json(&path) {
        // What validate() lets through must be usable: sizes multiply without overflow.
        if c.q_dim().checked_mul(c.hidden_size).is_none() {
            return Err(format!("accepted a config whose sizes overflow: {c:?}"));
        }
    }
    Ok(())
}

fn tokenizer_json(f: &Fixtures, data: &[u8]) -> Result<(), String> {
    let path = scratch(f, "tokenizer.json", data);
    if let Ok(t) = Tokenizer::from_file(&path) {
        if let Ok(ids) = t.encode("Hello, wörld! 123 <|im_start|>", true) {
            let _ = t.decode(&ids, false);
        }
    }
    Ok(())
}

fn text_of(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

fn tokenize(f: &Fixtures, data: &[u8]) -> Result<(), String> {
    let text = text_of(data);
    for RealTokenizer { name, tokenizer: t, control, unrepresentable } in &f.tokenizers {
        let literal = t.encode(&text, false).map_err(|e| format!("{name}: encode failed: {e}"))?;
        // User text is data: read literally it never becomes a control token (the chat
        // template's role markers), whatever it contains.
        if let Some(id) = literal.iter().find(|id| control.contains(id)) {
            return Err(format!("{name}: literal text {text:?} gave control token {id}"));
        }
        let ids = match t.bos_id() {
            Some(b) if literal.first() == Some(&b) => &literal[1..],
            _ => &literal[..],
        };
        let back = t.decode(ids, false).map_err(|e| format!("{name}: decode failed: {e}"))?;
        // The bytes a token exists for, read back as UTF-8 the way the decoder does.
        let kept: Vec<u8> = text.bytes().filter(|b| !unrepresentable.contains(b)).collect();
        let representable = String::from_utf8_lossy(&kept);
        // SmolLM2 has no normaliser: exact round trip. Qwen normalises to NFC, which
        // leaves ASCII unchanged.
        if (name.starts_with("smollm2") || text.is_ascii()) && back != representable {
            return Err(format!("{name}: decode(encode({representable:?})) = {back:?}"));
        }
        let _ = t.encode(&text, true).map_err(|e| format!("{name}: encode with specials failed: {e}"))?;
    }
    Ok(())
}

/// Messages from the input: fields split at U+0001, roles cycling.
fn messages_of(data: &[u8]) -> Vec<Message> {
    let roles = ["system", "user", "assistant", "user"];
    text_of(data).split('\u{1}').enumerate().map(|(i, c)| Message::new(roles[i % roles.len()], c)).collect()
}

fn chat_messages(f: &Fixtures, data: &[u8]) -> Result<(), String> {
    let messages = messages_of(data);
    for (name, t) in &f.templates {
        match t.render(&messages) {
            Ok(out) => {
                // The real templates insert every message's content as it is.
                if let Some(m) = messages.iter().find(|m| !out.contains(m.content.as_str())) {
                    return Err(format!("{name}: content {:?} is not in the rendered prompt", m.content));
                }
            }
            // Templates may refuse a conversation (raise_exception on role order).
            Err(_) => {}
        }
    }
    Ok(())
}

fn chat_template(_: &Fixtures, data: &[u8]) -> Result<(), String> {
    let t = ChatTemplate::new(Some(text_of(data)), "<s>", "</s>");
    let _ = t.render(&[Message::new("system", "S"), Message::new("user", "Q {{ x }}")]);
    Ok(())
}

fn dataset_jsonl(f: &Fixtures, data: &[u8]) -> Result<(), String> {
    let path = scratch(f, "data.jsonl", data);
    let _ = entmin::dataset::read_jsonl(&path, "question", "answer");
    let _ = entmin::dataset::read_jsonl(&path, "problem", "solution");
    let _ = entmin::dataset::load_prompts(path.to_str().expect("UTF-8 scratch path"), None, &entmin::progress::Quiet);
    Ok(())
}

/// Text, then the gold answer after a U+0001.
fn answer(_: &Fixtures, data: &[u8]) -> Result<(), String> {
    let text = text_of(data);
    let (response, gold) = text.split_once('\u{1}').unwrap_or((&text, "42"));
    let extracted = extract_answer(response);
    let _ = is_equivalent(extracted.as_deref().unwrap_or(""), gold);
    let _ = is_equivalent(gold, response);
    if let Some(x) = &extracted {
        if !is_equivalent(x, x) {
            return Err(format!("extracted answer {x:?} is not equivalent to itself"));
        }
    }
    Ok(())
}

/// Remove the scratch folder's files between runs of the path-based targets.
pub fn clean(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::create_dir_all(dir);
}
