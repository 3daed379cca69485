//! One file per subcommand; shared model options here.

pub mod bench;
pub mod eval;
pub mod generate;
pub mod info;
pub mod logits;
pub mod method_args;
pub mod pull;

use std::time::Instant;

use anyhow::{bail, Result};
use entmin::catalog;
use entmin::engine::cpu::CpuBackend;
use entmin::engine::DType;
use entmin::models::{load, LoadedModel};

#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    /// Catalog name (pulled on first use), a .gguf file, or a Hugging Face folder.
    #[arg(long, short = 'm', default_value = catalog::DEFAULT_MODEL)]
    pub model: String,
    /// Storage type of weight matrices: bf16 halves memory and bandwidth; f32 is exact.
    #[arg(long, default_value = "bf16")]
    pub dtype: String,
    /// Compute device. Only `cpu` exists so far.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl ModelArgs {
    pub fn load(&self, verbose: bool) -> Result<LoadedModel<CpuBackend>> {
        if self.device != "cpu" && self.device != "auto" {
            bail!("device {:?} is not available in this build: only `cpu` is implemented so far", self.device);
        }
        let Some(dtype) = DType::parse(&self.dtype) else { bail!("unknown dtype {:?} (f32, f16, bf16)", self.dtype) };
        let path = catalog::resolve_model(&self.model, verbose)?;
        let t0 = Instant::now();
        let lm = load(&CpuBackend, &path, dtype)?;
        if verbose {
            eprintln!(
                "[{} ({}) loaded from {} in {:.1}s, weights {dtype}, cpu ×{}]",
                self.model,
                lm.model.config.arch.name(),
                path.display(),
                t0.elapsed().as_secs_f64(),
                rayon::current_num_threads()
            );
        }
        Ok(lm)
    }
}

/// Prompt ids: the chat template around `prompt` (with an optional system
/// message), or the raw text when `raw`.
pub fn encode_prompt(lm: &LoadedModel<CpuBackend>, prompt: &str, system: Option<&str>, raw: bool) -> Result<Vec<u32>> {
    use entmin::models::Message;
    if raw {
        return Ok(lm.tokenizer.encode(prompt, false)?);
    }
    let mut messages = Vec::new();
    if let Some(s) = system {
        messages.push(Message::new("system", s));
    }
    messages.push(Message::new("user", prompt));
    let text = lm.chat.render(&messages)?;
    Ok(lm.tokenizer.encode(&text, true)?)
}
