//! One file per subcommand; shared model and device options here.

pub mod bench;
pub mod bench_train;
pub mod cuda_libraries;
pub mod doctor;
pub mod eval;
pub mod ft;
pub mod generate;
pub mod info;
pub mod logits;
pub mod method_args;
pub mod plot;
pub mod pull;
pub mod rl;
pub mod train_args;

use std::time::Instant;

use anyhow::{bail, Result};
use entmin::catalog;
use entmin::engine::cpu::CpuBackend;
use entmin::engine::Backend;
use entmin::models::{load, LoadedModel, WeightDtype};

#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    /// Catalog name (pulled on first use), a .gguf file, or a Hugging Face folder.
    #[arg(long, short = 'm', default_value = catalog::DEFAULT_MODEL)]
    pub model: String,
    /// Storage type of weight matrices: auto keeps the file's types (a GGUF's quantised
    /// blocks stay quantised where the backend computes on them; elsewhere they become
    /// bf16, with a notice); bf16 | f16 | f32 convert every matrix at load (f32 is exact).
    #[arg(long, default_value = "auto")]
    pub dtype: String,
    /// cpu | wgpu | cuda | auto. auto takes an NVIDIA GPU through CUDA when there is one,
    /// else a hardware GPU through wgpu, else the CPU, and says which and why; a
    /// CPU-emulated adapter (lavapipe) is only used when asked for by name.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// The backend a command runs on.
pub enum Device {
    Cpu(CpuBackend),
    #[cfg(feature = "wgpu")]
    Wgpu(entmin::engine::wgpu::WgpuBackend),
    #[cfg(feature = "cuda")]
    Cuda(entmin::engine::cuda::CudaBackend),
}

/// CUDA, else a hardware wgpu adapter, else the CPU; `say` tells the user which and why.
fn auto_device(say: &dyn Fn(&str)) -> Device {
    let mut passed_over = Vec::new();
    #[cfg(feature = "cuda")]
    match entmin::engine::cuda::CudaBackend::new(0) {
        Ok(b) => {
            say(&format!("cuda on {}", b.capabilities().device));
            return Device::Cuda(b);
        }
        Err(e) => passed_over.push(e.to_string()),
    }
    #[cfg(feature = "wgpu")]
    match entmin::engine::wgpu::WgpuBackend::new() {
        Ok(b) if !b.is_cpu_emulation() => {
            say(&format!("wgpu on {}", b.capabilities().device));
            return Device::Wgpu(b);
        }
        Ok(b) => {
            passed_over.push(format!("the only wgpu adapter, {}, emulates a GPU on the CPU", b.capabilities().device))
        }
        Err(e) => passed_over.push(e.to_string()),
    }
    say(&format!("cpu ({})", passed_over.join("; ")));
    Device::Cpu(CpuBackend)
}

/// Run `$f(&backend, $args…)` on whichever backend `$device` holds.
macro_rules! on_device {
    ($device:expr, $f:ident ( $($arg:expr),* )) => {
        match $device {
            $crate::cli::Device::Cpu(b) => $f(&b, $($arg),*),
            #[cfg(feature = "wgpu")]
            $crate::cli::Device::Wgpu(b) => $f(&b, $($arg),*),
            #[cfg(feature = "cuda")]
            $crate::cli::Device::Cuda(b) => $f(&b, $($arg),*),
        }
    };
}
pub(crate) use on_device;

/// The backend named by a `--device` value (see [`ModelArgs::device`]).
pub fn open_device(name: &str, verbose: bool) -> Result<Device> {
    let say = |what: &str| {
        if verbose {
            eprintln!("[device: {what}]");
        }
    };
    match name {
        "cpu" => Ok(Device::Cpu(CpuBackend)),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::Wgpu(entmin::engine::wgpu::WgpuBackend::new()?)),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::Cuda(entmin::engine::cuda::CudaBackend::new(0)?)),
        "auto" => Ok(auto_device(&say)),
        other if ["wgpu", "cuda"].contains(&other) => bail!("device {other} is not available in this build"),
        other => bail!("unknown device {other:?} (cpu, wgpu, cuda, auto)"),
    }
}

impl ModelArgs {
    pub fn device(&self, verbose: bool) -> Result<Device> {
        open_device(&self.device, verbose)
    }

    pub fn load<B: Backend>(&self, backend: &B, verbose: bool) -> Result<LoadedModel<B>> {
        let dtype = parse_dtype(&self.dtype)?;
        let path = catalog::resolve_model(&self.model, verbose)?;
        let t0 = Instant::now();
        let lm = load(backend, &path, dtype)?;
        for note in &lm.notices {
            eprintln!("[note: {note}]");
        }
        if verbose {
            eprintln!(
                "[{} ({}) loaded from {} in {:.1}s, weights {}, {} on {}]",
                self.model,
                lm.model.config.arch.name(),
                path.display(),
                t0.elapsed().as_secs_f64(),
                lm.model.weight_types(),
                backend.name(),
                describe(backend),
            );
        }
        Ok(lm)
    }
}

/// A `--dtype` value.
pub fn parse_dtype(name: &str) -> Result<WeightDtype> {
    WeightDtype::parse(name).ok_or_else(|| anyhow::anyhow!("unknown dtype {name:?} (auto, bf16, f16, f32)"))
}

fn describe<B: Backend>(backend: &B) -> String {
    let caps = backend.capabilities();
    if backend.name() == "cpu" {
        format!("{} ×{}", caps.device, rayon::current_num_threads())
    } else {
        caps.device
    }
}

/// How a prompt becomes tokens (generate, logits).
#[derive(clap::Args, Clone, Debug)]
pub struct PromptFormat {
    /// Feed the prompt as is, without the chat template. Special-token text in it (such
    /// as "<|im_start|>") becomes those tokens, as the model's own tokenizer reads it.
    #[arg(long)]
    pub raw: bool,
    /// With --raw: read special-token text as plain characters.
    #[arg(long, requires = "raw")]
    pub special_tokens_as_text: bool,
}

/// Prompt ids: the chat template around `prompt` (with an optional system message),
/// the message text kept as text (typed control-token text never becomes a control
/// token); or the raw text.
pub fn encode_prompt<B: Backend>(
    lm: &LoadedModel<B>,
    prompt: &str,
    system: Option<&str>,
    format: &PromptFormat,
) -> Result<Vec<u32>> {
    use entmin::models::Message;
    if format.raw {
        return Ok(lm.tokenizer.encode(prompt, !format.special_tokens_as_text)?);
    }
    let mut messages = Vec::new();
    if let Some(s) = system {
        messages.push(Message::new("system", s));
    }
    messages.push(Message::new("user", prompt));
    Ok(lm.chat.encode(&lm.tokenizer, &messages)?)
}
