//! entmin's tensor runtime: a [`Backend`] trait with one method per op, the
//! CPU, wgpu and CUDA backends, and f64 references that every backend is tested against.
//!
//! Activations are always f32; weights may be stored f32, f16, bf16 (widened on the
//! fly) or in ggml's block formats ([`quant`]), on the backends that list them. Models and EM code are written once against [`Backend`].

mod backend;
mod checks;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
mod dtype;
mod em_params;
mod error;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod gpu_storage;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod kernel;
pub mod quant;
pub mod reference;
mod sampling;
mod tensor;
#[cfg(feature = "wgpu")]
pub mod wgpu;

pub use backend::{AttentionShape, Backend, Capabilities};
pub use dtype::{BlockLayout, DType, HostData, HostVec};
pub use em_params::{EmInfParams, EmInfRowStats};
pub use error::{EngineError, Result};
pub use sampling::{Rng, SampleOutcome, SamplingParams};
pub use tensor::Tensor;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub use kernel::GPU_BLOCK_FORMATS;
