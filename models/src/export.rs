//! Save a model as a Hugging Face folder (config.json, model.safetensors,
//! tokenizer.json, tokenizer_config.json, generation_config.json) that both
//! entmin and transformers load. The folder appears atomically and durably: it is
//! written beside the target, synced to the disk, and renamed into place
//! ([`crate::durable`]), so neither a crash nor a power loss leaves half a model.

use std::path::{Path, PathBuf};

use entmin_engine::{Backend, DType};
use safetensors::tensor::TensorView;
use serde_json::json;

use crate::config::Architecture;
use crate::error::{ModelError, Result};
use crate::loader::LoadedModel;

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("JSON values serialise");
    std::fs::write(path, text).map_err(|e| ModelError::io(path, e))
}

/// Write `lm` to `dir` with weight matrices stored as `dtype`; norms and biases stay f32.
pub fn save_hf_folder<B: Backend>(backend: &B, lm: &LoadedModel<B>, dir: &Path, dtype: DType) -> Result<()> {
    if dtype.is_quantised() {
        return Err(ModelError::Invalid(format!("safetensors folders hold f32, f16 or bf16 matrices, not {dtype}")));
    }
    let name = dir.file_name().ok_or_else(|| ModelError::Invalid(format!("{} is not a folder name", dir.display())))?;
    let parent = dir.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    std::fs::create_dir_all(&parent).map_err(|e| ModelError::io(&parent, e))?;
    let staging = parent.join(format!(".{}.partial-{}", name.to_string_lossy(), std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| ModelError::io(&staging, e))?;
    let written = write_folder(backend, lm, &staging, dtype)
        .and_then(|()| crate::durable::sync_tree(&staging).map_err(|e| ModelError::io(&staging, e)));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    let old = parent.join(format!(".{}.old-{}", name.to_string_lossy(), std::process::id()));
    if dir.exists() {
        crate::durable::rename(dir, &old).map_err(|e| ModelError::io(dir, e))?;
    }
    crate::durable::rename(&staging, dir).map_err(|e| ModelError::io(dir, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

fn write_folder<B: Backend>(backend: &B, lm: &LoadedModel<B>, dir: &Path, dtype: DType) -> Result<()> {
    // Only dense dtypes reach here (save_hf_folder refuses block formats).
    let st_dtype = |d: DType| match d {
        DType::BF16 => safetensors::Dtype::BF16,
        DType::F16 => safetensors::Dtype::F16,
        _ => safetensors::Dtype::F32,
    };
    let torch_dtype = match dtype {
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        _ => "float32",
    };
    let mut buffers = Vec::new();
    for (name, t) in lm.model.named_parameters() {
        let data = backend.to_host_f32(t)?;
        // Norms and biases stay f32, as the model holds them; matrices take `dtype`.
        let dtype = if t.shape().len() == 1 { DType::F32 } else { dtype };
        let bytes: Vec<u8> = match dtype {
            DType::BF16 => data.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect(),
            DType::F16 => data.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect(),
            _ => data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        };
        buffers.push((name, t.shape().to_vec(), dtype, bytes));
    }
    let views: Vec<(String, TensorView<'_>)> = buffers
        .iter()
        .map(|(n, shape, dtype, bytes)| {
            let view = TensorView::new(st_dtype(*dtype), shape.clone(), bytes).expect("byte length matches the shape");
            (n.clone(), view)
        })
        .collect();
    let st_path = dir.join("model.safetensors");
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(meta), &st_path)
        .map_err(|e| ModelError::corrupt(&st_path, format!("writing safetensors: {e}")))?;

    let c = &lm.model.config;
    let tok = &lm.tokenizer;
    let (model_type, class) = match c.arch {
        Architecture::Llama => ("llama", "LlamaForCausalLM"),
        Architecture::Qwen2 => ("qwen2", "Qwen2ForCausalLM"),
    };
    let eos: Vec<u32> = lm.stop_ids.clone();
    write_json(
        &dir.join("config.json"),
        &json!({
            "architectures": [class],
            "model_type": model_type,
            "hidden_size": c.hidden_size,
            "intermediate_size": c.intermediate_size,
            "num_hidden_layers": c.n_layers,
            "num_attention_heads": c.n_heads,
            "num_key_value_heads": c.n_kv_heads,
            "head_dim": c.head_dim,
            "vocab_size": c.vocab_size,
            "rope_theta": c.rope_theta,
            "rms_norm_eps": c.rms_eps,
            "max_position_embeddings": c.context_length,
            "tie_word_embeddings": c.tie_embeddings,
            "attention_bias": c.qkv_bias,
            "hidden_act": "silu",
            "torch_dtype": torch_dtype,
            "bos_token_id": tok.bos_id(),
            "eos_token_id": eos.first(),
        }),
    )?;
    write_json(&dir.join("generation_config.json"), &json!({ "bos_token_id": tok.bos_id(), "eos_token_id": eos }))?;
    let mut tcfg = json!({
        "bos_token": lm.chat.bos_token(),
        "eos_token": lm.chat.eos_token(),
        "add_bos_token": false,
    });
    if let Some(src) = lm.chat.source() {
        tcfg["chat_template"] = json!(src);
    }
    write_json(&dir.join("tokenizer_config.json"), &tcfg)?;
    tok.save(&dir.join("tokenizer.json"))
}
