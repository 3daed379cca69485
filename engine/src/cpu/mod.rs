//! The CPU backend: multi-threaded with rayon, f32 compute, weights f32 / f16 /
//! bf16 widened on the fly or kept in ggml's block formats (integer dot products on
//! 8-bit activations: `quant_linear.rs`), AVX2 code paths chosen at run time.

mod attention;
mod elementwise;
mod em_inf;
mod entropy;
mod entropy_grad;
#[cfg(target_arch = "x86_64")]
mod gemv_tile;
mod matmul;
mod norm;
#[cfg(target_arch = "x86_64")]
mod quant_avx2;
pub mod quant_linear;
#[cfg(test)]
mod quant_tests;
mod rope;
mod sample;
pub mod simd;

use half::{bf16, f16};

use crate::backend::{AttentionShape, Backend, Capabilities};
use crate::{
    DType, EmInfParams, EmInfRowStats, EngineError, HostData, HostVec, Result, Rng, SampleOutcome, SamplingParams,
    Tensor,
};

pub use entropy::softmax_entropy_row;

/// Host memory in one of the storage dtypes.
#[derive(Clone, Debug)]
pub enum CpuStorage {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    /// Whole blocks of the tensor's block format, as the file stores them.
    Blocks(Vec<u8>),
}

pub type CpuTensor = Tensor<CpuBackend>;

#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

impl CpuBackend {
    pub fn new() -> Self {
        CpuBackend
    }

    /// Wrap an owned f32 vector without copying.
    pub fn tensor(&self, data: Vec<f32>, shape: &[usize]) -> Result<CpuTensor> {
        check_len("tensor", data.len(), shape)?;
        Ok(Tensor::from_parts(CpuStorage::F32(data), shape.to_vec(), DType::F32))
    }
}

fn check_len(op: &'static str, len: usize, shape: &[usize]) -> Result<()> {
    let n: usize = shape.iter().product();
    if n != len {
        return Err(EngineError::shape(op, format!("{len} elements for shape {shape:?} ({n})")));
    }
    Ok(())
}

/// Blocks must fill the shape exactly, and a matrix's rows must be whole blocks.
fn check_blocks(op: &'static str, dtype: DType, bytes: usize, shape: &[usize]) -> Result<()> {
    let n: usize = shape.iter().product();
    let cols = shape.last().copied().unwrap_or(1);
    match (dtype.bytes_for(n), dtype.bytes_for(cols)) {
        (Some(want), Some(_)) if want == bytes => Ok(()),
        (Some(want), Some(_)) => {
            Err(EngineError::shape(op, format!("{dtype} tensor {shape:?} takes {want} bytes, got {bytes}")))
        }
        _ => Err(EngineError::shape(op, format!("rows of {cols} values are not whole {dtype} blocks ({shape:?})"))),
    }
}

/// The f32 data of an activation tensor, or a dtype error naming the op.
pub(crate) fn f32_data<'a>(op: &'static str, t: &'a CpuTensor) -> Result<&'a [f32]> {
    match t.storage() {
        CpuStorage::F32(v) => Ok(v),
        _ => Err(EngineError::DType { op, dtype: t.dtype() }),
    }
}

pub(crate) fn f32_data_mut<'a>(op: &'static str, t: &'a mut CpuTensor) -> Result<&'a mut [f32]> {
    let dtype = t.dtype();
    match t.storage_mut() {
        CpuStorage::F32(v) => Ok(v),
        _ => Err(EngineError::DType { op, dtype }),
    }
}

pub(crate) fn output(data: Vec<f32>, shape: &[usize]) -> CpuTensor {
    Tensor::from_parts(CpuStorage::F32(data), shape.to_vec(), DType::F32)
}

/// Require a 2-D tensor and return (rows, cols).
pub(crate) fn dims2(op: &'static str, t: &CpuTensor) -> Result<(usize, usize)> {
    match t.shape() {
        [r, c] => Ok((*r, *c)),
        s => Err(EngineError::shape(op, format!("expected a 2-D tensor, got {s:?}"))),
    }
}

impl Backend for CpuBackend {
    type Storage = CpuStorage;

    fn name(&self) -> &'static str {
        "cpu"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            device: cpu_model_name(),
            weight_dtypes: [DType::F32, DType::F16, DType::BF16].into_iter().chain(quant_linear::CPU_FORMATS).collect(),
            simd_width: Some(if simd::has_avx2() { 8 } else { 4 }),
            max_buffer_bytes: isize::MAX as u64,
            parallelism: rayon::current_num_threads(),
        }
    }

    fn upload(&self, data: HostData<'_>, shape: &[usize]) -> Result<CpuTensor> {
        check_len("upload", data.len(), shape)?;
        let storage = match data {
            HostData::F32(d) => CpuStorage::F32(d.to_vec()),
            HostData::F16(d) => CpuStorage::F16(d.to_vec()),
            HostData::BF16(d) => CpuStorage::BF16(d.to_vec()),
            HostData::Blocks { dtype, bytes, .. } => {
                check_blocks("upload", dtype, bytes.len(), shape)?;
                CpuStorage::Blocks(bytes.to_vec())
            }
        };
        Ok(Tensor::from_parts(storage, shape.to_vec(), data.dtype()))
    }

    fn upload_as(&self, data: &[f32], shape: &[usize], dtype: DType) -> Result<CpuTensor> {
        check_len("upload_as", data.len(), shape)?;
        let storage = match dtype {
            DType::F32 => CpuStorage::F32(data.to_vec()),
            DType::F16 => CpuStorage::F16(data.iter().map(|&v| f16::from_f32(v)).collect()),
            DType::BF16 => CpuStorage::BF16(data.iter().map(|&v| bf16::from_f32(v)).collect()),
            other => return Err(EngineError::DType { op: "upload_as (entmin does not quantise)", dtype: other }),
        };
        Ok(Tensor::from_parts(storage, shape.to_vec(), dtype))
    }

    fn upload_owned(&self, data: HostVec, shape: &[usize]) -> Result<CpuTensor> {
        check_len("upload_owned", data.len(), shape)?;
        let dtype = data.dtype();
        let storage = match data {
            HostVec::F32(v) => CpuStorage::F32(v),
            HostVec::F16(v) => CpuStorage::F16(v),
            HostVec::BF16(v) => CpuStorage::BF16(v),
            HostVec::Blocks { dtype, bytes, .. } => {
                check_blocks("upload_owned", dtype, bytes.len(), shape)?;
                CpuStorage::Blocks(bytes)
            }
        };
        Ok(Tensor::from_parts(storage, shape.to_vec(), dtype))
    }

    fn zeros(&self, shape: &[usize], dtype: DType) -> Result<CpuTensor> {
        let n = shape.iter().product();
        let storage = match dtype {
            DType::F32 => CpuStorage::F32(vec![0.0; n]),
            DType::F16 => CpuStorage::F16(vec![f16::ZERO; n]),
            DType::BF16 => CpuStorage::BF16(vec![bf16::ZERO; n]),
            other => return Err(EngineError::DType { op: "zeros", dtype: other }),
        };
        Ok(Tensor::from_parts(storage, shape.to_vec(), dtype))
    }

    fn to_host_f32(&self, t: &CpuTensor) -> Result<Vec<f32>> {
        Ok(match t.storage() {
            CpuStorage::F32(v) => v.clone(),
            CpuStorage::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            CpuStorage::BF16(v) => v.iter().map(|x| x.to_f32()).collect(),
            CpuStorage::Blocks(bytes) => {
                let mut out = vec![0f32; t.len()];
                crate::quant::dequantize(t.dtype(), bytes, &mut out)
                    .map_err(|e| EngineError::invalid("to_host_f32", e.to_string()))?;
                out
            }
        })
    }

    fn take_host_f32(&self, t: CpuTensor) -> Result<Vec<f32>> {
        if matches!(t.storage(), CpuStorage::Blocks(_)) {
            return self.to_host_f32(&t);
        }
        match t.into_storage() {
            CpuStorage::F32(v) => Ok(v),
            CpuStorage::F16(v) => Ok(v.iter().map(|x| x.to_f32()).collect()),
            CpuStorage::BF16(v) => Ok(v.iter().map(|x| x.to_f32()).collect()),
            CpuStorage::Blocks(_) => unreachable!("handled above"),
        }
    }

    fn host_f32_mut<'t>(&self, t: &'t mut CpuTensor) -> Option<&'t mut [f32]> {
        match t.storage_mut() {
            CpuStorage::F32(v) => Some(v),
            _ => None,
        }
    }

    fn slice_rows(&self, x: &CpuTensor, start: usize, end: usize) -> Result<CpuTensor> {
        let (rows, cols) = dims2("slice_rows", x)?;
        if start > end || end > rows {
            return Err(EngineError::shape("slice_rows", format!("rows {start}..{end} of {rows}")));
        }
        let data = f32_data("slice_rows", x)?;
        Ok(output(data[start * cols..end * cols].to_vec(), &[end - start, cols]))
    }

    fn concat_rows(&self, parts: &[&CpuTensor]) -> Result<CpuTensor> {
        let cols = parts.first().map(|p| p.cols()).unwrap_or(0);
        let mut data = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        for p in parts {
            let (_, c) = dims2("concat_rows", p)?;
            if c != cols {
                return Err(EngineError::shape("concat_rows", format!("{c} columns after {cols}")));
            }
            data.extend_from_slice(f32_data("concat_rows", p)?);
        }
        let rows = data.len() / cols.max(1);
        Ok(output(data, &[rows, cols]))
    }

    fn mask_columns(&self, x: &mut CpuTensor, ids: &[u32]) -> Result<()> {
        let (_, cols) = dims2("mask_columns", x)?;
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= cols) {
            return Err(EngineError::invalid("mask_columns", format!("column {bad} of {cols}")));
        }
        for row in f32_data_mut("mask_columns", x)?.chunks_mut(cols.max(1)) {
            ids.iter().for_each(|&i| row[i as usize] = f32::NEG_INFINITY);
        }
        Ok(())
    }

    fn embedding(&self, table: &CpuTensor, ids: &[u32]) -> Result<CpuTensor> {
        elementwise::embedding(table, ids)
    }

    fn rms_norm(&self, x: &CpuTensor, weight: &CpuTensor, eps: f32) -> Result<CpuTensor> {
        norm::rms_norm(x, weight, eps)
    }

    fn linear(&self, x: &CpuTensor, w: &CpuTensor, bias: Option<&CpuTensor>) -> Result<CpuTensor> {
        matmul::linear(x, w, bias)
    }

    fn rope(&self, x: &mut CpuTensor, head_dim: usize, positions: &[u32], theta: f32) -> Result<()> {
        rope::rope(x, head_dim, positions, theta)
    }

    fn write_kv(&self, cache: &mut CpuTensor, x: &CpuTensor, start_pos: usize) -> Result<()> {
        attention::write_kv(cache, x, start_pos)
    }

    fn attention(&self, q: &CpuTensor, k: &CpuTensor, v: &CpuTensor, shape: AttentionShape) -> Result<CpuTensor> {
        attention::attention(q, k, v, shape)
    }

    fn silu_mul(&self, gate: &CpuTensor, up: &CpuTensor) -> Result<CpuTensor> {
        elementwise::silu_mul(gate, up)
    }

    fn add_assign(&self, x: &mut CpuTensor, y: &CpuTensor) -> Result<()> {
        elementwise::add_assign(x, y)
    }

    fn softmax_entropy(&self, logits: &CpuTensor, inv_temperature: f32) -> Result<(CpuTensor, CpuTensor)> {
        entropy::softmax_entropy(logits, inv_temperature)
    }

    fn softmax_entropy_certainty(
        &self,
        logits: &CpuTensor,
        inv_temperature: f32,
    ) -> Result<(CpuTensor, CpuTensor, CpuTensor)> {
        entropy::softmax_entropy_certainty(logits, inv_temperature)
    }

    fn entropy_grad(
        &self,
        logits: &CpuTensor,
        lse: &CpuTensor,
        entropy: &CpuTensor,
        upstream: &CpuTensor,
        inv_temperature: f32,
    ) -> Result<CpuTensor> {
        entropy_grad::entropy_grad(logits, lse, entropy, upstream, inv_temperature)
    }

    fn em_inf(&self, logits: &CpuTensor, params: &EmInfParams) -> Result<(CpuTensor, Vec<EmInfRowStats>)> {
        em_inf::em_inf(logits, params)
    }

    fn sample(&self, logits: &CpuTensor, params: &SamplingParams, rngs: &mut [Rng]) -> Result<Vec<SampleOutcome>> {
        sample::sample(logits, params, rngs)
    }

    fn rms_norm_backward(
        &self,
        x: &CpuTensor,
        weight: &CpuTensor,
        dy: &CpuTensor,
        eps: f32,
        d_weight: &mut CpuTensor,
    ) -> Result<CpuTensor> {
        norm::rms_norm_backward(x, weight, dy, eps, d_weight)
    }

    fn linear_backward(
        &self,
        x: &CpuTensor,
        w: &CpuTensor,
        dy: &CpuTensor,
        dw: &mut CpuTensor,
        d_bias: Option<&mut CpuTensor>,
    ) -> Result<CpuTensor> {
        matmul::linear_backward(x, w, dy, dw, d_bias)
    }

    fn rope_backward(&self, dy: &mut CpuTensor, head_dim: usize, positions: &[u32], theta: f32) -> Result<()> {
        rope::rope_backward(dy, head_dim, positions, theta)
    }

    fn attention_backward(
        &self,
        q: &CpuTensor,
        k: &CpuTensor,
        v: &CpuTensor,
        dout: &CpuTensor,
        shape: AttentionShape,
    ) -> Result<(CpuTensor, CpuTensor, CpuTensor)> {
        attention::attention_backward(q, k, v, dout, shape)
    }

    fn silu_mul_backward(&self, gate: &CpuTensor, up: &CpuTensor, dy: &CpuTensor) -> Result<(CpuTensor, CpuTensor)> {
        elementwise::silu_mul_backward(gate, up, dy)
    }

    fn embedding_backward(&self, ids: &[u32], dy: &CpuTensor, d_table: &mut CpuTensor) -> Result<()> {
        elementwise::embedding_backward(ids, dy, d_table)
    }

    fn token_logprobs(&self, logits: &CpuTensor, lse: &CpuTensor, targets: &[u32], inv_t: f32) -> Result<CpuTensor> {
        entropy_grad::token_logprobs(logits, lse, targets, inv_t)
    }

    fn policy_grad(
        &self,
        logits: &CpuTensor,
        lse: &CpuTensor,
        entropy: &CpuTensor,
        targets: &[u32],
        d_logp: &CpuTensor,
        d_entropy: &CpuTensor,
        inv_t: f32,
    ) -> Result<CpuTensor> {
        entropy_grad::policy_grad(logits, lse, entropy, targets, d_logp, d_entropy, inv_t)
    }
}

fn cpu_model_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}
