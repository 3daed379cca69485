//! The shapes and per-tensor storage formats of each catalog model, read off its GGUF
//! file, for `entmin bench --synthetic NAME`: random weights laid out as the real model
//! (models/src/synthetic.rs). A test checks each entry against the real file where it
//! is cached (em/tests/synthetic.rs).

use crate::error::{Error, Result};
use entmin_models::gguf::GgmlType;
use entmin_models::synthetic::SyntheticSource;
use entmin_models::{Architecture, ModelConfig};

/// Layers whose attn_v and ffn_down the Q4_K_M mixes of the Qwen files store with more
/// bits (llama.cpp's choice when quantising; listed as found in the files).
const QWEN_0_5B_MORE_BITS: [usize; 12] = [0, 1, 3, 6, 7, 8, 9, 10, 13, 16, 19, 21];
const QWEN_1_5B_MORE_BITS: [usize; 14] = [0, 1, 5, 6, 7, 8, 9, 10, 13, 16, 19, 21, 24, 27];

fn role(name: &str) -> &str {
    name.strip_prefix("blk.").and_then(|r| r.split_once('.')).map_or(name, |(_, role)| role)
}

fn smollm2_format(name: &str, _layer: Option<usize>) -> GgmlType {
    match role(name) {
        "token_embd.weight" => GgmlType::Q8_0,
        r if r.ends_with("norm.weight") => GgmlType::F32,
        _ => GgmlType::Q4_1,
    }
}

fn qwen_0_5b_format(name: &str, layer: Option<usize>) -> GgmlType {
    let more = layer.is_some_and(|l| QWEN_0_5B_MORE_BITS.contains(&l));
    match role(name) {
        "output.weight" => GgmlType::Q8_0,
        r if r.ends_with("norm.weight") || r.ends_with(".bias") => GgmlType::F32,
        "attn_v.weight" if more => GgmlType::Q8_0,
        "ffn_down.weight" if more => GgmlType::Q6K,
        "ffn_down.weight" => GgmlType::Q4K,
        _ => GgmlType::Q5_0,
    }
}

fn qwen_1_5b_format(name: &str, layer: Option<usize>) -> GgmlType {
    let more = layer.is_some_and(|l| QWEN_1_5B_MORE_BITS.contains(&l));
    match role(name) {
        "output.weight" => GgmlType::Q6K,
        r if r.ends_with("norm.weight") || r.ends_with(".bias") => GgmlType::F32,
        "attn_v.weight" | "ffn_down.weight" if more => GgmlType::Q6K,
        _ => GgmlType::Q4K,
    }
}

#[allow(clippy::too_many_arguments)]
fn config(
    arch: Architecture,
    layers: usize,
    hidden: usize,
    ffn: usize,
    heads: usize,
    kv_heads: usize,
    vocab: usize,
    rope_theta: f32,
    rms_eps: f32,
    context: usize,
    tie: bool,
) -> ModelConfig {
    ModelConfig {
        arch,
        hidden_size: hidden,
        intermediate_size: ffn,
        n_layers: layers,
        n_heads: heads,
        n_kv_heads: kv_heads,
        head_dim: hidden / heads,
        vocab_size: vocab,
        rope_theta,
        rms_eps,
        context_length: context,
        tie_embeddings: tie,
        qkv_bias: arch == Architecture::Qwen2,
    }
}

/// Random weights laid out as catalog model `name`.
pub fn synthetic(name: &str, seed: u64) -> Result<SyntheticSource> {
    use Architecture::{Llama, Qwen2};
    let (config, format_of): (ModelConfig, entmin_models::synthetic::FormatOf) = match name {
        "smollm2-135m-instruct" => (config(Llama, 30, 576, 1536, 9, 3, 49152, 1e5, 1e-5, 8192, true), smollm2_format),
        "qwen2.5-coder-0.5b-instruct" => {
            (config(Qwen2, 24, 896, 4864, 14, 2, 151936, 1e6, 1e-6, 32768, false), qwen_0_5b_format)
        }
        "qwen2.5-coder-1.5b-instruct" => {
            (config(Qwen2, 28, 1536, 8960, 12, 2, 151936, 1e6, 1e-6, 32768, false), qwen_1_5b_format)
        }
        other => {
            let names: Vec<&str> = super::MODELS.iter().map(|m| m.name).collect();
            return Err(Error::ModelSpec {
                spec: other.into(),
                msg: format!("no synthetic layout (catalog models: {})", names.join(", ")),
            });
        }
    };
    Ok(SyntheticSource { config, format_of, seed })
}
