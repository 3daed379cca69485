//! The decoder shared by Llama and Qwen2 (they differ only in config flags:
//! q/k/v biases and tied embeddings), written once against [`Backend`].

use entmin_engine::{AttentionShape, Backend, DType, Tensor};

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::layer;
pub use crate::layer::{Layer, Linear};
use crate::weights::{HostTensor, TensorSource, WeightDtype};

pub struct Model<B: Backend> {
    pub config: ModelConfig,
    pub embed: Tensor<B>,
    pub layers: Vec<Layer<B>>,
    pub norm: Tensor<B>,
    /// None when the head is tied to `embed`.
    pub lm_head: Option<Tensor<B>>,
    /// What the matrices were asked to be held as.
    pub weight_dtype: WeightDtype,
    /// What load converted because the backend cannot hold the file's types, one
    /// sentence each.
    pub load_notices: Vec<String>,
}

/// Which positions of a forward pass produce logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Only the last position (decoding).
    Last,
    /// Every position (scoring, inspection, training).
    All,
}

/// Per-layer key and value caches of shape [capacity, kv_dim], f32.
pub struct KvCache<B: Backend> {
    pub k: Vec<Tensor<B>>,
    pub v: Vec<Tensor<B>>,
    /// Positions filled so far.
    pub len: usize,
    pub capacity: usize,
}

impl<B: Backend> KvCache<B> {
    pub fn new(backend: &B, config: &ModelConfig, capacity: usize) -> Result<Self> {
        let shape = [capacity, config.kv_dim()];
        let mut k = Vec::with_capacity(config.n_layers);
        let mut v = Vec::with_capacity(config.n_layers);
        for _ in 0..config.n_layers {
            k.push(backend.zeros(&shape, DType::F32)?);
            v.push(backend.zeros(&shape, DType::F32)?);
        }
        Ok(KvCache { k, v, len: 0, capacity })
    }

    pub fn size_bytes(&self) -> usize {
        self.k.iter().chain(&self.v).map(|t| t.size_bytes()).sum()
    }
}

/// Read a tensor and check its shape and values.
fn read_checked(src: &dyn TensorSource, name: &str, expected: &[usize], dtype: Option<DType>) -> Result<HostTensor> {
    let path = src.path_of(name);
    let loaded = match dtype {
        Some(d) => src.load(name, d)?,
        None => src.load_stored(name)?,
    };
    let t = loaded.ok_or_else(|| ModelError::MissingTensor { path: path.clone(), tensor: name.into() })?;
    // A 1-D tensor may be stored as [n] or [1, n]; anything else must match exactly.
    let found_n: usize = t.shape.iter().product();
    let same = t.shape == expected || (expected.len() == 1 && found_n == expected[0] && t.shape.len() <= 2);
    if !same {
        return Err(ModelError::Shape { path, tensor: name.into(), expected: expected.to_vec(), found: t.shape });
    }
    if let Some((first, count)) = t.data.non_finite() {
        let unit = if t.data.dtype().is_quantised() { "block scales" } else { "values" };
        return Err(ModelError::NonFinite { path, tensor: name.into(), count, first, unit });
    }
    Ok(t)
}

/// Matrices the backend could not hold in the file's type, by type, and what they became.
#[derive(Default)]
struct Conversions(std::collections::BTreeMap<DType, usize>, Option<DType>);

impl Conversions {
    fn notice(&self, backend: &str) -> Option<String> {
        let to = self.1?;
        let types: Vec<String> = self.0.iter().map(|(d, n)| format!("{n} {d}")).collect();
        Some(format!(
            "the {backend} backend cannot hold these weight types yet: {} matrices converted to {to} at load",
            types.join(", ")
        ))
    }
}

impl<B: Backend> Model<B> {
    /// Load and check every tensor; matrices are held as `weights` says, norms and biases as f32.
    pub fn load(
        backend: &B,
        config: ModelConfig,
        src: &dyn TensorSource,
        weights: impl Into<WeightDtype>,
    ) -> Result<Self> {
        let weight_dtype = weights.into();
        let c = &config;
        let (h, q, kv, f, v) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.intermediate_size, c.vocab_size);
        let accepted = backend.capabilities().weight_dtypes;
        let fallback = if accepted.contains(&DType::BF16) { DType::BF16 } else { DType::F32 };
        let conversions = std::cell::RefCell::new(Conversions::default());
        let matrix = |name: &str, shape: [usize; 2]| -> Result<Tensor<B>> {
            let mut t = match weight_dtype {
                WeightDtype::Convert(d) => read_checked(src, name, &shape, Some(d))?,
                WeightDtype::Auto => read_checked(src, name, &shape, None)?,
            };
            let stored = t.data.dtype();
            if !accepted.contains(&stored) {
                t.data = t
                    .data
                    .to_dense(fallback)
                    .map_err(|e| ModelError::corrupt(&src.path_of(name), format!("tensor {name}: {e}")))?;
                let mut conv = conversions.borrow_mut();
                *conv.0.entry(stored).or_default() += 1;
                conv.1 = Some(fallback);
            }
            backend.upload_owned(t.data, &shape).map_err(|e| ModelError::Invalid(format!("tensor {name}: {e}")))
        };
        let vector = |name: &str, n: usize| -> Result<Tensor<B>> {
            Ok(backend.upload_owned(read_checked(src, name, &[n], Some(DType::F32))?.data, &[n])?)
        };
        let linear = |prefix: &str, out: usize, inp: usize, bias: bool| -> Result<Linear<B>> {
            Ok(Linear {
                weight: matrix(&format!("{prefix}.weight"), [out, inp])?,
                bias: if bias { Some(vector(&format!("{prefix}.bias"), out)?) } else { None },
            })
        };
        let mut layers = Vec::with_capacity(c.n_layers);
        for l in 0..c.n_layers {
            let p = format!("model.layers.{l}");
            layers.push(Layer {
                attn_norm: vector(&format!("{p}.input_layernorm.weight"), h)?,
                q: linear(&format!("{p}.self_attn.q_proj"), q, h, c.qkv_bias)?,
                k: linear(&format!("{p}.self_attn.k_proj"), kv, h, c.qkv_bias)?,
                v: linear(&format!("{p}.self_attn.v_proj"), kv, h, c.qkv_bias)?,
                o: linear(&format!("{p}.self_attn.o_proj"), h, q, false)?,
                ffn_norm: vector(&format!("{p}.post_attention_layernorm.weight"), h)?,
                gate: linear(&format!("{p}.mlp.gate_proj"), f, h, false)?,
                up: linear(&format!("{p}.mlp.up_proj"), f, h, false)?,
                down: linear(&format!("{p}.mlp.down_proj"), h, f, false)?,
            });
        }
        let embed = matrix("model.embed_tokens.weight", [v, h])?;
        let lm_head = if c.tie_embeddings { None } else { Some(matrix("lm_head.weight", [v, h])?) };
        let norm = vector("model.norm.weight", h)?;
        let load_notices = conversions.into_inner().notice(backend.name()).into_iter().collect();
        Ok(Model { config, embed, layers, norm, lm_head, weight_dtype, load_notices })
    }

    /// Every matrix with its name, in load order.
    pub fn matrices(&self) -> Vec<(String, &Tensor<B>)> {
        let mut out = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            let named = [
                ("self_attn.q_proj", &layer.q),
                ("self_attn.k_proj", &layer.k),
                ("self_attn.v_proj", &layer.v),
                ("self_attn.o_proj", &layer.o),
                ("mlp.gate_proj", &layer.gate),
                ("mlp.up_proj", &layer.up),
                ("mlp.down_proj", &layer.down),
            ];
            out.extend(named.into_iter().map(|(n, lin)| (format!("model.layers.{l}.{n}.weight"), &lin.weight)));
        }
        out.push(("model.embed_tokens.weight".into(), &self.embed));
        if let Some(head) = &self.lm_head {
            out.push(("lm_head.weight".into(), head));
        }
        out
    }

    /// The matrices' storage types with their resident bytes, largest first:
    /// "Q5_0 173.2 MB, Q8_0 145.3 MB, …"; a single type is just its name ("bf16").
    pub fn weight_types(&self) -> String {
        let mut bytes: std::collections::BTreeMap<DType, usize> = Default::default();
        for (_, t) in self.matrices() {
            *bytes.entry(t.dtype()).or_default() += t.size_bytes();
        }
        if bytes.len() == 1 {
            return bytes.keys().next().expect("one type").to_string();
        }
        let mut by_size: Vec<(DType, usize)> = bytes.into_iter().collect();
        by_size.sort_by_key(|(d, b)| (std::cmp::Reverse(*b), *d));
        by_size.iter().map(|(d, b)| format!("{d} {:.1} MB", *b as f64 / 1e6)).collect::<Vec<_>>().join(", ")
    }

    pub fn head(&self) -> &Tensor<B> {
        self.lm_head.as_ref().unwrap_or(&self.embed)
    }

    pub fn size_bytes(&self) -> usize {
        let lin = |l: &Linear<B>| l.weight.size_bytes() + l.bias.as_ref().map_or(0, |b| b.size_bytes());
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                l.attn_norm.size_bytes()
                    + l.ffn_norm.size_bytes()
                    + [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down].iter().map(|x| lin(x)).sum::<usize>()
            })
            .sum();
        self.embed.size_bytes() + layers + self.norm.size_bytes() + self.lm_head.as_ref().map_or(0, |t| t.size_bytes())
    }

    /// Run `ids` at positions `cache.len..`, append their keys and values to the
    /// cache and return logits `[1 or ids.len(), vocab]`.
    pub fn forward(&self, backend: &B, ids: &[u32], cache: &mut KvCache<B>, which: Logits) -> Result<Tensor<B>> {
        self.forward_batch(backend, &mut [BatchItem { ids, cache }], which)
    }

    /// Several sequences in one pass: their tokens are stacked so every weight matrix
    /// is read once for the whole batch; attention runs per sequence on its own cache.
    /// Returns logits for the last token of each sequence (`Logits::Last`, one row per
    /// item) or for every token (`Logits::All`, items' rows in order).
    pub fn forward_batch(&self, backend: &B, items: &mut [BatchItem<'_, B>], which: Logits) -> Result<Tensor<B>> {
        let c = &self.config;
        if items.is_empty() || items.iter().any(|it| it.ids.is_empty()) {
            return Err(ModelError::Invalid("forward called with no tokens".into()));
        }
        for it in items.iter() {
            if it.cache.len + it.ids.len() > it.cache.capacity {
                return Err(ModelError::ContextOverflow {
                    prompt: it.cache.len,
                    new: it.ids.len(),
                    context: it.cache.capacity,
                });
            }
        }
        // Row ranges of each item in the stacked batch.
        let mut spans = Vec::with_capacity(items.len());
        let mut total = 0;
        for it in items.iter() {
            spans.push(total..total + it.ids.len());
            total += it.ids.len();
        }
        let ids: Vec<u32> = items.iter().flat_map(|it| it.ids.iter().copied()).collect();
        let positions: Vec<u32> =
            items.iter().flat_map(|it| (it.cache.len..it.cache.len + it.ids.len()).map(|p| p as u32)).collect();
        let single = items.len() == 1;
        let mut x = backend.embedding(&self.embed, &ids)?;
        for (l, layer) in self.layers.iter().enumerate() {
            // Each sequence writes its keys and values into its own cache and attends
            // over it; a lone sequence uses the whole batch, otherwise its rows are cut out.
            let attend = |q: &Tensor<B>, k: &Tensor<B>, v: &Tensor<B>| -> Result<Tensor<B>> {
                let mut outs = Vec::with_capacity(items.len());
                for (it, span) in items.iter_mut().zip(&spans) {
                    let start = it.cache.len;
                    let parts;
                    let (qi, ki, vi) = if single {
                        (q, k, v)
                    } else {
                        let cut = |t: &Tensor<B>| backend.slice_rows(t, span.start, span.end);
                        parts = (cut(q)?, cut(k)?, cut(v)?);
                        (&parts.0, &parts.1, &parts.2)
                    };
                    backend.write_kv(&mut it.cache.k[l], ki, start)?;
                    backend.write_kv(&mut it.cache.v[l], vi, start)?;
                    let shape = AttentionShape {
                        n_heads: c.n_heads,
                        n_kv_heads: c.n_kv_heads,
                        head_dim: c.head_dim,
                        start_pos: start,
                    };
                    outs.push(backend.attention(qi, &it.cache.k[l], &it.cache.v[l], shape)?);
                }
                Ok(if outs.len() == 1 {
                    outs.pop().expect("one output")
                } else {
                    backend.concat_rows(&outs.iter().collect::<Vec<_>>())?
                })
            };
            layer::forward(backend, c, layer, &mut x, &positions, attend, false)?;
        }
        for it in items.iter_mut() {
            it.cache.len += it.ids.len();
        }
        let x = match which {
            Logits::All => x,
            Logits::Last => {
                let lasts: Vec<Tensor<B>> =
                    spans.iter().map(|s| backend.slice_rows(&x, s.end - 1, s.end)).collect::<Result<_, _>>()?;
                if lasts.len() == 1 {
                    lasts.into_iter().next().expect("one row")
                } else {
                    backend.concat_rows(&lasts.iter().collect::<Vec<_>>())?
                }
            }
        };
        let x = backend.rms_norm(&x, &self.norm, c.rms_eps)?;
        Ok(backend.linear(&x, self.head(), None)?)
    }
}

/// One sequence of a batched forward pass.
pub struct BatchItem<'a, B: Backend> {
    pub ids: &'a [u32],
    pub cache: &'a mut KvCache<B>,
}
