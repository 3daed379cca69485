//! Model hyper-parameters, read from GGUF metadata or a Hugging Face config.json,
//! and checked for consistency before any weight is loaded.

use std::path::Path;

use serde_json::Value;

use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// Llama family (SmolLM2, Llama 2/3 without rope scaling).
    Llama,
    /// Qwen2 / Qwen2.5: biases on q, k, v.
    Qwen2,
}

impl Architecture {
    pub fn parse(name: &str, path: &Path) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "llama" | "llamaforcausallm" => Ok(Architecture::Llama),
            "qwen2" | "qwen2forcausallm" => Ok(Architecture::Qwen2),
            _ => Err(ModelError::unsupported(
                path,
                format!("unknown architecture {name:?}: entmin supports llama and qwen2"),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub arch: Architecture,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub rope_theta: f32,
    pub rms_eps: f32,
    pub context_length: usize,
    pub tie_embeddings: bool,
    /// Biases on the q, k and v projections (Qwen2).
    pub qkv_bias: bool,
}

/// Context length assumed when a config.json gives none (transformers' Llama default).
pub const DEFAULT_HF_CONTEXT: usize = 2048;

impl ModelConfig {
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let path = file.path();
        let arch_name = file
            .require("general.architecture")?
            .as_str()
            .ok_or_else(|| ModelError::corrupt(path, "general.architecture is not a string"))?;
        let arch = Architecture::parse(arch_name, path)?;
        let key = |k: &str| format!("{arch_name}.{k}");
        let int = |k: &str| -> Result<usize> {
            let full = key(k);
            file.require(&full)?
                .as_u64()
                .map(|v| v as usize)
                .ok_or_else(|| ModelError::corrupt(path, format!("{full} is not an integer")))
        };
        let float = |k: &str, default: f64| -> Result<f32> {
            let full = key(k);
            match file.get(&full) {
                None => Ok(default as f32),
                Some(v) => v
                    .as_f64()
                    .map(|v| v as f32)
                    .ok_or_else(|| ModelError::corrupt(path, format!("{full} is not a number"))),
            }
        };
        let hidden_size = int("embedding_length")?;
        let n_heads = int("attention.head_count")?;
        let embd = file
            .tensor_info("token_embd.weight")
            .ok_or_else(|| ModelError::MissingTensor { path: path.into(), tensor: "token_embd.weight".into() })?;
        let vocab_size = match file.get(&key("vocab_size")).and_then(|v| v.as_u64()) {
            Some(v) => v as usize,
            None => embd.shape[0],
        };
        let cfg = ModelConfig {
            arch,
            hidden_size,
            intermediate_size: int("feed_forward_length")?,
            n_layers: int("block_count")?,
            n_heads,
            n_kv_heads: match file.get(&key("attention.head_count_kv")) {
                Some(v) => {
                    v.as_u64().ok_or_else(|| ModelError::corrupt(path, "head_count_kv is not an integer"))? as usize
                }
                None => n_heads,
            },
            head_dim: match file.get(&key("attention.key_length")).and_then(|v| v.as_u64()) {
                Some(v) => v as usize,
                None => hidden_size / n_heads.max(1),
            },
            vocab_size,
            rope_theta: float("rope.freq_base", 10_000.0)?,
            rms_eps: float("attention.layer_norm_rms_epsilon", 1e-6)?,
            context_length: int("context_length")?,
            tie_embeddings: file.tensor_info("output.weight").is_none(),
            qkv_bias: arch == Architecture::Qwen2,
        };
        if file.tensor_info("rope_freqs.weight").is_some() {
            return Err(ModelError::unsupported(
                path,
                "tensor rope_freqs.weight holds per-dimension rope frequency factors (Llama 3.1-style rope \
                 scaling), which entmin does not implement",
            ));
        }
        if let Some(scaling) = file.get(&key("rope.scaling.type")).and_then(|v| v.as_str()) {
            if scaling != "none" {
                return Err(ModelError::unsupported(path, format!("rope scaling {scaling:?} is not supported")));
            }
        }
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// The config of a Hugging Face config.json, with a note for each default it had to
    /// assume (a value the file does not give).
    pub fn from_hf_json(path: &Path) -> Result<(Self, Vec<String>)> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| ModelError::corrupt(path, format!("invalid JSON: {e}")))?;
        let arch_name = v["model_type"]
            .as_str()
            .or_else(|| v["architectures"][0].as_str())
            .ok_or_else(|| ModelError::corrupt(path, "neither model_type nor architectures is set"))?;
        let arch = Architecture::parse(arch_name, path)?;
        let int = |k: &str| -> Result<usize> {
            v[k].as_u64()
                .map(|x| x as usize)
                .ok_or_else(|| ModelError::corrupt(path, format!("{k} is missing or not an integer")))
        };
        let float = |k: &str, default: f64| -> Result<f32> {
            match &v[k] {
                Value::Null => Ok(default as f32),
                x => x
                    .as_f64()
                    .map(|x| x as f32)
                    .ok_or_else(|| ModelError::corrupt(path, format!("{k} is not a number"))),
            }
        };
        if !v["rope_scaling"].is_null() {
            return Err(ModelError::unsupported(path, format!("rope_scaling {} is not supported", v["rope_scaling"])));
        }
        let hidden_size = int("hidden_size")?;
        let n_heads = int("num_attention_heads")?;
        let cfg = ModelConfig {
            arch,
            hidden_size,
            intermediate_size: int("intermediate_size")?,
            n_layers: int("num_hidden_layers")?,
            n_heads,
            n_kv_heads: v["num_key_value_heads"].as_u64().map_or(n_heads, |x| x as usize),
            head_dim: v["head_dim"].as_u64().map_or(hidden_size / n_heads.max(1), |x| x as usize),
            vocab_size: int("vocab_size")?,
            rope_theta: float("rope_theta", 10_000.0)?,
            rms_eps: float("rms_norm_eps", 1e-6)?,
            context_length: v["max_position_embeddings"].as_u64().map_or(DEFAULT_HF_CONTEXT, |x| x as usize),
            tie_embeddings: v["tie_word_embeddings"].as_bool().unwrap_or(false),
            qkv_bias: arch == Architecture::Qwen2 || v["attention_bias"].as_bool().unwrap_or(false),
        };
        cfg.validate(path)?;
        let mut notes = Vec::new();
        if v["max_position_embeddings"].is_null() {
            notes.push(format!(
                "{} has no max_position_embeddings: assuming a context of {DEFAULT_HF_CONTEXT} tokens",
                path.display()
            ));
        }
        Ok((cfg, notes))
    }

    /// Reject configurations no weights could match.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |msg: String| Err(ModelError::corrupt(path, msg));
        if self.hidden_size == 0
            || self.n_layers == 0
            || self.n_heads == 0
            || self.n_kv_heads == 0
            || self.vocab_size == 0
        {
            return bad(format!("config has a zero size: {self:?}"));
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return bad(format!("{} attention heads is not a multiple of {} kv heads", self.n_heads, self.n_kv_heads));
        }
        if !self.head_dim.is_multiple_of(2) {
            return bad(format!("head_dim {} is odd; rotary embedding needs it even", self.head_dim));
        }
        if !(self.rope_theta > 0.0 && self.rms_eps >= 0.0) {
            return bad(format!("rope_theta {} / rms_eps {} out of range", self.rope_theta, self.rms_eps));
        }
        // Sizes far beyond any model (the largest open ones: hidden 16384, vocabulary 256k,
        // FFN 53248, 128 layers) are corrupt numbers, and would overflow the products that
        // size tensors and caches (found by fuzzing config.json).
        for (what, n, max) in [
            ("hidden_size", self.hidden_size, 1 << 20),
            ("intermediate_size", self.intermediate_size, 1 << 22),
            ("vocab_size", self.vocab_size, 1 << 24),
            ("head_dim", self.head_dim, 1 << 16),
            ("attention heads", self.n_heads, 1 << 16),
            ("layers", self.n_layers, 1 << 16),
            ("context length", self.context_length, 1 << 30),
        ] {
            if n > max {
                return bad(format!("{what} {n} is beyond any model (at most {max})"));
            }
        }
        let largest = [self.vocab_size, self.intermediate_size, self.q_dim()]
            .iter()
            .map(|&n| n.checked_mul(self.hidden_size.max(self.q_dim())))
            .try_fold(0usize, |m, x| x.map(|x| m.max(x)));
        match largest {
            Some(n) if n <= 1 << 40 => Ok(()),
            _ => bad(format!("a weight matrix of this config would hold more than 2^40 values: {self:?}")),
        }
    }

    /// Every tensor the decoder reads, as (Hugging Face name, row-major shape).
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (h, q, kv, f, v) = (self.hidden_size, self.q_dim(), self.kv_dim(), self.intermediate_size, self.vocab_size);
        let mut t = vec![("model.embed_tokens.weight".to_string(), vec![v, h])];
        for l in 0..self.n_layers {
            let p = format!("model.layers.{l}");
            t.push((format!("{p}.input_layernorm.weight"), vec![h]));
            t.push((format!("{p}.post_attention_layernorm.weight"), vec![h]));
            for (name, out) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
                t.push((format!("{p}.self_attn.{name}.weight"), vec![out, h]));
                if self.qkv_bias {
                    t.push((format!("{p}.self_attn.{name}.bias"), vec![out]));
                }
            }
            t.push((format!("{p}.self_attn.o_proj.weight"), vec![h, q]));
            t.push((format!("{p}.mlp.gate_proj.weight"), vec![f, h]));
            t.push((format!("{p}.mlp.up_proj.weight"), vec![f, h]));
            t.push((format!("{p}.mlp.down_proj.weight"), vec![h, f]));
        }
        t.push(("model.norm.weight".to_string(), vec![h]));
        if !self.tie_embeddings {
            t.push(("lm_head.weight".to_string(), vec![v, h]));
        }
        t
    }

    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Parameter count (embedding counted once when tied).
    pub fn n_params(&self) -> usize {
        let (h, q, kv, f) = (self.hidden_size, self.q_dim(), self.kv_dim(), self.intermediate_size);
        let attn = h * q + 2 * h * kv + q * h + if self.qkv_bias { q + 2 * kv } else { 0 };
        let layer = attn + 3 * h * f + 2 * h;
        let head = if self.tie_embeddings { 0 } else { self.vocab_size * h };
        self.vocab_size * h + self.n_layers * layer + h + head
    }
}
