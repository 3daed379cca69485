//! One file per subcommand; shared model options and the progress display here. Every
//! command goes through the library's API ([`entmin::Engine`], [`entmin::runtime::Device`]).

pub mod bench;
pub mod bench_train;
pub mod code_args;
pub mod cuda_libraries;
pub mod doctor;
pub mod eval;
pub mod ft;
pub mod generate;
pub mod info;
pub mod logits;
pub mod method_args;
pub mod plot;
pub mod progress;
pub mod pull;
pub mod rl;
pub mod serve;
pub mod train_args;

use anyhow::{anyhow, Result};
use entmin::catalog;
use entmin::models::WeightDtype;
use entmin::{DeviceKind, Engine, Options, Prompt};

use progress::Bars;

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

impl ModelArgs {
    /// The library's load options for these flags.
    pub fn options(&self) -> Result<Options> {
        Ok(Options { device: self.device.parse()?, dtype: parse_dtype(&self.dtype)?, threads: None })
    }

    /// Load the model; when `verbose`, say which device and why, and how the load went.
    pub fn engine(&self, verbose: bool) -> Result<Engine> {
        self.engine_with(self.options()?, verbose)
    }

    /// [`ModelArgs::engine`] on the CPU whatever `--device` says.
    pub fn engine_on_cpu(&self, verbose: bool) -> Result<Engine> {
        self.engine_with(Options { device: DeviceKind::Cpu, ..self.options()? }, verbose)
    }

    fn engine_with(&self, options: Options, verbose: bool) -> Result<Engine> {
        let engine = Engine::load_with_progress(&self.model, options, &Bars::new(verbose))?;
        for note in engine.notices() {
            eprintln!("[note: {note}]");
        }
        if verbose {
            let info = engine.info();
            eprintln!("[device: {}]", engine.device());
            eprintln!(
                "[{} ({}) loaded from {} in {:.1}s, weights {}]",
                self.model,
                info.architecture,
                info.path.display(),
                info.load_secs,
                info.weight_types,
            );
        }
        Ok(engine)
    }
}

/// A `--dtype` value.
pub fn parse_dtype(name: &str) -> Result<WeightDtype> {
    WeightDtype::parse(name).ok_or_else(|| anyhow!("unknown dtype {name:?} (auto, bf16, f16, f32)"))
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

impl PromptFormat {
    /// The library's prompt: the chat template around `text` (with an optional system
    /// message), the message kept as text; or the raw text.
    pub fn prompt(&self, text: &str, system: Option<&str>) -> Prompt {
        use entmin::models::Message;
        if self.raw {
            return Prompt::Raw { text: text.into(), parse_special_tokens: !self.special_tokens_as_text };
        }
        let mut messages = Vec::new();
        if let Some(s) = system {
            messages.push(Message::new("system", s));
        }
        messages.push(Message::new("user", text));
        Prompt::Chat(messages)
    }
}

/// A subcommand body generic over the backend, as an [`entmin::runtime::ModelTask`]:
/// `model_task!(Name(Args) => body_fn)` makes `Name(args)` run `body_fn(backend, model, args)`.
macro_rules! model_task {
    ($name:ident($args:ty) => $body:ident) => {
        struct $name($args);
        impl entmin::runtime::ModelTask for $name {
            type Output = anyhow::Result<()>;
            fn run<B: entmin::engine::Backend>(self, b: &B, lm: &entmin::models::LoadedModel<B>) -> Self::Output {
                $body(b, lm, self.0)
            }
        }
    };
}
pub(crate) use model_task;
