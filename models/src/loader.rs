//! Open a model from a `.gguf` file or a Hugging Face folder: config, weights,
//! tokenizer, chat template and stop tokens, all checked against each other.

use std::path::{Path, PathBuf};

use entmin_engine::Backend;

use crate::chat::ChatTemplate;
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;
use crate::model::Model;
use crate::tokenizer::Tokenizer;
use crate::weights::{GgufSource, SafetensorsSource, WeightDtype};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Gguf,
    HfFolder,
}

pub struct LoadedModel<B: Backend> {
    pub model: Model<B>,
    pub tokenizer: Tokenizer,
    pub chat: ChatTemplate,
    pub path: PathBuf,
    pub format: Format,
    /// Storage types found in the file, e.g. "Q4_K, Q6_K, F32".
    pub file_dtypes: String,
    /// Each tensor's type in the file, by Hugging Face name ("Q5_0", "BF16").
    pub file_types: std::collections::BTreeMap<String, String>,
    /// Token ids that end a generation.
    pub stop_ids: Vec<u32>,
    /// Token ids never to sample (padding rows and ids the tokenizer does not know).
    pub banned_ids: Vec<u32>,
    /// What loading assumed or left out that the user should know (defaults taken,
    /// tensors ignored), one sentence each.
    pub notices: Vec<String>,
}

/// Open a model; its matrices are held as `weights` says ([`WeightDtype::Auto`]: the
/// file's own types where the backend takes them).
pub fn load<B: Backend>(backend: &B, path: &Path, weights: impl Into<WeightDtype>) -> Result<LoadedModel<B>> {
    let weight_dtype = weights.into();
    if path.is_dir() {
        load_hf_folder(backend, path, weight_dtype)
    } else if path.exists() {
        load_gguf(backend, path, weight_dtype)
    } else {
        Err(ModelError::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder")))
    }
}

#[allow(clippy::too_many_arguments)]
fn finish<B: Backend>(
    model: Model<B>,
    tokenizer: Tokenizer,
    chat: ChatTemplate,
    path: &Path,
    format: Format,
    file_dtypes: String,
    file_types: std::collections::BTreeMap<String, String>,
    extra_stops: &[u32],
    notices: Vec<String>,
) -> Result<LoadedModel<B>> {
    let vocab = model.config.vocab_size;
    if tokenizer.vocab_size() > vocab {
        return Err(ModelError::corrupt(
            path,
            format!("tokenizer knows {} tokens but the model has only {vocab} vocabulary rows", tokenizer.vocab_size()),
        ));
    }
    let mut stop_ids: Vec<u32> =
        tokenizer.stop_ids().iter().chain(extra_stops).copied().filter(|&i| (i as usize) < vocab).collect();
    stop_ids.sort_unstable();
    stop_ids.dedup();
    let banned_ids = tokenizer.unsampleable(vocab);
    Ok(LoadedModel {
        model,
        tokenizer,
        chat,
        path: path.to_path_buf(),
        format,
        file_dtypes,
        file_types,
        stop_ids,
        banned_ids,
        notices,
    })
}

/// Tensors in the file that the decoder does not read. Where they would change its
/// output — anything of a layer, the embedding, the final norm or the head: a norm or a
/// bias this architecture lacks — loading fails: ignoring them would give a silently
/// wrong model. Rotary-frequency caches (recomputed by the decoder), a tied model's stored
/// head copy and tensors outside the decoder are listed in a notice.
fn check_unused(
    path: &Path,
    config: &ModelConfig,
    present: &[String],
    used: &std::collections::HashSet<String>,
) -> Result<Vec<String>> {
    let mut ignored = Vec::new();
    for name in present.iter().filter(|n| !used.contains(n.as_str())) {
        let recomputed = name.ends_with("rotary_emb.inv_freq") || name.ends_with("attn_rot_embd");
        let tied_head = config.tie_embeddings && (name == "lm_head.weight" || name == "output.weight");
        let in_decoder =
            ["blk.", "model.layers.", "token_embd.", "output", "model.norm.", "model.embed_tokens.", "lm_head."]
                .iter()
                .any(|p| name.starts_with(p));
        if in_decoder && !recomputed && !tied_head {
            return Err(ModelError::unsupported(
                path,
                format!(
                    "tensor {name} is not part of the {} decoder entmin implements and would change its output \
                     (a norm, bias or projection this architecture lacks)",
                    config.arch.name()
                ),
            ));
        }
        ignored.push(name.clone());
    }
    if ignored.is_empty() {
        return Ok(Vec::new());
    }
    let shown: Vec<&str> = ignored.iter().take(8).map(String::as_str).collect();
    let more =
        if ignored.len() > shown.len() { format!(" and {} more", ignored.len() - shown.len()) } else { String::new() };
    Ok(vec![format!(
        "{}: {} tensor(s) not used by the model were ignored: {}{more}",
        path.display(),
        ignored.len(),
        shown.join(", ")
    )])
}

fn load_gguf<B: Backend>(backend: &B, path: &Path, weight_dtype: WeightDtype) -> Result<LoadedModel<B>> {
    let file = GgufFile::open(path)?;
    let config = ModelConfig::from_gguf(&file)?;
    let tokenizer = Tokenizer::from_gguf(&file)?;
    let token_text = |key: &str| -> String {
        file.get(key).and_then(|v| v.as_u64()).and_then(|id| tokenizer.id_to_token(id as u32)).unwrap_or_default()
    };
    let chat = ChatTemplate::new(
        file.get("tokenizer.chat_template").and_then(|v| v.as_str()).map(String::from),
        &token_text("tokenizer.ggml.bos_token_id"),
        &token_text("tokenizer.ggml.eos_token_id"),
    );
    let mut types: Vec<&str> = file.tensors.iter().map(|t| t.ggml_type.name()).collect();
    types.sort_unstable();
    types.dedup();
    let used: std::collections::HashSet<String> =
        config.tensor_shapes().iter().filter_map(|(hf, _)| crate::weights::gguf_name(hf)).collect();
    let present: Vec<String> = file.tensors.iter().map(|t| t.name.clone()).collect();
    let mut notices = check_unused(path, &config, &present, &used)?;
    let file_types = config
        .tensor_shapes()
        .into_iter()
        .filter_map(|(hf, _)| {
            let info = file.tensor_info(&crate::weights::gguf_name(&hf)?)?;
            Some((hf, info.ggml_type.name().to_string()))
        })
        .collect();
    let model = Model::load(backend, config.clone(), &GgufSource { file: &file, config: &config }, weight_dtype)?;
    notices.extend(model.load_notices.iter().cloned());
    finish(model, tokenizer, chat, path, Format::Gguf, types.join(", "), file_types, &[], notices)
}

fn read_json(path: &Path) -> Result<Option<serde_json::Value>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    serde_json::from_str(&text).map(Some).map_err(|e| ModelError::corrupt(path, format!("invalid JSON: {e}")))
}

/// A special token in tokenizer_config.json is either a string or {"content": ...}.
fn token_field(v: &serde_json::Value) -> String {
    v.as_str().or_else(|| v["content"].as_str()).unwrap_or_default().to_string()
}

fn load_hf_folder<B: Backend>(backend: &B, dir: &Path, weight_dtype: WeightDtype) -> Result<LoadedModel<B>> {
    let (config, mut notices) = ModelConfig::from_hf_json(&dir.join("config.json"))?;
    let tok_path = dir.join("tokenizer.json");
    if !tok_path.exists() {
        return Err(ModelError::corrupt(dir, "tokenizer.json is missing"));
    }
    let tokenizer = Tokenizer::from_file(&tok_path)?;
    let tcfg = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or_default();
    let chat = ChatTemplate::new(
        tcfg["chat_template"].as_str().map(String::from),
        &token_field(&tcfg["bos_token"]),
        &token_field(&tcfg["eos_token"]),
    );
    let mut extra_stops = Vec::new();
    if let Some(gen) = read_json(&dir.join("generation_config.json"))? {
        match &gen["eos_token_id"] {
            serde_json::Value::Array(ids) => {
                extra_stops.extend(ids.iter().filter_map(|i| i.as_u64()).map(|i| i as u32))
            }
            v => extra_stops.extend(v.as_u64().map(|i| i as u32)),
        }
    }
    let src = SafetensorsSource::open(dir)?;
    let used: std::collections::HashSet<String> = config.tensor_shapes().into_iter().map(|(n, _)| n).collect();
    notices.extend(check_unused(dir, &config, &src.names(), &used)?);
    let file_types = used.iter().filter_map(|n| Some((n.clone(), src.dtype_name(n)?))).collect();
    let model = Model::load(backend, config, &src, weight_dtype)?;
    notices.extend(model.load_notices.iter().cloned());
    finish(model, tokenizer, chat, dir, Format::HfFolder, "safetensors".into(), file_types, &extra_stops, notices)
}
