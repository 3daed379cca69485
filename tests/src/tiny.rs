//! Tiny random Llama / Qwen2 models held in memory, and an f64 forward pass
//! composed from the reference ops, written independently of `Model::forward`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use entmin_engine::{reference, AttentionShape, DType, HostVec, Rng};
use entmin_models::weights::{HostTensor, TensorSource};
use entmin_models::{Architecture, ModelConfig, Result};

use crate::random_vec;

pub fn config(arch: Architecture, tie: bool) -> ModelConfig {
    ModelConfig {
        arch,
        hidden_size: 48,
        intermediate_size: 80,
        n_layers: 2,
        n_heads: 6,
        n_kv_heads: 2,
        head_dim: 8,
        vocab_size: 97,
        rope_theta: 10_000.0,
        rms_eps: 1e-5,
        context_length: 64,
        tie_embeddings: tie,
        qkv_bias: arch == Architecture::Qwen2,
    }
}

/// An f32 tensor and its row-major shape.
#[derive(Clone, Debug)]
pub struct F32Tensor {
    pub data: Vec<f32>,
    pub shape: Vec<usize>,
}

/// Named f32 tensors in memory, by Hugging Face name.
#[derive(Clone, Default)]
pub struct MemorySource(pub BTreeMap<String, F32Tensor>);

impl TensorSource for MemorySource {
    fn path_of(&self, _name: &str) -> PathBuf {
        PathBuf::from("<memory>")
    }

    fn load(&self, name: &str, dtype: DType) -> Result<Option<HostTensor>> {
        Ok(self.0.get(name).map(|t| HostTensor { data: HostVec::from_f32(&t.data, dtype), shape: t.shape.clone() }))
    }

    fn load_stored(&self, name: &str) -> Result<Option<HostTensor>> {
        self.load(name, DType::F32)
    }
}

pub fn random_weights(c: &ModelConfig, seed: u64) -> MemorySource {
    let mut rng = Rng::new(seed);
    let mut m = BTreeMap::new();
    let mut put = |name: String, shape: Vec<usize>, scale: f32, offset: f32| {
        let n = shape.iter().product();
        let data = random_vec(&mut rng, n, scale).into_iter().map(|v| v + offset).collect();
        m.insert(name, F32Tensor { data, shape });
    };
    let (h, q, kv, f, v) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.intermediate_size, c.vocab_size);
    put("model.embed_tokens.weight".into(), vec![v, h], 1.0, 0.0);
    for l in 0..c.n_layers {
        let p = format!("model.layers.{l}");
        put(format!("{p}.input_layernorm.weight"), vec![h], 0.2, 1.0);
        put(format!("{p}.post_attention_layernorm.weight"), vec![h], 0.2, 1.0);
        for (name, out, inp) in [("self_attn.q_proj", q, h), ("self_attn.k_proj", kv, h), ("self_attn.v_proj", kv, h)] {
            put(format!("{p}.{name}.weight"), vec![out, inp], 0.3, 0.0);
            if c.qkv_bias {
                put(format!("{p}.{name}.bias"), vec![out], 0.3, 0.0);
            }
        }
        put(format!("{p}.self_attn.o_proj.weight"), vec![h, q], 0.3, 0.0);
        put(format!("{p}.mlp.gate_proj.weight"), vec![f, h], 0.3, 0.0);
        put(format!("{p}.mlp.up_proj.weight"), vec![f, h], 0.3, 0.0);
        put(format!("{p}.mlp.down_proj.weight"), vec![h, f], 0.3, 0.0);
    }
    put("model.norm.weight".into(), vec![h], 0.2, 1.0);
    if !c.tie_embeddings {
        put("lm_head.weight".into(), vec![v, h], 0.5, 0.0);
    }
    MemorySource(m)
}

fn f32s(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

/// Logits [ids.len(), vocab] in f64 for a whole sequence from position 0.
pub fn reference_forward(c: &ModelConfig, w: &MemorySource, ids: &[u32]) -> Vec<f64> {
    let get = |name: &str| &w.0[name].data;
    let (h, t) = (c.hidden_size, ids.len());
    let emb = get("model.embed_tokens.weight");
    let mut x: Vec<f64> =
        ids.iter().flat_map(|&i| emb[i as usize * h..(i as usize + 1) * h].iter().map(|&v| v as f64)).collect();
    let positions: Vec<u32> = (0..t as u32).collect();
    let bias = |name: String| if c.qkv_bias { Some(get(&name).as_slice()) } else { None };
    for l in 0..c.n_layers {
        let p = format!("model.layers.{l}");
        let hn = f32s(&reference::rms_norm(&f32s(&x), h, get(&format!("{p}.input_layernorm.weight")), c.rms_eps));
        let proj = |name: &str, out: usize| {
            reference::linear(&hn, get(&format!("{p}.{name}.weight")), bias(format!("{p}.{name}.bias")), t, out, h)
        };
        let q = reference::rope(
            &f32s(&proj("self_attn.q_proj", c.q_dim())),
            c.q_dim(),
            c.head_dim,
            &positions,
            c.rope_theta,
        );
        let k = reference::rope(
            &f32s(&proj("self_attn.k_proj", c.kv_dim())),
            c.kv_dim(),
            c.head_dim,
            &positions,
            c.rope_theta,
        );
        let v = proj("self_attn.v_proj", c.kv_dim());
        let shape = AttentionShape { n_heads: c.n_heads, n_kv_heads: c.n_kv_heads, head_dim: c.head_dim, start_pos: 0 };
        let a = reference::attention(&f32s(&q), &f32s(&k), &f32s(&v), shape);
        let o = reference::linear(&f32s(&a), get(&format!("{p}.self_attn.o_proj.weight")), None, t, h, c.q_dim());
        x.iter_mut().zip(&o).for_each(|(x, o)| *x += o);
        let hn =
            f32s(&reference::rms_norm(&f32s(&x), h, get(&format!("{p}.post_attention_layernorm.weight")), c.rms_eps));
        let f = c.intermediate_size;
        let g = reference::linear(&hn, get(&format!("{p}.mlp.gate_proj.weight")), None, t, f, h);
        let u = reference::linear(&hn, get(&format!("{p}.mlp.up_proj.weight")), None, t, f, h);
        let m = reference::silu_mul(&f32s(&g), &f32s(&u));
        let d = reference::linear(&f32s(&m), get(&format!("{p}.mlp.down_proj.weight")), None, t, h, f);
        x.iter_mut().zip(&d).for_each(|(x, d)| *x += d);
    }
    let xn = reference::rms_norm(&f32s(&x), h, get("model.norm.weight"), c.rms_eps);
    let head = if c.tie_embeddings { get("model.embed_tokens.weight") } else { get("lm_head.weight") };
    reference::linear(&f32s(&xn), head, None, t, c.vocab_size, h)
}
