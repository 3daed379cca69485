//! One CUDA device: context, the stream every op is queued on, cuBLAS, and the kernels
//! loaded so far (compiled on first use through the PTX disk cache).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, DriverError};

use super::compile::{cached_ptx, nvrtc_version, unavailable};
use crate::kernel::Kernel;
use crate::{DType, EngineError, Result};

pub struct Device {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    /// None when libcublas is missing: linear layers then use our own matmul.
    pub blas: Option<cudarc::cublas::CudaBlas>,
    /// Why `blas` is None.
    pub blas_missing: Option<String>,
    pub name: String,
    /// Compute capability (major, minor).
    pub arch: (u32, u32),
    pub total_mem: usize,
    pub multiprocessors: usize,
    /// 1.0f32: with strides 0, the all-ones row that turns matmul_strided into a sum over
    /// rows (dweight, dbias).
    pub one: CudaSlice<u8>,
    functions: Mutex<HashMap<(Kernel, DType), CudaFunction>>,
}

pub(super) fn driver_error(what: &str, e: DriverError) -> EngineError {
    let name = e.error_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|_| format!("{:?}", e.0));
    EngineError::Device { backend: "cuda", detail: format!("{what}: {name}") }
}

/// The driver's CUDA version as (major, minor), or why there is no usable driver.
/// cudarc panics when libcuda is missing, so presence is checked first.
pub fn driver_version() -> Result<(i32, i32)> {
    // SAFETY: is_culib_present only tries to dlopen the library.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(unavailable("no NVIDIA driver: libcuda.so could not be loaded"));
    }
    let mut version = 0;
    // SAFETY: the library is present; cuDriverGetVersion writes one int.
    unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut version) }
        .result()
        .map_err(|e| unavailable(format!("cuDriverGetVersion failed: {e:?}")))?;
    Ok((version / 1000, version % 1000 / 10))
}

/// Devices the driver sees (0 when there is no driver).
pub fn device_count() -> usize {
    if driver_version().is_err() {
        return 0;
    }
    cudarc::driver::result::init().and_then(|_| CudaContext::device_count()).unwrap_or(0).max(0) as usize
}

impl Device {
    pub fn open(ordinal: usize) -> Result<Device> {
        driver_version()?;
        nvrtc_version()?;
        let count = device_count();
        if ordinal >= count {
            return Err(unavailable(format!("CUDA device {ordinal} requested, the driver sees {count}")));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| unavailable(format!("creating a context: {e:?}")))?;
        // One stream orders all our work, so cudarc's per-buffer events are pure overhead.
        // SAFETY: no buffer is shared between streams.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(|e| driver_error("creating a stream", e))?;
        let (blas, blas_missing) = if super::libraries::loadable_by_name("cublas") {
            match cudarc::cublas::CudaBlas::new(stream.clone()) {
                Ok(b) => (Some(b), None),
                Err(e) => (None, Some(format!("cublasCreate failed: {e:?}"))),
            }
        } else {
            (None, Some(super::libraries::explain_missing("cublas")))
        };
        let (major, minor) = ctx.compute_capability().map_err(|e| driver_error("compute capability", e))?;
        let attribute = |a| ctx.attribute(a).map_err(|e| driver_error("device attribute", e));
        let multiprocessors =
            attribute(cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as usize;
        let mut one = stream.alloc_zeros::<u8>(4).map_err(|e| driver_error("allocating", e))?;
        stream.memcpy_htod(&1f32.to_le_bytes(), &mut one).map_err(|e| driver_error("copy to device", e))?;
        Ok(Device {
            one,
            name: ctx.name().map_err(|e| driver_error("device name", e))?,
            total_mem: ctx.total_mem().map_err(|e| driver_error("device memory", e))?,
            arch: (major as u32, minor as u32),
            multiprocessors,
            blas,
            blas_missing,
            ctx,
            stream,
            functions: Mutex::new(HashMap::new()),
        })
    }

    /// The kernel compiled for this device and dtype, compiling and loading it on first use.
    pub fn function(&self, kernel: Kernel, dtype: DType) -> Result<CudaFunction> {
        let dtype = if kernel.reads_any_dtype() { dtype } else { DType::F32 };
        let mut functions = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = functions.get(&(kernel, dtype)) {
            return Ok(f.clone());
        }
        let ptx = cached_ptx(kernel, dtype, self.arch)?;
        let module = self.ctx.load_module(cudarc::nvrtc::Ptx::from_src(ptx)).map_err(|e| {
            driver_error(
                &format!(
                    "loading kernels/cuda/{}.cu (a driver older than NVRTC {:?} rejects its PTX)",
                    kernel.name(),
                    nvrtc_version().unwrap_or_default()
                ),
                e,
            )
        })?;
        let f = module.load_function(kernel.name()).map_err(|e| driver_error(kernel.name(), e))?;
        functions.insert((kernel, dtype), f.clone());
        Ok(f)
    }

    /// `bytes` of device memory (at least one word, so that empty tensors have an address).
    /// The stream-ordered allocator makes this cheap enough to call per op.
    pub fn alloc(&self, bytes: usize) -> Result<CudaSlice<u8>> {
        // SAFETY: every op writes its whole output before anything reads it.
        unsafe { self.stream.alloc::<u8>(bytes.max(4)) }.map_err(|e| self.alloc_error(bytes, e))
    }

    pub fn alloc_zeros(&self, bytes: usize) -> Result<CudaSlice<u8>> {
        self.stream.alloc_zeros::<u8>(bytes.max(4)).map_err(|e| self.alloc_error(bytes, e))
    }

    pub fn upload(&self, bytes: &[u8]) -> Result<CudaSlice<u8>> {
        let mut buf = self.alloc(bytes.len())?;
        if !bytes.is_empty() {
            self.stream
                .memcpy_htod(bytes, &mut buf.slice_mut(0..bytes.len()))
                .map_err(|e| driver_error("copy to device", e))?;
        }
        Ok(buf)
    }

    pub fn read(&self, buf: &CudaSlice<u8>, len: usize) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        self.stream.clone_dtoh(&buf.slice(0..len)).map_err(|e| driver_error("copy to host", e))
    }

    fn alloc_error(&self, bytes: usize, e: DriverError) -> EngineError {
        let (free, total) = self.ctx.mem_get_info().unwrap_or((0, 0));
        driver_error(&format!("allocating {:.1} MiB ({:.0} of {:.0} MiB free)", mib(bytes), mib(free), mib(total)), e)
    }

    pub fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(|e| driver_error("synchronize", e))
    }

    /// Run `f` between two timing events and return its device time.
    pub fn timed<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<(T, Option<std::time::Duration>)> {
        let timing = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
        let start = self.ctx.new_event(timing).map_err(|e| driver_error("event", e))?;
        let end = self.ctx.new_event(timing).map_err(|e| driver_error("event", e))?;
        start.record(&self.stream).map_err(|e| driver_error("event record", e))?;
        let out = f()?;
        end.record(&self.stream).map_err(|e| driver_error("event record", e))?;
        end.synchronize().map_err(|e| driver_error("event wait", e))?;
        let ms = start.elapsed_ms(&end).map_err(|e| driver_error("event time", e))?;
        Ok((out, Some(std::time::Duration::from_secs_f64(ms as f64 / 1e3))))
    }
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

/// Grid and block of a launch, as docs/cuda.md lists them.
pub fn config(grid: (usize, usize), block: u32) -> Result<cudarc::driver::LaunchConfig> {
    let fits = |n: usize, max: usize| (1..=max).contains(&n);
    if !fits(grid.0, i32::MAX as usize) || !fits(grid.1, 65535) {
        return Err(EngineError::invalid("cuda launch", format!("grid {grid:?} out of range")));
    }
    Ok(cudarc::driver::LaunchConfig {
        grid_dim: (grid.0 as u32, grid.1 as u32, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// Launch `kernel` (compiled for `dtype`) on the device's stream with the arguments in
/// docs/cuda.md's order. Arguments are references to locals: the launch reads them.
macro_rules! launch {
    ($dev:expr, $kernel:expr, $dtype:expr, $grid:expr, $block:expr, [$($arg:expr),* $(,)?]) => {{
        use cudarc::driver::PushKernelArg;
        let cfg = $crate::cuda::device::config($grid, $block)?;
        let function = $dev.function($kernel, $dtype)?;
        let mut builder = $dev.stream.launch_builder(&function);
        $( builder.arg($arg); )*
        // SAFETY: argument types and order follow the kernel's signature (docs/cuda.md);
        // every buffer holds what the grid reads and writes (checked by the caller).
        unsafe { builder.launch(cfg) }
            .map(|_| ())
            .map_err(|e| $crate::cuda::device::driver_error($kernel.name(), e))
    }};
}
pub(crate) use launch;
