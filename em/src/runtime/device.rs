//! Which backend runs the model: a named one, or the best this machine has, with the
//! reasons for the choice kept as data.

use std::fmt;
use std::str::FromStr;

use crate::engine::cpu::CpuBackend;
use crate::engine::Backend;
use crate::error::{Error, Result};

/// A device as asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// CUDA on an NVIDIA GPU when there is one, else a hardware GPU through wgpu, else
    /// the CPU. A CPU-emulated wgpu adapter (lavapipe, WARP) is slower than the CPU
    /// backend and is only used when asked for as [`DeviceKind::Wgpu`].
    #[default]
    Auto,
    /// The CPU backend (all cores of rayon's pool).
    Cpu,
    /// The first wgpu adapter (Vulkan, Metal, DX12); needs the `wgpu` feature.
    Wgpu,
    /// The first CUDA device; needs the `cuda` feature and an NVIDIA driver.
    Cuda,
}

impl DeviceKind {
    /// The name the command line and the error messages use.
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Auto => "auto",
            DeviceKind::Cpu => "cpu",
            DeviceKind::Wgpu => "wgpu",
            DeviceKind::Cuda => "cuda",
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DeviceKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        [DeviceKind::Auto, DeviceKind::Cpu, DeviceKind::Wgpu, DeviceKind::Cuda]
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| Error::Device { device: s.into(), msg: "unknown device (cpu, wgpu, cuda, auto)".into() })
    }
}

/// The device a [`Device::open`] settled on, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceChoice {
    /// The backend taken (never `Auto`).
    pub kind: DeviceKind,
    /// The hardware, e.g. "NVIDIA H200" or "Intel(R) Xeon(R) … ×16".
    pub description: String,
    /// What was tried first and why it was not taken (empty when a device was named).
    pub passed_over: Vec<String>,
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.kind, self.description)?;
        if !self.passed_over.is_empty() {
            write!(f, " ({})", self.passed_over.join("; "))?;
        }
        Ok(())
    }
}

/// An opened backend.
pub enum Device {
    /// The CPU backend.
    Cpu(CpuBackend),
    /// A wgpu adapter.
    #[cfg(feature = "wgpu")]
    Wgpu(crate::engine::wgpu::WgpuBackend),
    /// A CUDA device.
    #[cfg(feature = "cuda")]
    Cuda(crate::engine::cuda::CudaBackend),
}

/// Work generic over the backend, run by [`Device::run`] on whichever one is open.
pub trait BackendTask {
    /// What the task returns.
    type Output;
    /// Run on `backend`.
    fn run<B: Backend>(self, backend: &B) -> Self::Output;
}

/// Run `$f(backend, $args…)` on whichever backend a `Device` holds.
macro_rules! on_device {
    ($device:expr, $b:ident => $body:expr) => {
        match $device {
            $crate::runtime::Device::Cpu($b) => $body,
            #[cfg(feature = "wgpu")]
            $crate::runtime::Device::Wgpu($b) => $body,
            #[cfg(feature = "cuda")]
            $crate::runtime::Device::Cuda($b) => $body,
        }
    };
}

fn describe<B: Backend>(backend: &B) -> String {
    let caps = backend.capabilities();
    if backend.name() == "cpu" {
        format!("{} ×{}", caps.device, rayon::current_num_threads())
    } else {
        caps.device
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn not_opened(kind: DeviceKind, e: crate::engine::EngineError) -> Error {
    Error::Device { device: kind.name().into(), msg: e.to_string() }
}

fn unavailable(kind: DeviceKind) -> Error {
    Error::Device {
        device: kind.name().into(),
        msg: format!("not available in this build (the `{kind}` feature is off)"),
    }
}

impl Device {
    /// Open the device `kind` names, or for `Auto` the best one this machine has.
    pub fn open(kind: DeviceKind) -> Result<(Device, DeviceChoice)> {
        let opened = match kind {
            DeviceKind::Auto => return Ok(Device::best()),
            DeviceKind::Cpu => Device::Cpu(CpuBackend),
            #[cfg(feature = "wgpu")]
            DeviceKind::Wgpu => Device::Wgpu(crate::engine::wgpu::WgpuBackend::new().map_err(|e| not_opened(kind, e))?),
            #[cfg(feature = "cuda")]
            DeviceKind::Cuda => {
                Device::Cuda(crate::engine::cuda::CudaBackend::new(0).map_err(|e| not_opened(kind, e))?)
            }
            #[allow(unreachable_patterns)]
            other => return Err(unavailable(other)),
        };
        let choice = DeviceChoice { kind, description: opened.description(), passed_over: Vec::new() };
        Ok((opened, choice))
    }

    /// CUDA, else a hardware wgpu adapter, else the CPU, with what was passed over.
    fn best() -> (Device, DeviceChoice) {
        let mut passed_over = Vec::new();
        #[cfg(feature = "cuda")]
        match crate::engine::cuda::CudaBackend::new(0) {
            Ok(b) => return Device::Cuda(b).chosen(DeviceKind::Cuda, passed_over),
            Err(e) => passed_over.push(e.to_string()),
        }
        #[cfg(feature = "wgpu")]
        match crate::engine::wgpu::WgpuBackend::new() {
            Ok(b) if !b.is_cpu_emulation() => return Device::Wgpu(b).chosen(DeviceKind::Wgpu, passed_over),
            Ok(b) => passed_over
                .push(format!("the only wgpu adapter, {}, emulates a GPU on the CPU", b.capabilities().device)),
            Err(e) => passed_over.push(e.to_string()),
        }
        Device::Cpu(CpuBackend).chosen(DeviceKind::Cpu, passed_over)
    }

    fn chosen(self, kind: DeviceKind, passed_over: Vec<String>) -> (Device, DeviceChoice) {
        let choice = DeviceChoice { kind, description: self.description(), passed_over };
        (self, choice)
    }

    /// The hardware this backend runs on.
    pub fn description(&self) -> String {
        on_device!(self, b => describe(b))
    }

    /// Run `task` on this backend.
    pub fn run<T: BackendTask>(&self, task: T) -> T::Output {
        on_device!(self, b => task.run(b))
    }
}
