//! What `entmin ft` and `entmin rl` share: the model, prompts, optimiser, checkpoint
//! and resume options, and the set-up that turns them into a model, an optimiser (fresh
//! or resumed) and tokenised prompts.

use std::path::PathBuf;

use anyhow::{bail, Result};
use entmin::catalog;
use entmin::dataset;
use entmin::engine::{Backend, DType};
use entmin::eval::prompt_ids;
use entmin::models::LoadedModel;
use entmin::train::optim::{AdamW, AdamWConfig, Schedule};
use entmin::train::{self, latest_model, new_optimizer, resume_optimizer, Method, RunOptions};
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Catalog name, .gguf file or Hugging Face folder (trained in f32).
    #[arg(long, short = 'm', default_value = catalog::DEFAULT_MODEL)]
    pub model: String,
    /// gsm8k-train | math-train | gsm8k | math500 | PATH.jsonl (answers are never read).
    #[arg(long, default_value = "gsm8k-train")]
    pub prompts: String,
    /// Prompt field of a JSONL file.
    #[arg(long)]
    pub prompt_field: Option<String>,
    /// Use only the first N prompts.
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, default_value_t = 10)]
    pub steps: u64,
    #[arg(long, default_value_t = 1e-6)]
    pub lr: f32,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
    #[arg(long, default_value_t = 1.0)]
    pub grad_clip: f32,
    /// constant | linear | cosine (over optimiser updates)
    #[arg(long, default_value = "constant")]
    pub schedule: String,
    /// Linear warm-up, in optimiser updates.
    #[arg(long, default_value_t = 0)]
    pub warmup_steps: u64,
    /// Positions per chunk of the LM head: the head holds 2 × chunk × vocabulary floats
    /// (logits and their gradient; 311 MB at 256 × 151936). Smaller saves memory, larger
    /// gives the head's GEMMs more rows to work with (64 → 256 cut the head's time by 40%).
    #[arg(long, default_value_t = 256)]
    pub head_chunk: usize,
    /// Parameters to keep fixed, by parts of their Hugging Face names, comma-separated
    /// (e.g. `embed_tokens` or `layers.0.,layers.1.`): they get no optimiser moments, which
    /// saves 8 bytes per frozen value (1.1 GB for Qwen2.5-0.5B's tied embedding).
    #[arg(long, value_delimiter = ',')]
    pub freeze: Vec<String>,
    /// Recompute activations in the backward pass (less memory, ~1/3 more compute).
    #[arg(long)]
    pub recompute: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 5)]
    pub checkpoint_every: u64,
    /// Output folder: step-N/ (Hugging Face folder), metrics.jsonl, latest.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from OUT's latest checkpoint (same settings; --steps may grow).
    #[arg(long)]
    pub resume: bool,
    /// cpu | wgpu | cuda | auto. Training on a GPU backend keeps the optimiser on the host
    /// (docs/training.md); it is tested against the CPU on lavapipe but has not run on a
    /// hardware GPU yet, hence the CPU default.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// A run ready to start or continue.
pub struct Prepared<B: Backend> {
    pub lm: LoadedModel<B>,
    /// The model the run started from (the reference policy of EM-RL).
    pub base: PathBuf,
    pub opt: AdamW,
    pub prompts: Vec<Vec<u32>>,
    pub opts: RunOptions,
}

impl TrainArgs {
    /// Load the model (the latest checkpoint with `--resume`), the optimiser and the
    /// prompts. `method` holds the method's settings (everything but the step count);
    /// one step is `updates_per_step` optimiser updates.
    pub fn prepare<B: Backend>(
        &self,
        backend: &B,
        method: serde_json::Value,
        updates_per_step: u64,
    ) -> Result<Prepared<B>> {
        let optim = AdamWConfig {
            lr: self.lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: self.weight_decay,
            grad_clip: self.grad_clip,
            schedule: Schedule::parse(&self.schedule)?,
            warmup_steps: self.warmup_steps,
            total_steps: self.steps * updates_per_step,
        };
        let settings = json!({
            "model": self.model, "prompts": self.prompts, "prompt_field": self.prompt_field, "limit": self.limit,
            // Only --steps may change on resume: it is kept out of the nested settings.
            "method": method, "optim": AdamWConfig { total_steps: 0, ..optim }, "head_chunk": self.head_chunk,
            "freeze": self.freeze, "recompute": self.recompute, "seed": self.seed, "steps": self.steps,
        });
        let opts = RunOptions { out: self.out.clone(), checkpoint_every: self.checkpoint_every, settings };
        let latest = latest_model(&self.out)?;
        if !self.resume && latest.is_some() {
            bail!("{} already holds a run: pass --resume to continue it, or choose another --out", self.out.display());
        }
        let base = catalog::resolve_model(&self.model, true)?;
        let path = if self.resume { latest.unwrap_or_else(|| base.clone()) } else { base.clone() };
        let lm = entmin::models::load(backend, &path, DType::F32)?;
        let quantised: Vec<&str> =
            lm.file_dtypes.split(", ").filter(|t| DType::parse(t).is_some_and(DType::is_quantised)).collect();
        if !quantised.is_empty() {
            eprintln!(
                "[training keeps f32 master weights: the file's {} blocks were dequantised to f32 at load]",
                quantised.join(", ")
            );
        }
        let opt = match resume_optimizer(&lm, &opts)? {
            Some(mut opt) => {
                opt.config.total_steps = optim.total_steps;
                eprintln!("[resuming after {} updates from {}]", opt.step, path.display());
                opt
            }
            None => new_optimizer(&lm, optim, &self.freeze)?,
        };
        let mut texts = dataset::load_prompts(&self.prompts, self.prompt_field.as_deref(), true)?;
        if let Some(n) = self.limit {
            texts.truncate(n);
        }
        let prompts = texts.iter().map(|t| prompt_ids(&lm, t, None)).collect::<Result<Vec<_>>>()?;
        Ok(Prepared { lm, base, opt, prompts, opts })
    }
}

/// Run `method` until `steps` steps are done (`done` already are) with a progress bar
/// whose message `status` gives (step, text); each step's metrics go out as one JSON
/// line above the bar, or plainly on stderr when the bar is hidden (not a terminal), so
/// that logs keep them.
pub fn run_with_progress<B: Backend, M: Method<B>>(
    backend: &B,
    method: &mut M,
    prompts: &[Vec<u32>],
    opts: &RunOptions,
    steps: u64,
    done: u64,
    status: impl Fn(&M::Metrics) -> (u64, String),
) -> Result<()> {
    let bar = indicatif::ProgressBar::new(steps);
    bar.set_position(done);
    bar.set_style(indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} steps, ETA {eta} {msg}")?);
    train::run(backend, method, prompts, steps, opts, &mut |m| {
        let (step, text) = status(m);
        bar.set_position(step);
        bar.set_message(text);
        let line = serde_json::to_string(m).unwrap_or_default();
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
    })?;
    bar.finish();
    eprintln!(
        "[done: {} (Hugging Face folders), metrics in {}, peak RSS {:.0} MB]",
        opts.out.display(),
        opts.out.join("metrics.jsonl").display(),
        super::bench::peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}
