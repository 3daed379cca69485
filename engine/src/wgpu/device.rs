//! The wgpu device behind the backend: adapter choice, limits and features queried
//! from the adapter, compiled pipelines cached per (kernel, dtype), and one pending
//! command encoder that every op records into. Work is submitted only when the host
//! needs a result (a read-back) or the encoder grows long, so a forward pass is a
//! handful of submissions, not one per op.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use super::kernels::Kernel;
use crate::{DType, EngineError, Result};

/// Passes recorded before the encoder is submitted even without a read-back.
const MAX_PENDING_PASSES: usize = 256;
/// Bytes of freed buffers kept for reuse; beyond it freed buffers are released.
const MAX_POOLED_BYTES: u64 = 512 << 20;
/// Bind groups kept for reuse; the cache is emptied when it grows past this.
const MAX_CACHED_BIND_GROUPS: usize = 4096;
/// Compute passes one timed measurement can hold.
const MAX_TIMED_PASSES: u32 = 2048; // wgpu allows 4096 queries per set: two per pass

/// How to open the device.
#[derive(Clone, Debug, Default)]
pub struct WgpuOptions {
    /// Use workgroup-memory reductions even when the adapter has subgroups (the
    /// fallback path, forced in tests so that both are exercised).
    pub force_shared_reductions: bool,
    /// Bind at most this many bytes of a buffer at once, below the adapter's limit: makes
    /// small tensors take the windowed paths of large ones (tests), or steps around a
    /// driver that misbehaves near the limit it advertises.
    pub max_binding_bytes: Option<u64>,
}

pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub subgroups: bool,
    pub timestamps: bool,
    profiler: Mutex<Option<Profiler>>,
    /// A one-word buffer bound where a kernel's optional input is absent.
    pub dummy: wgpu::Buffer,
    /// A one-word buffer holding 1.0f32: with strides 0, the all-ones row that turns
    /// matmul_strided into a sum over rows (dweight, dbias).
    pub one: wgpu::Buffer,
    pipelines: Mutex<HashMap<(Kernel, DType, u32), wgpu::ComputePipeline>>,
    pub pool: std::sync::Arc<BufferPool>,
    bind_groups: Mutex<HashMap<BindKey, wgpu::BindGroup>>,
    pub counters: Counters,
    pending: Mutex<Pending>,
    /// Validation or out-of-memory errors wgpu reports outside an error scope,
    /// surfaced at the next read-back instead of panicking.
    device_error: Arc<Mutex<Option<String>>>,
}

/// Freed tensor buffers by size, handed out again to ops that allocate the same size:
/// a decode step allocates the same sequence of sizes every token, so after the first
/// token it allocates nothing, and its bind groups (keyed by buffer) repeat too.
/// Reuse is safe while earlier commands still use a buffer: every later use is recorded
/// after them on the same queue. Uploads never take pooled buffers (a queue write would
/// land before commands still pending on the buffer's previous contents).
#[derive(Default)]
pub struct BufferPool {
    free: Mutex<(HashMap<u64, Vec<wgpu::Buffer>>, u64)>,
}

impl BufferPool {
    fn take(&self, size: u64) -> Option<wgpu::Buffer> {
        let mut free = self.free.lock().expect("buffer pool");
        let buffer = free.0.get_mut(&size)?.pop()?;
        free.1 -= size;
        Some(buffer)
    }

    pub fn give(&self, buffer: wgpu::Buffer) {
        let mut free = self.free.lock().expect("buffer pool");
        if free.1 + buffer.size() <= MAX_POOLED_BYTES {
            free.1 += buffer.size();
            free.0.entry(buffer.size()).or_default().push(buffer);
        }
    }
}

/// How much the backend allocated and recorded, to check reuse.
#[derive(Default, Debug)]
pub struct Counters {
    pub dispatches: AtomicU64,
    /// Output buffers allocated because the pool had none of the size.
    pub new_buffers: AtomicU64,
    pub new_bind_groups: AtomicU64,
}

/// What makes a bind group: the pipeline and every binding, the uniform parameters included.
#[derive(PartialEq, Eq, Hash)]
struct BindKey {
    pipeline: (Kernel, DType, u32),
    bindings: Vec<(wgpu::Buffer, u64, u64)>,
    params: Vec<u32>,
}

/// Timestamp queries written at the start and end of every compute pass while a
/// measurement ([`Gpu::timed`]) is running.
struct Profiler {
    queries: wgpu::QuerySet,
    passes: u32,
    overflow: bool,
}

#[derive(Default)]
struct Pending {
    encoder: Option<wgpu::CommandEncoder>,
    passes: usize,
}

/// A storage binding: a whole buffer or a byte range of it.
#[derive(Clone, Copy)]
pub struct Binding<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub offset: u64,
    pub size: u64,
}

impl<'a> Binding<'a> {
    pub fn whole(buffer: &'a wgpu::Buffer) -> Self {
        Binding { buffer, offset: 0, size: buffer.size() }
    }

    /// Bytes `start..start + len` (the length rounded up to whole words, as bindings must be).
    pub fn range(buffer: &'a wgpu::Buffer, start: u64, len: u64) -> Self {
        Binding { buffer, offset: start, size: len.div_ceil(4).max(1) * 4 }
    }
}

fn unavailable(reason: impl Into<String>) -> EngineError {
    EngineError::Unavailable { backend: "wgpu", reason: reason.into() }
}

/// The instance every probe and device comes from (`WGPU_BACKEND` narrows the backends).
pub(crate) fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

impl Gpu {
    pub fn open(options: &WgpuOptions) -> Result<Gpu> {
        let instance = instance();
        let adapter = super::quiet::without_driver_noise(|| {
            pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            }))
        })
        .map_err(|e| {
            unavailable(format!(
                "no GPU adapter found ({e}); on Linux install a Vulkan driver, e.g. mesa-vulkan-drivers"
            ))
        })?;
        let info = adapter.get_info();
        let adapter_features = adapter.features();
        let subgroups = adapter_features.contains(wgpu::Features::SUBGROUP) && !options.force_shared_reductions;
        let mut features = wgpu::Features::empty();
        for wanted in [wgpu::Features::SUBGROUP, wgpu::Features::TIMESTAMP_QUERY] {
            if adapter_features.contains(wanted) {
                features |= wanted;
            }
        }
        // Ask for everything the adapter offers: limits such as the storage binding size
        // are the adapter's, never hard-coded.
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("entmin"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| unavailable(format!("could not open {}: {e}", info.name)))?;
        let device_error = Arc::new(Mutex::new(None));
        let sink = device_error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().expect("error sink").get_or_insert_with(|| e.to_string());
        }));
        let mut limits = limits;
        if let Some(cap) = options.max_binding_bytes {
            limits.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size.min(cap);
        }
        let dummy = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("absent input"),
            size: 4,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let one = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("1.0"),
            contents: bytemuck::bytes_of(&1f32),
            usage: wgpu::BufferUsages::STORAGE,
        });
        Ok(Gpu {
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            profiler: Mutex::new(None),
            dummy,
            one,
            device,
            queue,
            info,
            limits,
            subgroups,
            pipelines: Mutex::new(HashMap::new()),
            pool: Default::default(),
            bind_groups: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            pending: Mutex::new(Pending::default()),
            device_error,
        })
    }

    /// The pipeline of `kernel` for binding-0 dtype `dtype` and specialisation
    /// `variant` (see [`Kernel::specialisation`]), compiled on first use.
    fn pipeline(&self, kernel: Kernel, dtype: DType, variant: u32) -> Result<wgpu::ComputePipeline> {
        let dtype = if kernel.reads_any_dtype() { dtype } else { DType::F32 };
        let key = (kernel, dtype, variant);
        let mut cache = self.pipelines.lock().expect("pipeline cache");
        if let Some(p) = cache.get(&key) {
            return Ok(p.clone());
        }
        let source = kernel.wgsl_source(dtype, self.subgroups);
        let constants: Vec<(&str, f64)> =
            kernel.specialisation(variant).map(|name| (name, variant as f64)).into_iter().collect();
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(kernel.name()),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel.name()),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions { constants: &constants, ..Default::default() },
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(EngineError::invalid(
                "wgpu",
                format!("kernel {} ({dtype}) failed to compile: {e}", kernel.name()),
            ));
        }
        cache.insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// Compile every kernel for every dtype now (errors surface here, not mid-generation).
    pub fn compile_all(&self) -> Result<()> {
        for kernel in Kernel::ALL {
            for dtype in kernel.storage_dtypes() {
                for variant in kernel.variants() {
                    self.pipeline(kernel, dtype, variant)?;
                }
            }
        }
        Ok(())
    }

    /// A buffer for a kernel to fill (contents undefined: possibly a reused one).
    pub fn storage_buffer(&self, bytes: u64) -> Result<wgpu::Buffer> {
        self.check_size(bytes)?;
        if let Some(buffer) = self.pool.take(padded(bytes)) {
            return Ok(buffer);
        }
        self.counters.new_buffers.fetch_add(1, Relaxed);
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: padded(bytes),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }))
    }

    /// A zero-filled buffer (the clear is recorded in order with the pending work).
    pub fn zeroed_buffer(&self, bytes: u64) -> Result<wgpu::Buffer> {
        let buffer = self.storage_buffer(bytes)?;
        self.record(|e| e.clear_buffer(&buffer, 0, None));
        Ok(buffer)
    }

    /// A fresh buffer holding `data`.
    pub fn storage_buffer_with(&self, data: &[u8]) -> Result<wgpu::Buffer> {
        self.check_size(data.len() as u64)?;
        let mut contents = data.to_vec();
        contents.resize(padded(data.len() as u64) as usize, 0);
        Ok(self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: &contents,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        }))
    }

    fn check_size(&self, bytes: u64) -> Result<()> {
        if bytes > self.limits.max_buffer_size {
            return Err(EngineError::invalid(
                "wgpu",
                format!(
                    "a {bytes}-byte tensor exceeds the adapter's largest buffer ({} bytes)",
                    self.limits.max_buffer_size
                ),
            ));
        }
        Ok(())
    }

    /// Record one dispatch of `kernel` (specialisation `variant`, 0 when it has none): storage `bindings` at 0, 1, … and `params` (u32
    /// words, f32 as bits) as the uniform right after them, over `groups` workgroups
    /// spread across x and y.
    pub fn dispatch(
        &self,
        kernel: Kernel,
        dtype: DType,
        variant: u32,
        bindings: &[Binding<'_>],
        params: &[u32],
        groups: usize,
    ) -> Result<()> {
        if groups == 0 {
            return Ok(());
        }
        for b in bindings {
            if b.size > self.limits.max_storage_buffer_binding_size {
                return Err(EngineError::invalid(
                    kernel.name(),
                    format!(
                        "a {}-byte binding exceeds the adapter's storage binding limit ({} bytes)",
                        b.size, self.limits.max_storage_buffer_binding_size
                    ),
                ));
            }
        }
        let pipeline = self.pipeline(kernel, dtype, variant)?;
        let bind_group = self.bind_group(&pipeline, (kernel, dtype, variant), bindings, params);
        self.counters.dispatches.fetch_add(1, Relaxed);
        let max_x = self.limits.max_compute_workgroups_per_dimension as usize;
        let x = groups.min(max_x);
        let y = groups.div_ceil(x);
        if y > max_x {
            return Err(EngineError::invalid(kernel.name(), format!("{groups} workgroups exceed the adapter's grid")));
        }
        let mut profiler = self.profiler.lock().expect("profiler");
        let timed = profiler.as_mut().and_then(|p| {
            p.overflow |= p.passes == MAX_TIMED_PASSES;
            (p.passes < MAX_TIMED_PASSES).then(|| {
                p.passes += 1;
                (&p.queries, p.passes - 1)
            })
        });
        self.record(|encoder| {
            let timestamp_writes = timed.map(|(query_set, i)| wgpu::ComputePassTimestampWrites {
                query_set,
                beginning_of_pass_write_index: Some(2 * i),
                end_of_pass_write_index: Some(2 * i + 1),
            });
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(x as u32, y as u32, 1);
        });
        Ok(())
    }

    /// The bind group for these bindings and parameters: cached, so that a decode step,
    /// which repeats the same buffers (see [`BufferPool`]) and mostly the same parameters
    /// every token, reuses its bind groups and uniform buffers.
    fn bind_group(
        &self,
        pipeline: &wgpu::ComputePipeline,
        pipeline_key: (Kernel, DType, u32),
        bindings: &[Binding<'_>],
        params: &[u32],
    ) -> wgpu::BindGroup {
        let key = BindKey {
            pipeline: pipeline_key,
            bindings: bindings.iter().map(|b| (b.buffer.clone(), b.offset, b.size)).collect(),
            params: params.to_vec(),
        };
        let mut cache = self.bind_groups.lock().expect("bind group cache");
        if let Some(group) = cache.get(&key) {
            return group.clone();
        }
        let mut words = params.to_vec();
        words.resize(params.len().div_ceil(4).max(1) * 4, 0);
        let uniform = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytemuck::cast_slice(&words),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let mut entries: Vec<wgpu::BindGroupEntry<'_>> = bindings
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b.buffer,
                    offset: b.offset,
                    size: NonZeroU64::new(b.size),
                }),
            })
            .collect();
        entries.push(wgpu::BindGroupEntry { binding: bindings.len() as u32, resource: uniform.as_entire_binding() });
        let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        self.counters.new_bind_groups.fetch_add(1, Relaxed);
        if cache.len() >= MAX_CACHED_BIND_GROUPS {
            cache.clear();
        }
        cache.insert(key, group.clone());
        group
    }

    /// Run `f`, wait for its work and return the summed duration of its compute passes
    /// from timestamp queries (None without TIMESTAMP_QUERY, past MAX_TIMED_PASSES, or
    /// when `f` ran no compute pass, e.g. only copies).
    pub fn timed<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<(T, Option<std::time::Duration>)> {
        if !self.timestamps {
            let out = f()?;
            self.finish()?;
            return Ok((out, None));
        }
        self.finish()?;
        let queries = self.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("pass timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: 2 * MAX_TIMED_PASSES,
        });
        *self.profiler.lock().expect("profiler") = Some(Profiler { queries, passes: 0, overflow: false });
        let out = f();
        let profile = self.profiler.lock().expect("profiler").take().expect("profiler set above");
        let out = out?;
        if profile.passes == 0 || profile.overflow {
            self.finish()?;
            return Ok((out, None));
        }
        let n = 2 * profile.passes;
        let resolved = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("resolved timestamps"),
            size: n as u64 * 8,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        self.record(|e| e.resolve_query_set(&profile.queries, 0..n, &resolved, 0));
        let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&self.read(&resolved, 0, n as u64 * 8)?);
        let total: u64 = ticks.chunks_exact(2).map(|p| p[1].saturating_sub(p[0])).sum();
        let nanos = total as f64 * self.queue.get_timestamp_period() as f64;
        Ok((out, Some(std::time::Duration::from_nanos(nanos as u64))))
    }

    /// Record a buffer-to-buffer copy (offsets and size in bytes, multiples of 4).
    pub fn copy(&self, src: &wgpu::Buffer, src_offset: u64, dst: &wgpu::Buffer, dst_offset: u64, bytes: u64) {
        if bytes > 0 {
            self.record(|e| e.copy_buffer_to_buffer(src, src_offset, dst, dst_offset, bytes));
        }
    }

    fn record(&self, f: impl FnOnce(&mut wgpu::CommandEncoder)) {
        let mut pending = self.pending.lock().expect("pending encoder");
        let encoder = pending
            .encoder
            .get_or_insert_with(|| self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None }));
        f(encoder);
        pending.passes += 1;
        if pending.passes >= MAX_PENDING_PASSES {
            Self::submit(&self.queue, &mut pending);
        }
    }

    fn submit(queue: &wgpu::Queue, pending: &mut Pending) {
        if let Some(encoder) = pending.encoder.take() {
            queue.submit([encoder.finish()]);
        }
        pending.passes = 0;
    }

    /// Submit what is pending and wait for the device to finish it.
    pub fn finish(&self) -> Result<()> {
        Self::submit(&self.queue, &mut self.pending.lock().expect("pending encoder"));
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| EngineError::invalid("wgpu", format!("device lost while waiting: {e}")))?;
        self.take_device_error()
    }

    fn take_device_error(&self) -> Result<()> {
        match self.device_error.lock().expect("error sink").take() {
            Some(e) => Err(EngineError::invalid("wgpu", e)),
            None => Ok(()),
        }
    }

    /// Bytes `offset..offset + len` of `buffer`, after all recorded work.
    pub fn read(&self, buffer: &wgpu::Buffer, offset: u64, len: u64) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let size = padded(len);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read-back"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.copy(buffer, offset, &staging, 0, size);
        let (tx, rx) = std::sync::mpsc::channel();
        Self::submit(&self.queue, &mut self.pending.lock().expect("pending encoder"));
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.finish()?;
        rx.recv()
            .map_err(|_| EngineError::invalid("wgpu", "read-back never completed"))?
            .map_err(|e| EngineError::invalid("wgpu", format!("read-back failed: {e}")))?;
        let view = staging.get_mapped_range(..).map_err(|e| EngineError::invalid("wgpu", e.to_string()))?;
        Ok(view[..len as usize].to_vec())
    }

    /// Split `rows` rows into windows whose bindings fit the adapter: each entry of
    /// `row_bytes` (bytes per row of one bound tensor) times the window's rows stays
    /// within the storage binding limit, and every window starts at an offset the
    /// adapter accepts for all of them.
    pub fn row_windows(&self, op: &'static str, rows: usize, row_bytes: &[u64]) -> Result<Vec<Range<usize>>> {
        let align = self.limits.min_storage_buffer_offset_alignment as u64;
        let limit = self.limits.max_storage_buffer_binding_size;
        let step = row_bytes.iter().filter(|&&b| b > 0).fold(1u64, |s, &b| lcm(s, align / gcd(b, align)));
        let fit = row_bytes.iter().filter(|&&b| b > 0).map(|&b| limit / b).min().unwrap_or(u64::MAX);
        let per_window = (fit / step * step).min(rows.max(1) as u64) as usize;
        if per_window == 0 {
            return Err(EngineError::invalid(
                op,
                format!("rows of {row_bytes:?} bytes do not fit the adapter's {limit}-byte storage bindings"),
            ));
        }
        Ok((0..rows).step_by(per_window).map(|s| s..(s + per_window).min(rows)).collect())
    }
}

/// Buffer sizes are whole words, and never zero (a binding cannot be empty).
fn padded(bytes: u64) -> u64 {
    bytes.div_ceil(4).max(1) * 4
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn lcm(a: u64, b: u64) -> u64 {
    a / gcd(a, b) * b
}
