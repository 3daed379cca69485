//! The wgpu backend: every op is a WGSL kernel from `kernels/wgsl/` (see
//! [`kernels::Kernel`]), weights and activations stay in GPU buffers, and work is
//! recorded into one pending encoder and submitted only when the host reads a result.
//!
//! Storage: f32 as is; f16 and bf16 packed two per 32-bit word and widened in the
//! kernels (`unpack2x16float` for f16 is core WGSL, so no SHADER_F16 feature is needed
//! and 16-bit weights work on every adapter). Tensors larger than the adapter's storage
//! binding limit (Qwen's 151936×896 embedding on lavapipe's 128 MiB) are bound in
//! windows of rows. Reductions use subgroup operations when the adapter has them and
//! workgroup memory otherwise ([`WgpuOptions::force_shared_reductions`]).

mod backward;
mod device;
mod em;
mod forward;
mod kernels;
mod quiet;

pub use device::WgpuOptions;
use device::{Binding, Gpu};

use crate::backend::{AttentionShape, Backend, Capabilities};
use crate::{
    DType, EmInfParams, EmInfRowStats, EngineError, HostData, HostVec, Result, Rng, SampleOutcome, SamplingParams,
    Tensor,
};

pub type WgpuTensor = Tensor<WgpuBackend>;

/// A tensor's GPU buffer (at least one word long; 16-bit data padded to whole words),
/// returned to the backend's pool when the tensor is dropped.
pub struct WgpuStorage {
    buffer: wgpu::Buffer,
    pool: std::sync::Arc<device::BufferPool>,
}

impl Drop for WgpuStorage {
    fn drop(&mut self) {
        self.pool.give(self.buffer.clone());
    }
}

#[derive(Clone)]
pub struct WgpuBackend {
    gpu: std::sync::Arc<Gpu>,
}

impl WgpuBackend {
    /// Open the best adapter; an error (not a panic) when there is none.
    pub fn new() -> Result<Self> {
        Self::with_options(&WgpuOptions::default())
    }

    pub fn with_options(options: &WgpuOptions) -> Result<Self> {
        Ok(WgpuBackend { gpu: std::sync::Arc::new(Gpu::open(options)?) })
    }

    /// Whether reductions run on subgroup operations (false: workgroup memory).
    pub fn uses_subgroups(&self) -> bool {
        self.gpu.subgroups
    }

    /// Whether kernels can be timed on the device (TIMESTAMP_QUERY), see [`Backend::timed`].
    pub fn has_timestamps(&self) -> bool {
        self.gpu.timestamps
    }

    /// (dispatches recorded, output buffers newly allocated, bind groups newly created)
    /// since the backend was opened: a steady decode step should add dispatches only.
    pub fn allocation_counts(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.gpu.counters;
        (c.dispatches.load(Relaxed), c.new_buffers.load(Relaxed), c.new_bind_groups.load(Relaxed))
    }

    /// The adapter's storage-binding limit in bytes.
    pub fn max_binding_bytes(&self) -> u64 {
        self.gpu.limits.max_storage_buffer_binding_size
    }

    /// Compile every kernel for every storage dtype, so that shader errors surface now.
    pub fn compile_all(&self) -> Result<()> {
        self.gpu.compile_all()
    }

    /// A software adapter (Mesa lavapipe, WARP): correct, but slower than the CPU backend.
    pub fn is_cpu_emulation(&self) -> bool {
        self.gpu.info.device_type == wgpu::DeviceType::Cpu
    }

    fn tensor(&self, buffer: wgpu::Buffer, shape: &[usize], dtype: DType) -> WgpuTensor {
        Tensor::from_parts(WgpuStorage { buffer, pool: self.gpu.pool.clone() }, shape.to_vec(), dtype)
    }

    /// A tensor whose contents the calling op overwrites entirely.
    fn empty(&self, shape: &[usize], dtype: DType) -> Result<WgpuTensor> {
        if dtype.is_quantised() {
            return Err(EngineError::DType { op: "empty", dtype });
        }
        let bytes = shape.iter().product::<usize>() * dtype.size_bytes();
        Ok(self.tensor(self.gpu.storage_buffer(bytes as u64)?, shape, dtype))
    }
}

/// What `entmin doctor` shows of one adapter.
#[derive(Clone, Debug)]
pub struct AdapterReport {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    /// The features entmin uses or could use, present or not.
    pub features: Vec<(&'static str, bool)>,
    pub limits: Vec<(&'static str, u64)>,
}

/// Every adapter the instance sees (WGPU_BACKEND narrows the search).
pub fn adapter_reports() -> Vec<AdapterReport> {
    let adapters = quiet::without_driver_noise(|| {
        pollster::block_on(device::instance().enumerate_adapters(wgpu::Backends::all()))
    });
    adapters
        .iter()
        .map(|a| {
            let (info, f, l) = (a.get_info(), a.features(), a.limits());
            AdapterReport {
                name: info.name,
                backend: format!("{:?}", info.backend),
                device_type: format!("{:?}", info.device_type),
                features: vec![
                    ("subgroup", f.contains(wgpu::Features::SUBGROUP)),
                    ("shader_f16", f.contains(wgpu::Features::SHADER_F16)),
                    ("timestamp_query", f.contains(wgpu::Features::TIMESTAMP_QUERY)),
                ],
                limits: vec![
                    ("max_buffer_size", l.max_buffer_size),
                    ("max_storage_buffer_binding_size", l.max_storage_buffer_binding_size),
                    ("max_compute_workgroup_storage_size", l.max_compute_workgroup_storage_size as u64),
                    ("max_compute_invocations_per_workgroup", l.max_compute_invocations_per_workgroup as u64),
                    ("min_subgroup_size", info.subgroup_min_size as u64),
                    ("max_subgroup_size", info.subgroup_max_size as u64),
                ],
            }
        })
        .collect()
}

fn buf(t: &WgpuTensor) -> &wgpu::Buffer {
    &t.storage().buffer
}

fn whole(t: &WgpuTensor) -> Binding<'_> {
    Binding::whole(buf(t))
}

/// Rows `rows` of a 2-D tensor with `cols` columns, as a binding.
fn rows_of<'a>(t: &'a WgpuTensor, cols: usize, rows: &std::ops::Range<usize>) -> Binding<'a> {
    let row_bytes = t.dtype().bytes_for(cols).expect("the op checked its rows with row_bytes") as u64;
    // A window of block rows can end inside a word (18- or 34-byte blocks): bind whole
    // words, which the buffer's padding to 4 bytes holds.
    let len = ((rows.end - rows.start) as u64 * row_bytes).div_ceil(4) * 4;
    Binding::range(buf(t), rows.start as u64 * row_bytes, len)
}

/// [`crate::checks::row_bytes`] of `t`, as a binding size.
fn row_bytes(op: &'static str, t: &WgpuTensor, cols: usize) -> Result<u64> {
    Ok(crate::checks::row_bytes(op, t.dtype(), cols)? as u64)
}

pub(crate) fn dims2(op: &'static str, t: &WgpuTensor) -> Result<(usize, usize)> {
    match t.shape() {
        [r, c] => Ok((*r, *c)),
        s => Err(EngineError::shape(op, format!("expected a 2-D tensor, got {s:?}"))),
    }
}

fn require_f32(op: &'static str, t: &WgpuTensor) -> Result<()> {
    if t.dtype() == DType::F32 {
        Ok(())
    } else {
        Err(EngineError::DType { op, dtype: t.dtype() })
    }
}

impl Backend for WgpuBackend {
    type Storage = WgpuStorage;

    fn name(&self) -> &'static str {
        "wgpu"
    }

    fn capabilities(&self) -> Capabilities {
        let info = &self.gpu.info;
        Capabilities {
            device: format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type),
            weight_dtypes: [DType::F32, DType::F16, DType::BF16]
                .into_iter()
                .chain(kernels::GPU_BLOCK_FORMATS)
                .collect(),
            simd_width: self.gpu.subgroups.then_some(info.subgroup_min_size),
            max_buffer_bytes: self.gpu.limits.max_buffer_size,
            parallelism: 1,
        }
    }

    fn synchronize(&self) -> Result<()> {
        self.gpu.finish()
    }

    fn timed<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<(T, Option<std::time::Duration>)> {
        self.gpu.timed(f)
    }

    fn upload(&self, data: HostData<'_>, shape: &[usize]) -> Result<WgpuTensor> {
        let bytes = crate::gpu_storage::upload_bytes(&data, shape)?;
        Ok(self.tensor(self.gpu.storage_buffer_with(bytes)?, shape, data.dtype()))
    }

    fn upload_as(&self, data: &[f32], shape: &[usize], dtype: DType) -> Result<WgpuTensor> {
        self.upload_owned(HostVec::from_f32(data, dtype), shape)
    }

    fn upload_owned(&self, data: HostVec, shape: &[usize]) -> Result<WgpuTensor> {
        self.upload(data.as_data(), shape)
    }

    fn zeros(&self, shape: &[usize], dtype: DType) -> Result<WgpuTensor> {
        if dtype.is_quantised() {
            return Err(EngineError::DType { op: "zeros", dtype });
        }
        let bytes = shape.iter().product::<usize>() * dtype.size_bytes();
        Ok(self.tensor(self.gpu.zeroed_buffer(bytes as u64)?, shape, dtype))
    }

    fn to_host_f32(&self, t: &WgpuTensor) -> Result<Vec<f32>> {
        let bytes = self.gpu.read(buf(t), 0, t.size_bytes() as u64)?;
        crate::gpu_storage::to_f32(t.dtype(), &bytes, t.len())
    }

    fn slice_rows(&self, x: &WgpuTensor, start: usize, end: usize) -> Result<WgpuTensor> {
        let (rows, cols) = dims2("slice_rows", x)?;
        require_f32("slice_rows", x)?;
        if start > end || end > rows {
            return Err(EngineError::shape("slice_rows", format!("rows {start}..{end} of {rows}")));
        }
        let out = self.empty(&[end - start, cols], DType::F32)?;
        let row_bytes = (cols * 4) as u64;
        self.gpu.copy(buf(x), start as u64 * row_bytes, buf(&out), 0, (end - start) as u64 * row_bytes);
        Ok(out)
    }

    fn concat_rows(&self, parts: &[&WgpuTensor]) -> Result<WgpuTensor> {
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
        let out = self.empty(&[rows, cols], DType::F32)?;
        let mut offset = 0;
        for p in parts {
            let bytes = p.size_bytes() as u64;
            self.gpu.copy(buf(p), 0, buf(&out), offset, bytes);
            offset += bytes;
        }
        Ok(out)
    }

    fn mask_columns(&self, x: &mut WgpuTensor, ids: &[u32]) -> Result<()> {
        em::mask_columns(self, x, ids)
    }

    fn embedding(&self, table: &WgpuTensor, ids: &[u32]) -> Result<WgpuTensor> {
        forward::embedding(self, table, ids)
    }

    fn rms_norm(&self, x: &WgpuTensor, weight: &WgpuTensor, eps: f32) -> Result<WgpuTensor> {
        forward::rms_norm(self, x, weight, eps)
    }

    fn linear(&self, x: &WgpuTensor, w: &WgpuTensor, bias: Option<&WgpuTensor>) -> Result<WgpuTensor> {
        forward::linear(self, x, w, bias)
    }

    fn rope(&self, x: &mut WgpuTensor, head_dim: usize, positions: &[u32], theta: f32) -> Result<()> {
        forward::rope(self, x, head_dim, positions, theta, false)
    }

    fn write_kv(&self, cache: &mut WgpuTensor, x: &WgpuTensor, start_pos: usize) -> Result<()> {
        forward::write_kv(self, cache, x, start_pos)
    }

    fn attention(&self, q: &WgpuTensor, k: &WgpuTensor, v: &WgpuTensor, shape: AttentionShape) -> Result<WgpuTensor> {
        forward::attention(self, q, k, v, shape)
    }

    fn silu_mul(&self, gate: &WgpuTensor, up: &WgpuTensor) -> Result<WgpuTensor> {
        forward::silu_mul(self, gate, up)
    }

    fn add_assign(&self, x: &mut WgpuTensor, y: &WgpuTensor) -> Result<()> {
        forward::add_assign(self, x, y)
    }

    fn softmax_entropy(&self, logits: &WgpuTensor, inv_temperature: f32) -> Result<(WgpuTensor, WgpuTensor)> {
        let (lse, entropy, _) = em::softmax_entropy_certainty(self, logits, inv_temperature)?;
        Ok((lse, entropy))
    }

    fn softmax_entropy_certainty(
        &self,
        logits: &WgpuTensor,
        inv_temperature: f32,
    ) -> Result<(WgpuTensor, WgpuTensor, WgpuTensor)> {
        em::softmax_entropy_certainty(self, logits, inv_temperature)
    }

    fn entropy_grad(
        &self,
        logits: &WgpuTensor,
        lse: &WgpuTensor,
        entropy: &WgpuTensor,
        upstream: &WgpuTensor,
        inv_temperature: f32,
    ) -> Result<WgpuTensor> {
        em::entropy_grad(self, logits, lse, entropy, upstream, inv_temperature)
    }

    fn em_inf(&self, logits: &WgpuTensor, params: &EmInfParams) -> Result<(WgpuTensor, Vec<EmInfRowStats>)> {
        em::em_inf(self, logits, params)
    }

    fn sample(&self, logits: &WgpuTensor, params: &SamplingParams, rngs: &mut [Rng]) -> Result<Vec<SampleOutcome>> {
        em::sample(self, logits, params, rngs)
    }

    fn rms_norm_backward(
        &self,
        x: &WgpuTensor,
        weight: &WgpuTensor,
        dy: &WgpuTensor,
        eps: f32,
        d_weight: &mut WgpuTensor,
    ) -> Result<WgpuTensor> {
        backward::rms_norm_backward(self, x, weight, dy, eps, d_weight)
    }

    fn linear_backward(
        &self,
        x: &WgpuTensor,
        w: &WgpuTensor,
        dy: &WgpuTensor,
        dw: &mut WgpuTensor,
        d_bias: Option<&mut WgpuTensor>,
    ) -> Result<WgpuTensor> {
        backward::linear_backward(self, x, w, dy, dw, d_bias)
    }

    fn rope_backward(&self, dy: &mut WgpuTensor, head_dim: usize, positions: &[u32], theta: f32) -> Result<()> {
        forward::rope(self, dy, head_dim, positions, theta, true)
    }

    fn attention_backward(
        &self,
        q: &WgpuTensor,
        k: &WgpuTensor,
        v: &WgpuTensor,
        dout: &WgpuTensor,
        shape: AttentionShape,
    ) -> Result<(WgpuTensor, WgpuTensor, WgpuTensor)> {
        backward::attention_backward(self, q, k, v, dout, shape)
    }

    fn silu_mul_backward(
        &self,
        gate: &WgpuTensor,
        up: &WgpuTensor,
        dy: &WgpuTensor,
    ) -> Result<(WgpuTensor, WgpuTensor)> {
        backward::silu_mul_backward(self, gate, up, dy)
    }

    fn embedding_backward(&self, ids: &[u32], dy: &WgpuTensor, d_table: &mut WgpuTensor) -> Result<()> {
        backward::embedding_backward(self, ids, dy, d_table)
    }

    fn token_logprobs(&self, logits: &WgpuTensor, lse: &WgpuTensor, targets: &[u32], inv_t: f32) -> Result<WgpuTensor> {
        em::token_logprobs(self, logits, lse, targets, inv_t)
    }

    fn policy_grad(
        &self,
        logits: &WgpuTensor,
        lse: &WgpuTensor,
        entropy: &WgpuTensor,
        targets: &[u32],
        d_logp: &WgpuTensor,
        d_entropy: &WgpuTensor,
        inv_t: f32,
    ) -> Result<WgpuTensor> {
        em::policy_grad(self, logits, lse, entropy, targets, d_logp, d_entropy, inv_t)
    }
}
