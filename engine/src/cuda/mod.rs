//! The CUDA backend: every op is one of our kernels in `kernels/cuda/` (compiled at run
//! time with NVRTC for the device's compute capability, see [`compile`]), except the
//! prefill GEMM of f32 weights, which goes to cuBLAS. Weights and activations stay on
//! the device and every op is queued on one stream; the host waits only when it reads
//! a result (sampled tokens, entropies, EM-INF statistics).
//!
//! Storage is raw bytes: f32 as is, f16 and bf16 as 16-bit words widened in the kernels,
//! block formats as the GGUF file stores them, decoded in the weight kernels.
//! Kernel launch ABI and caching: docs/cuda.md.

mod backward;
pub mod compile;
mod device;
mod em;
mod forward;
pub mod libraries;

use cudarc::driver::CudaSlice;

pub use device::{device_count, driver_version};
use device::{driver_error, Device};

use crate::backend::{AttentionShape, Backend, Capabilities};
use crate::{
    DType, EmInfParams, EmInfRowStats, EngineError, HostData, HostVec, Result, Rng, SampleOutcome, SamplingParams,
    Tensor,
};

pub type CudaTensor = Tensor<CudaBackend>;

/// A tensor's device memory (at least one word long).
pub struct CudaStorage {
    buf: CudaSlice<u8>,
}

#[derive(Clone)]
pub struct CudaBackend {
    dev: std::sync::Arc<Device>,
}

impl CudaBackend {
    /// Open CUDA device `ordinal`; a clear error (never a panic) when there is no driver,
    /// no device or no NVRTC.
    pub fn new(ordinal: usize) -> Result<Self> {
        Ok(CudaBackend { dev: std::sync::Arc::new(Device::open(ordinal)?) })
    }

    /// Compute capability (major, minor).
    pub fn arch(&self) -> (u32, u32) {
        self.dev.arch
    }

    /// Whether f32-weight prefill GEMMs run on cuBLAS (false: libcublas was not found).
    pub fn has_cublas(&self) -> bool {
        self.dev.blas.is_some()
    }

    /// Why there is no cuBLAS (None when there is).
    pub fn cublas_missing(&self) -> Option<&str> {
        self.dev.blas_missing.as_deref()
    }

    /// Compile and load every kernel for every storage dtype now, so errors surface early.
    pub fn compile_all(&self) -> Result<()> {
        for kernel in crate::kernel::Kernel::ALL {
            for dtype in kernel.storage_dtypes() {
                self.dev.function(kernel, dtype)?;
            }
        }
        Ok(())
    }

    fn tensor(&self, buf: CudaSlice<u8>, shape: &[usize], dtype: DType) -> CudaTensor {
        Tensor::from_parts(CudaStorage { buf }, shape.to_vec(), dtype)
    }

    /// A tensor whose contents the calling op overwrites entirely.
    fn empty(&self, shape: &[usize], dtype: DType) -> Result<CudaTensor> {
        if dtype.is_quantised() {
            return Err(EngineError::DType { op: "empty", dtype });
        }
        let bytes = shape.iter().product::<usize>() * dtype.size_bytes();
        Ok(self.tensor(self.dev.alloc(bytes)?, shape, dtype))
    }

    /// Copy `len` bytes from `src` at `src_at` to `dst` at `dst_at`, on the stream.
    fn copy(&self, src: &CudaTensor, src_at: usize, dst: &mut CudaTensor, dst_at: usize, len: usize) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        self.dev
            .stream
            .memcpy_dtod(
                &buf(src).slice(src_at..src_at + len),
                &mut dst.storage_mut().buf.slice_mut(dst_at..dst_at + len),
            )
            .map_err(|e| driver_error("device copy", e))
    }
}

fn buf(t: &CudaTensor) -> &CudaSlice<u8> {
    &t.storage().buf
}

pub(crate) fn dims2(op: &'static str, t: &CudaTensor) -> Result<(usize, usize)> {
    match t.shape() {
        [r, c] => Ok((*r, *c)),
        s => Err(EngineError::shape(op, format!("expected a 2-D tensor, got {s:?}"))),
    }
}

fn require_f32(op: &'static str, t: &CudaTensor) -> Result<()> {
    if t.dtype() == DType::F32 {
        Ok(())
    } else {
        Err(EngineError::DType { op, dtype: t.dtype() })
    }
}

/// A size as the kernels' `unsigned int`, or an error naming the op.
fn u32_of(op: &'static str, n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| EngineError::shape(op, format!("{n} exceeds the kernels' 32-bit sizes")))
}

impl Backend for CudaBackend {
    type Storage = CudaStorage;

    fn name(&self) -> &'static str {
        "cuda"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            device: format!("{} (sm_{}{})", self.dev.name, self.dev.arch.0, self.dev.arch.1),
            weight_dtypes: [DType::F32, DType::F16, DType::BF16]
                .into_iter()
                .chain(crate::kernel::GPU_BLOCK_FORMATS)
                .collect(),
            simd_width: Some(32),
            max_buffer_bytes: self.dev.total_mem as u64,
            parallelism: self.dev.multiprocessors,
        }
    }

    fn synchronize(&self) -> Result<()> {
        self.dev.synchronize()
    }

    fn timed<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<(T, Option<std::time::Duration>)> {
        self.dev.timed(f)
    }

    fn upload(&self, data: HostData<'_>, shape: &[usize]) -> Result<CudaTensor> {
        let bytes = crate::gpu_storage::upload_bytes(&data, shape)?;
        Ok(self.tensor(self.dev.upload(bytes)?, shape, data.dtype()))
    }

    fn upload_as(&self, data: &[f32], shape: &[usize], dtype: DType) -> Result<CudaTensor> {
        self.upload_owned(HostVec::from_f32(data, dtype), shape)
    }

    fn upload_owned(&self, data: HostVec, shape: &[usize]) -> Result<CudaTensor> {
        self.upload(data.as_data(), shape)
    }

    fn zeros(&self, shape: &[usize], dtype: DType) -> Result<CudaTensor> {
        if dtype.is_quantised() {
            return Err(EngineError::DType { op: "zeros", dtype });
        }
        let bytes = shape.iter().product::<usize>() * dtype.size_bytes();
        Ok(self.tensor(self.dev.alloc_zeros(bytes)?, shape, dtype))
    }

    fn to_host_f32(&self, t: &CudaTensor) -> Result<Vec<f32>> {
        let bytes = self.dev.read(buf(t), t.size_bytes())?;
        crate::gpu_storage::to_f32(t.dtype(), &bytes, t.len())
    }

    fn slice_rows(&self, x: &CudaTensor, start: usize, end: usize) -> Result<CudaTensor> {
        let (rows, cols) = dims2("slice_rows", x)?;
        require_f32("slice_rows", x)?;
        if start > end || end > rows {
            return Err(EngineError::shape("slice_rows", format!("rows {start}..{end} of {rows}")));
        }
        let mut out = self.empty(&[end - start, cols], DType::F32)?;
        self.copy(x, start * cols * 4, &mut out, 0, (end - start) * cols * 4)?;
        Ok(out)
    }

    fn concat_rows(&self, parts: &[&CudaTensor]) -> Result<CudaTensor> {
        let cols = parts.first().map(|p| p.cols()).unwrap_or(0);
        let mut rows = 0;
        for p in parts {
            let (r, c) = dims2("concat_rows", p)?;
            require_f32("concat_rows", p)?;
            if c != cols {
                return Err(EngineError::shape("concat_rows", format!("{c} columns after {cols}")));
            }
            rows += r;
        }
        let mut out = self.empty(&[rows, cols], DType::F32)?;
        let mut offset = 0;
        for p in parts {
            self.copy(p, 0, &mut out, offset, p.size_bytes())?;
            offset += p.size_bytes();
        }
        Ok(out)
    }

    fn mask_columns(&self, x: &mut CudaTensor, ids: &[u32]) -> Result<()> {
        em::mask_columns(self, x, ids)
    }

    fn embedding(&self, table: &CudaTensor, ids: &[u32]) -> Result<CudaTensor> {
        forward::embedding(self, table, ids)
    }

    fn rms_norm(&self, x: &CudaTensor, weight: &CudaTensor, eps: f32) -> Result<CudaTensor> {
        forward::rms_norm(self, x, weight, eps)
    }

    fn linear(&self, x: &CudaTensor, w: &CudaTensor, bias: Option<&CudaTensor>) -> Result<CudaTensor> {
        forward::linear(self, x, w, bias)
    }

    fn rope(&self, x: &mut CudaTensor, head_dim: usize, positions: &[u32], theta: f32) -> Result<()> {
        forward::rope(self, x, head_dim, positions, theta, false)
    }

    fn write_kv(&self, cache: &mut CudaTensor, x: &CudaTensor, start_pos: usize) -> Result<()> {
        let (capacity, dim) = dims2("write_kv", cache)?;
        let (t, xdim) = dims2("write_kv", x)?;
        require_f32("write_kv", cache)?;
        require_f32("write_kv", x)?;
        crate::checks::write_kv(capacity, dim, t, xdim, start_pos)?;
        self.copy(x, 0, cache, start_pos * dim * 4, t * dim * 4)
    }

    fn attention(&self, q: &CudaTensor, k: &CudaTensor, v: &CudaTensor, shape: AttentionShape) -> Result<CudaTensor> {
        forward::attention(self, q, k, v, shape)
    }

    fn silu_mul(&self, gate: &CudaTensor, up: &CudaTensor) -> Result<CudaTensor> {
        forward::silu_mul(self, gate, up)
    }

    fn add_assign(&self, x: &mut CudaTensor, y: &CudaTensor) -> Result<()> {
        forward::add_assign(self, x, y)
    }

    fn softmax_entropy(&self, logits: &CudaTensor, inv_temperature: f32) -> Result<(CudaTensor, CudaTensor)> {
        let (lse, entropy, _) = em::softmax_entropy_certainty(self, logits, inv_temperature)?;
        Ok((lse, entropy))
    }

    fn softmax_entropy_certainty(
        &self,
        logits: &CudaTensor,
        inv_temperature: f32,
    ) -> Result<(CudaTensor, CudaTensor, CudaTensor)> {
        em::softmax_entropy_certainty(self, logits, inv_temperature)
    }

    fn entropy_grad(
        &self,
        logits: &CudaTensor,
        lse: &CudaTensor,
        entropy: &CudaTensor,
        upstream: &CudaTensor,
        inv_temperature: f32,
    ) -> Result<CudaTensor> {
        em::entropy_grad(self, logits, lse, entropy, upstream, inv_temperature)
    }

    fn em_inf(&self, logits: &CudaTensor, params: &EmInfParams) -> Result<(CudaTensor, Vec<EmInfRowStats>)> {
        em::em_inf(self, logits, params)
    }

    fn sample(&self, logits: &CudaTensor, params: &SamplingParams, rngs: &mut [Rng]) -> Result<Vec<SampleOutcome>> {
        em::sample(self, logits, params, rngs)
    }

    fn rms_norm_backward(
        &self,
        x: &CudaTensor,
        weight: &CudaTensor,
        dy: &CudaTensor,
        eps: f32,
        d_weight: &mut CudaTensor,
    ) -> Result<CudaTensor> {
        backward::rms_norm_backward(self, x, weight, dy, eps, d_weight)
    }

    fn linear_backward(
        &self,
        x: &CudaTensor,
        w: &CudaTensor,
        dy: &CudaTensor,
        dw: &mut CudaTensor,
        d_bias: Option<&mut CudaTensor>,
    ) -> Result<CudaTensor> {
        backward::linear_backward(self, x, w, dy, dw, d_bias)
    }

    fn rope_backward(&self, dy: &mut CudaTensor, head_dim: usize, positions: &[u32], theta: f32) -> Result<()> {
        forward::rope(self, dy, head_dim, positions, theta, true)
    }

    fn attention_backward(
        &self,
        q: &CudaTensor,
        k: &CudaTensor,
        v: &CudaTensor,
        dout: &CudaTensor,
        shape: AttentionShape,
    ) -> Result<(CudaTensor, CudaTensor, CudaTensor)> {
        backward::attention_backward(self, q, k, v, dout, shape)
    }

    fn silu_mul_backward(
        &self,
        gate: &CudaTensor,
        up: &CudaTensor,
        dy: &CudaTensor,
    ) -> Result<(CudaTensor, CudaTensor)> {
        backward::silu_mul_backward(self, gate, up, dy)
    }

    fn embedding_backward(&self, ids: &[u32], dy: &CudaTensor, d_table: &mut CudaTensor) -> Result<()> {
        backward::embedding_backward(self, ids, dy, d_table)
    }

    fn token_logprobs(&self, logits: &CudaTensor, lse: &CudaTensor, targets: &[u32], inv_t: f32) -> Result<CudaTensor> {
        em::token_logprobs(self, logits, lse, targets, inv_t)
    }

    fn policy_grad(
        &self,
        logits: &CudaTensor,
        lse: &CudaTensor,
        entropy: &CudaTensor,
        targets: &[u32],
        d_logp: &CudaTensor,
        d_entropy: &CudaTensor,
        inv_t: f32,
    ) -> Result<CudaTensor> {
        em::policy_grad(self, logits, lse, entropy, targets, d_logp, d_entropy, inv_t)
    }
}
