//! A minimal GGUF v3 writer for tests: build small files (valid or deliberately
//! broken) without shipping binaries.

pub enum Meta {
    U32(u32),
    F32(f32),
    Str(String),
    Strs(Vec<String>),
    I32s(Vec<i32>),
}

pub struct GgufBuilder {
    meta: Vec<(String, Meta)>,
    /// name, row-major shape, ggml type id, raw bytes
    tensors: Vec<(String, Vec<usize>, u32, Vec<u8>)>,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

impl GgufBuilder {
    pub fn new() -> Self {
        GgufBuilder { meta: Vec::new(), tensors: Vec::new() }
    }

    pub fn meta(&mut self, key: &str, value: Meta) -> &mut Self {
        self.meta.retain(|(k, _)| k != key);
        self.meta.push((key.into(), value));
        self
    }

    pub fn tensor_f32(&mut self, name: &str, shape: &[usize], data: &[f32]) -> &mut Self {
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor_raw(name, shape, 0, bytes)
    }

    pub fn tensor_raw(&mut self, name: &str, shape: &[usize], type_id: u32, bytes: Vec<u8>) -> &mut Self {
        self.tensors.retain(|(n, ..)| n != name);
        self.tensors.push((name.into(), shape.to_vec(), type_id, bytes));
        self
    }

    pub fn build(&self) -> Vec<u8> {
        const ALIGN: usize = 32;
        let mut out = Vec::new();
        out.extend(b"GGUF");
        out.extend(3u32.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend((self.meta.len() as u64).to_le_bytes());
        for (k, v) in &self.meta {
            put_str(&mut out, k);
            match v {
                Meta::U32(x) => {
                    out.extend(4u32.to_le_bytes());
                    out.extend(x.to_le_bytes());
                }
                Meta::F32(x) => {
                    out.extend(6u32.to_le_bytes());
                    out.extend(x.to_le_bytes());
                }
                Meta::Str(s) => {
                    out.extend(8u32.to_le_bytes());
                    put_str(&mut out, s);
                }
                Meta::Strs(items) => {
                    out.extend(9u32.to_le_bytes());
                    out.extend(8u32.to_le_bytes());
                    out.extend((items.len() as u64).to_le_bytes());
                    items.iter().for_each(|s| put_str(&mut out, s));
                }
                Meta::I32s(items) => {
                    out.extend(9u32.to_le_bytes());
                    out.extend(5u32.to_le_bytes());
                    out.extend((items.len() as u64).to_le_bytes());
                    items.iter().for_each(|x| out.extend(x.to_le_bytes()));
                }
            }
        }
        let mut offset = 0usize;
        let mut offsets = Vec::new();
        for (name, shape, type_id, bytes) in &self.tensors {
            put_str(&mut out, name);
            out.extend((shape.len() as u32).to_le_bytes());
            shape.iter().rev().for_each(|&d| out.extend((d as u64).to_le_bytes()));
            out.extend(type_id.to_le_bytes());
            out.extend((offset as u64).to_le_bytes());
            offsets.push(offset);
            offset = (offset + bytes.len()).div_ceil(ALIGN) * ALIGN;
        }
        out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
        let data_start = out.len();
        for ((.., bytes), off) in self.tensors.iter().zip(offsets) {
            out.resize(data_start + off, 0);
            out.extend(bytes);
        }
        out
    }
}

impl Default for GgufBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// A complete tiny model as GGUF in llama.cpp's conventions (names, and for llama
/// the permuted q/k rows), with a byte-level vocabulary of `config.vocab_size` tokens.
pub fn tiny_model_gguf(c: &entmin_models::ModelConfig, w: &crate::tiny::MemorySource) -> GgufBuilder {
    tiny_model_gguf_as(c, w, Matrices::F32)
}

/// How [`tiny_model_gguf_as`] stores the matrices (norms stay f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Matrices {
    F32,
    /// ggml's reference Q8_0 quantiser (rows must be multiples of 32).
    Q8_0,
    /// IQ4_NL blocks (rows multiples of 32): a format no GPU backend decodes, for the
    /// conversion path.
    Iq4Nl,
}

/// As [`tiny_model_gguf`], with every matrix stored as `matrices` says.
pub fn tiny_model_gguf_as(c: &entmin_models::ModelConfig, w: &crate::tiny::MemorySource, matrices: Matrices) -> GgufBuilder {
    use entmin_models::Architecture;
    let arch = c.arch.name();
    let mut g = GgufBuilder::new();
    g.meta("general.architecture", Meta::Str(arch.into()))
        .meta(&format!("{arch}.embedding_length"), Meta::U32(c.hidden_size as u32))
        .meta(&format!("{arch}.feed_forward_length"), Meta::U32(c.intermediate_size as u32))
        .meta(&format!("{arch}.block_count"), Meta::U32(c.n_layers as u32))
        .meta(&format!("{arch}.attention.head_count"), Meta::U32(c.n_heads as u32))
        .meta(&format!("{arch}.attention.head_count_kv"), Meta::U32(c.n_kv_heads as u32))
        .meta(&format!("{arch}.context_length"), Meta::U32(c.context_length as u32))
        .meta(&format!("{arch}.rope.freq_base"), Meta::F32(c.rope_theta))
        .meta(&format!("{arch}.attention.layer_norm_rms_epsilon"), Meta::F32(c.rms_eps))
        .meta("tokenizer.ggml.model", Meta::Str("gpt2".into()))
        .meta("tokenizer.ggml.pre", Meta::Str("smollm".into()))
        // Printable byte-level symbols, one token each, no merges.
        .meta(
            "tokenizer.ggml.tokens",
            Meta::Strs(
                (0..c.vocab_size)
                    .map(|i| char::from(b'!' + (i % 94) as u8).to_string() + &"~".repeat(i / 94))
                    .collect(),
            ),
        )
        .meta("tokenizer.ggml.token_type", Meta::I32s(vec![1; c.vocab_size]))
        .meta("tokenizer.ggml.merges", Meta::Strs(vec![]));
    for (hf, t) in &w.0 {
        let Some(name) = entmin_models::weights::gguf_name(hf) else { continue };
        let mut data = t.data.clone();
        if c.arch == Architecture::Llama && (hf.contains("q_proj.weight") || hf.contains("k_proj.weight")) {
            let heads = if hf.contains("q_proj") { c.n_heads } else { c.n_kv_heads };
            data = permute_rows(&data, heads, t.shape[0], t.shape[1]);
        }
        match matrices {
            Matrices::Q8_0 if t.shape.len() == 2 => g.tensor_raw(&name, &t.shape, 8, quantise_q8_0(&data)),
            Matrices::Iq4Nl if t.shape.len() == 2 => g.tensor_raw(&name, &t.shape, 20, quantise_iq4_nl(&data)),
            _ => g.tensor_f32(&name, &t.shape, &data),
        };
    }
    g
}

/// ggml's reference Q8_0 quantiser: per 32 values, d = amax / 127 (stored as f16) and
/// codes round(x / d).
pub fn quantise_q8_0(data: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 32 * 34);
    for block in data.chunks(32) {
        let amax = block.iter().fold(0f32, |m, x| m.max(x.abs()));
        let d = amax / 127.0;
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        out.extend(half::f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|&x| (x * inv).round() as i8 as u8));
    }
    out
}

/// IQ4_NL by nearest code: per 32 values d = amax / 127 and each value the index of the
/// non-linear level nearest x / d (ggml's levels; low nibbles hold elements 0..15).
pub fn quantise_iq4_nl(data: &[f32]) -> Vec<u8> {
    const LEVELS: [f32; 16] = [-127., -104., -83., -65., -49., -35., -22., -10., 1., 13., 25., 38., 53., 69., 89., 113.];
    let nearest = |v: f32| (0..16).min_by(|&a, &b| (LEVELS[a] - v).abs().total_cmp(&(LEVELS[b] - v).abs())).unwrap() as u8;
    let mut out = Vec::with_capacity(data.len() / 32 * 18);
    for block in data.chunks(32) {
        let amax = block.iter().fold(0f32, |m, x| m.max(x.abs()));
        let d = amax / 127.0;
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        out.extend(half::f16::from_f32(d).to_le_bytes());
        out.extend((0..16).map(|j| nearest(block[j] * inv) | (nearest(block[j + 16] * inv) << 4)));
    }
    out
}

/// llama.cpp's convert permutation (the inverse of the loader's un-permute):
/// Hugging Face row j·(head_dim/2) + i goes to GGUF row 2i + j within each head.
fn permute_rows(data: &[f32], heads: usize, rows: usize, cols: usize) -> Vec<f32> {
    let half = rows / heads / 2;
    let mut out = vec![0f32; data.len()];
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let hf = (h * 2 * half + j * half + i) * cols;
                let gg = (h * 2 * half + 2 * i + j) * cols;
                out[gg..gg + cols].copy_from_slice(&data[hf..hf + cols]);
            }
        }
    }
    out
}
