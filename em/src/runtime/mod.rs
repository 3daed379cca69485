//! The entry point for apps: [`Engine::load`] opens a device and a model, then
//! [`Engine::generate`] answers [`Request`]s, streaming each token with its statistics.

mod device;
mod request;
mod scheduler;

use std::path::PathBuf;
use std::time::Instant;

pub use device::{BackendTask, Device, DeviceChoice, DeviceKind};
pub use request::{Completion, Prompt, Request};
pub use scheduler::{top_logprobs, Job, JobEvent, ServeOptions, StepObserver, TokenEvent, TopToken};

use crate::dataset::Problem;
use crate::engine::Backend;
use crate::error::{Error, Result};
use crate::eval::{EvalOptions, ProblemResult};
use crate::methods::self_consistency::majority_vote;
use crate::methods::{Method, MethodConfig};
use crate::models::{generate, generate_batch, Flow, GenerationParams, LoadedModel, Step, WeightDtype};
use crate::progress::{Progress, Quiet};

/// How [`Engine::load`] opens the model.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Which backend; [`DeviceKind::Auto`] picks and says why in [`Engine::device`].
    pub device: DeviceKind,
    /// Storage of the weight matrices: `Auto` keeps a GGUF's quantised blocks where the
    /// backend computes on them (bf16 elsewhere); `Convert(dtype)` converts every matrix.
    pub dtype: WeightDtype,
    /// Size of rayon's global pool, which the CPU backend runs on. It can be set once
    /// per process; None leaves it as it is (all cores unless set before).
    pub threads: Option<usize>,
}

/// What was loaded, for display.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    /// The spec given to [`Engine::load`].
    pub spec: String,
    /// The file or folder it resolved to.
    pub path: PathBuf,
    /// "llama" or "qwen2".
    pub architecture: &'static str,
    /// Storage types of the weights as held in memory, e.g. "Q4_K 54%, Q6_K 30%, F32".
    pub weight_types: String,
    /// Storage types found in the file.
    pub file_dtypes: String,
    /// Tokens the context holds.
    pub context_length: usize,
    /// Rows of the embedding.
    pub vocab_size: usize,
    /// Bytes of weights in memory.
    pub weight_bytes: usize,
    /// Seconds the load took (file to ready, download excluded).
    pub load_secs: f64,
}

/// Work generic over the backend that needs the loaded model, run by [`Engine::run`].
pub trait ModelTask {
    /// What the task returns.
    type Output;
    /// Run with `model` on `backend`.
    fn run<B: Backend>(self, backend: &B, model: &LoadedModel<B>) -> Self::Output;
}

/// Like [`ModelTask`], with the model mutable (training), run by [`Engine::run_mut`].
pub trait ModelTaskMut {
    /// What the task returns.
    type Output;
    /// Run with `model` on `backend`.
    fn run<B: Backend>(self, backend: &B, model: &mut LoadedModel<B>) -> Self::Output;
}

enum Loaded {
    Cpu(crate::engine::cpu::CpuBackend, LoadedModel<crate::engine::cpu::CpuBackend>),
    #[cfg(feature = "wgpu")]
    Wgpu(crate::engine::wgpu::WgpuBackend, LoadedModel<crate::engine::wgpu::WgpuBackend>),
    #[cfg(feature = "cuda")]
    Cuda(crate::engine::cuda::CudaBackend, LoadedModel<crate::engine::cuda::CudaBackend>),
}

macro_rules! on_loaded {
    ($loaded:expr, $b:ident, $lm:ident => $body:expr) => {
        match $loaded {
            Loaded::Cpu($b, $lm) => $body,
            #[cfg(feature = "wgpu")]
            Loaded::Wgpu($b, $lm) => $body,
            #[cfg(feature = "cuda")]
            Loaded::Cuda($b, $lm) => $body,
        }
    };
}

/// A model loaded on a device, with its tokenizer and chat template.
///
/// ```
/// use entmin::{Engine, Options, Request};
///
/// let engine = Engine::load("qwen2.5-coder-0.5b-instruct", Options::default())?;
/// let answer = engine.generate(&Request::chat("What is 7 × 8?").max_tokens(8), |_| ())?;
/// println!("{} ({})", answer.text, engine.device());
/// # Ok::<(), entmin::Error>(())
/// ```
pub struct Engine {
    loaded: Loaded,
    choice: DeviceChoice,
    info: ModelInfo,
    notices: Vec<String>,
}

impl Engine {
    /// Open `spec` — a catalog name (downloaded into the cache on first use), a `.gguf`
    /// file or a Hugging Face folder — on the device `options` asks for.
    pub fn load(spec: &str, options: Options) -> Result<Engine> {
        Engine::load_with_progress(spec, options, &Quiet)
    }

    /// [`Engine::load`], reporting a download's progress to `progress`.
    pub fn load_with_progress(spec: &str, options: Options, progress: &dyn Progress) -> Result<Engine> {
        if let Some(n) = options.threads {
            set_threads(n)?;
        }
        let path = crate::catalog::resolve_model(spec, progress)?;
        let (device, choice) = Device::open(options.device)?;
        let t0 = Instant::now();
        let loaded = match device {
            Device::Cpu(b) => {
                let lm = crate::models::load(&b, &path, options.dtype)?;
                Loaded::Cpu(b, lm)
            }
            #[cfg(feature = "wgpu")]
            Device::Wgpu(b) => {
                let lm = crate::models::load(&b, &path, options.dtype)?;
                Loaded::Wgpu(b, lm)
            }
            #[cfg(feature = "cuda")]
            Device::Cuda(b) => {
                let lm = crate::models::load(&b, &path, options.dtype)?;
                Loaded::Cuda(b, lm)
            }
        };
        let load_secs = t0.elapsed().as_secs_f64();
        let (info, notices) = on_loaded!(&loaded, _b, lm => (
            ModelInfo {
                spec: spec.to_string(),
                path: path.clone(),
                architecture: lm.model.config.arch.name(),
                weight_types: lm.model.weight_types(),
                file_dtypes: lm.file_dtypes.clone(),
                context_length: lm.model.config.context_length,
                vocab_size: lm.model.config.vocab_size,
                weight_bytes: lm.model.size_bytes(),
                load_secs,
            },
            lm.notices.clone(),
        ));
        Ok(Engine { loaded, choice, info, notices })
    }

    /// The device the model runs on, and why it was chosen.
    pub fn device(&self) -> &DeviceChoice {
        &self.choice
    }

    /// What was loaded.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// What loading assumed or left out that a user should know, one sentence each.
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    /// The prompt's token ids.
    pub fn encode(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        on_loaded!(&self.loaded, _b, lm => encode(lm, prompt))
    }

    /// Text of `ids` (special tokens skipped).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        on_loaded!(&self.loaded, _b, lm => Ok(lm.tokenizer.decode(ids, true)?))
    }

    /// Answer `request`. `on_token` sees each new token as it is produced (its text
    /// piece, id, log-prob, the model's entropy, the entropy of the distribution it was
    /// drawn from and, under EM-INF, the optimisation's statistics); it returns `()` to
    /// go on or [`Flow::Stop`] to end that sequence. Self-consistency streams every
    /// sample's tokens (see [`Step::seq`]) and votes at the end.
    pub fn generate<R: Into<Flow>>(
        &self,
        request: &Request,
        on_token: impl FnMut(&Step<'_>) -> R,
    ) -> Result<Completion> {
        on_loaded!(&self.loaded, b, lm => generate_on(b, lm, request, on_token))
    }

    /// Run one decoding method over `problems`, resuming from and appending to
    /// `opts.out_dir/METHOD.jsonl` (see [`crate::eval::run_method`]); returns every
    /// problem's result, earlier runs' included.
    pub fn evaluate(
        &self,
        problems: &[Problem],
        method: &MethodConfig,
        opts: &EvalOptions,
        progress: &dyn Progress,
    ) -> Result<Vec<ProblemResult>> {
        on_loaded!(&self.loaded, b, lm => crate::eval::run_method(b, lm, problems, method, opts, progress))
    }

    /// Run backend-generic work with the model (logits, benchmarks, anything the
    /// methods above do not cover).
    pub fn run<T: ModelTask>(&self, task: T) -> T::Output {
        on_loaded!(&self.loaded, b, lm => task.run(b, lm))
    }

    /// Run backend-generic work that changes the model (training).
    pub fn run_mut<T: ModelTaskMut>(&mut self, task: T) -> T::Output {
        on_loaded!(&mut self.loaded, b, lm => task.run(b, lm))
    }
}

/// Size rayon's global pool (once per process; again with the same size is fine).
pub(crate) fn set_threads(n: usize) -> Result<()> {
    match rayon::ThreadPoolBuilder::new().num_threads(n).build_global() {
        Ok(()) => Ok(()),
        Err(_) if rayon::current_num_threads() == n => Ok(()),
        Err(e) => Err(Error::invalid(format!(
            "cannot use {n} threads: {e} (rayon's pool already has {}; set threads once per process)",
            rayon::current_num_threads()
        ))),
    }
}

/// Token ids of `prompt` for `lm`.
pub fn encode<B: Backend>(lm: &LoadedModel<B>, prompt: &Prompt) -> Result<Vec<u32>> {
    let ids = match prompt {
        Prompt::Chat(messages) => lm.chat.encode(&lm.tokenizer, messages)?,
        Prompt::Raw { text, parse_special_tokens } => lm.tokenizer.encode(text, *parse_special_tokens)?,
        Prompt::Tokens(ids) => {
            let vocab = lm.model.config.vocab_size;
            if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(Error::invalid(format!("prompt token {bad} is outside the vocabulary of {vocab}")));
            }
            ids.clone()
        }
    };
    if ids.is_empty() {
        return Err(Error::invalid("the prompt encodes to no tokens"));
    }
    Ok(ids)
}

/// [`Engine::generate`] on a backend.
pub fn generate_on<B: Backend, R: Into<Flow>>(
    backend: &B,
    lm: &LoadedModel<B>,
    request: &Request,
    on_token: impl FnMut(&Step<'_>) -> R,
) -> Result<Completion> {
    let ids = encode(lm, &request.prompt)?;
    let params = GenerationParams {
        max_new_tokens: request.max_tokens,
        stop_strings: request.stop.clone(),
        ignore_stops: false,
        cancel: request.cancel.clone(),
    };
    let config = &request.method;
    let mut picker = config.picker::<B>();
    if config.method != Method::SelfConsistency {
        let g = generate(backend, lm, &ids, &params, picker.as_mut(), request.seed, on_token)?;
        return Ok(Completion { text: g.text.clone(), samples: vec![g], chosen: 0, vote: None });
    }
    if config.votes == 0 {
        return Err(Error::invalid("self-consistency needs at least one sample"));
    }
    let prompts = vec![ids; config.votes];
    let seeds: Vec<u64> = (0..config.votes as u64).map(|i| request.seed.wrapping_add(i)).collect();
    let samples = generate_batch(backend, lm, &prompts, &params, picker.as_mut(), &seeds, on_token)?;
    let texts: Vec<String> = samples.iter().map(|g| g.text.clone()).collect();
    let vote = majority_vote(&texts);
    Ok(Completion { text: texts[vote.representative].clone(), chosen: vote.representative, samples, vote: Some(vote) })
}
