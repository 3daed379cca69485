//! Where weights come from. A [`TensorSource`] hands out tensors by their
//! Hugging Face name, row-major, either as the file stores them (block formats stay
//! blocks) or converted to a dense dtype; the GGUF source maps names and undoes
//! llama.cpp's q/k row permutation so that every model runs with the same rotate-half
//! RoPE (docs/design.md).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use entmin_engine::{DType, HostVec};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::config::{Architecture, ModelConfig};
use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;

/// One tensor in host memory, with its row-major shape.
pub struct HostTensor {
    pub data: HostVec,
    pub shape: Vec<usize>,
}

/// How a model's matrices are held once loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightDtype {
    /// As the file stores them (block formats stay blocks, f16 stays f16), where the
    /// backend takes that type; converted to bf16 (or f32) where it does not.
    #[default]
    Auto,
    /// Converted to this dense dtype at load.
    Convert(DType),
}

impl From<DType> for WeightDtype {
    fn from(d: DType) -> Self {
        WeightDtype::Convert(d)
    }
}

impl WeightDtype {
    /// `auto`, `f32`, `f16` or `bf16`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Some(WeightDtype::Auto),
            other => DType::parse(other).filter(|d| !d.is_quantised()).map(WeightDtype::Convert),
        }
    }
}

impl std::fmt::Display for WeightDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WeightDtype::Auto => f.write_str("auto"),
            WeightDtype::Convert(d) => write!(f, "{d}"),
        }
    }
}

pub trait TensorSource {
    /// The file a tensor named `name` lives in (for error messages).
    fn path_of(&self, name: &str) -> PathBuf;
    /// The tensor with this Hugging Face name converted to `dtype`, or None if the file has none.
    fn load(&self, name: &str, dtype: DType) -> Result<Option<HostTensor>>;
    /// The tensor in the type the file stores it in, or None if the file has none.
    fn load_stored(&self, name: &str) -> Result<Option<HostTensor>>;
}

/// GGUF tensor name for a Hugging Face name (llama.cpp convention).
pub fn gguf_name(hf: &str) -> Option<String> {
    let simple = match hf {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(s) = simple {
        return Some(s.to_string());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, tail) = rest.split_once('.')?;
    let (module, kind) = tail.rsplit_once('.')?;
    let g = match module {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{g}.{kind}"))
}

pub struct GgufSource<'a> {
    pub file: &'a GgufFile,
    pub config: &'a ModelConfig,
}

impl TensorSource for GgufSource<'_> {
    fn path_of(&self, _name: &str) -> PathBuf {
        self.file.path().to_path_buf()
    }

    fn load(&self, name: &str, dtype: DType) -> Result<Option<HostTensor>> {
        self.read(name, |info| self.file.tensor_as(info, dtype))
    }

    fn load_stored(&self, name: &str) -> Result<Option<HostTensor>> {
        self.read(name, |info| self.file.tensor_stored(info))
    }
}

impl GgufSource<'_> {
    fn read(
        &self,
        name: &str,
        read: impl Fn(&crate::gguf::GgufTensorInfo) -> Result<HostVec>,
    ) -> Result<Option<HostTensor>> {
        let Some(gname) = gguf_name(name) else { return Ok(None) };
        let Some(info) = self.file.tensor_info(&gname) else { return Ok(None) };
        let mut data = read(info)?;
        let shape = info.shape.clone();
        if self.config.arch == Architecture::Llama {
            let heads = if name.ends_with("q_proj.weight") || name.ends_with("q_proj.bias") {
                Some(self.config.n_heads)
            } else if name.ends_with("k_proj.weight") || name.ends_with("k_proj.bias") {
                Some(self.config.n_kv_heads)
            } else {
                None
            };
            if let Some(heads) = heads {
                let cols = if shape.len() == 2 { shape[1] } else { 1 };
                data = unpermute_rows(&data, heads, shape[0], cols)
                    .map_err(|msg| ModelError::corrupt(self.file.path(), format!("tensor {gname}: {msg}")))?;
            }
        }
        Ok(Some(HostTensor { data, shape }))
    }
}

/// Undo llama.cpp's q/k permutation: within each head, GGUF row 2i + j holds
/// Hugging Face row j·(head_dim/2) + i.
pub fn unpermute_rows(data: &HostVec, heads: usize, rows: usize, cols: usize) -> Result<HostVec, String> {
    if heads == 0 || !rows.is_multiple_of(heads) || !(rows / heads).is_multiple_of(2) || data.len() != rows * cols {
        return Err(format!("{rows} rows cannot be split into {heads} heads of even size"));
    }
    let head_dim = rows / heads;
    let half = head_dim / 2;
    // Hugging Face row r = h·head_dim + j·half + i comes from GGUF row h·head_dim + 2i + j.
    data.permute_rows(cols, |r| {
        let (h, within) = (r / head_dim, r % head_dim);
        let (j, i) = (within / half, within % half);
        h * head_dim + 2 * i + j
    })
}

/// A Hugging Face folder: model.safetensors or the shards named by model.safetensors.index.json.
pub struct SafetensorsSource {
    files: Vec<(PathBuf, Mmap)>,
    /// tensor name → index into `files`
    index: BTreeMap<String, usize>,
}

impl SafetensorsSource {
    pub fn open(dir: &Path) -> Result<Self> {
        let single = dir.join("model.safetensors");
        let index_path = dir.join("model.safetensors.index.json");
        let shard_names: Vec<String> = if single.exists() {
            vec!["model.safetensors".into()]
        } else if index_path.exists() {
            let text = std::fs::read_to_string(&index_path).map_err(|e| ModelError::io(&index_path, e))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| ModelError::corrupt(&index_path, format!("invalid JSON: {e}")))?;
            let map =
                v["weight_map"].as_object().ok_or_else(|| ModelError::corrupt(&index_path, "no weight_map object"))?;
            let mut names: Vec<String> = map.values().filter_map(|f| f.as_str().map(String::from)).collect();
            names.sort();
            names.dedup();
            names
        } else {
            return Err(ModelError::corrupt(dir, "neither model.safetensors nor model.safetensors.index.json found"));
        };
        let mut files = Vec::new();
        let mut index = BTreeMap::new();
        for name in shard_names {
            let path = dir.join(&name);
            let file = File::open(&path).map_err(|e| ModelError::io(&path, e))?;
            // SAFETY: read-only map of a weights file nobody writes while it is loaded.
            let mmap = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(&path, e))?;
            let st = SafeTensors::deserialize(&mmap)
                .map_err(|e| ModelError::corrupt(&path, format!("invalid safetensors: {e}")))?;
            for tname in st.names() {
                index.insert(tname.to_string(), files.len());
            }
            files.push((path, mmap));
        }
        Ok(SafetensorsSource { files, index })
    }
}

impl SafetensorsSource {
    /// Every tensor name in the shards, sorted.
    pub fn names(&self) -> Vec<String> {
        self.index.keys().cloned().collect()
    }

    /// The stored dtype of a tensor as safetensors names it ("BF16").
    pub fn dtype_name(&self, name: &str) -> Option<String> {
        let (_, mmap) = &self.files[*self.index.get(name)?];
        let st = SafeTensors::deserialize(mmap).ok()?;
        Some(format!("{:?}", st.tensor(name).ok()?.dtype()))
    }
}

impl TensorSource for SafetensorsSource {
    fn path_of(&self, name: &str) -> PathBuf {
        self.index.get(name).map_or_else(|| self.files[0].0.clone(), |&i| self.files[i].0.clone())
    }

    fn load(&self, name: &str, dtype: DType) -> Result<Option<HostTensor>> {
        self.read(name, Some(dtype))
    }

    fn load_stored(&self, name: &str) -> Result<Option<HostTensor>> {
        self.read(name, None)
    }
}

impl SafetensorsSource {
    /// The tensor converted to `dtype`, or in its stored dtype when None.
    fn read(&self, name: &str, dtype: Option<DType>) -> Result<Option<HostTensor>> {
        let Some(&i) = self.index.get(name) else { return Ok(None) };
        let (path, mmap) = &self.files[i];
        let st = SafeTensors::deserialize(mmap)
            .map_err(|e| ModelError::corrupt(path, format!("invalid safetensors: {e}")))?;
        let view = st.tensor(name).map_err(|e| ModelError::corrupt(path, format!("tensor {name}: {e}")))?;
        let bytes = view.data();
        let stored = match view.dtype() {
            Dtype::F32 => DType::F32,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            other => {
                return Err(ModelError::unsupported(
                    path,
                    format!("tensor {name}: dtype {other:?} is not supported (F32, F16, BF16 are)"),
                ))
            }
        };
        let dtype = dtype.unwrap_or(stored);
        // Convert a slice at a time so no full-size f32 copy is ever made.
        let width = stored.size_bytes();
        let mut data = HostVec::with_capacity(dtype, bytes.len() / width);
        let mut buf = vec![0f32; 1 << 16];
        for chunk in bytes.chunks(width << 16) {
            let n = chunk.len() / width;
            entmin_engine::quant::dequantize(stored, &chunk[..n * width], &mut buf[..n])
                .map_err(|e| ModelError::corrupt(path, format!("tensor {name}: {e}")))?;
            data.extend_from_f32(&buf[..n]);
        }
        Ok(Some(HostTensor { data, shape: view.shape().to_vec() }))
    }
}
