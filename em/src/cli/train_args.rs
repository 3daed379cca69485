//! What `entmin ft` and `entmin rl` share: the model, prompts, optimiser, checkpoint
//! and resume options, and the set-up that turns them into a model, an optimiser (fresh
//! or resumed) and tokenised prompts.

use std::path::PathBuf;

use anyhow::{bail, Result};
use entmin::catalog;
use entmin::engine::Backend;
use entmin::runtime::{BackendTask, Device};
use entmin::train::optim::Schedule;
use entmin::train::{RunConfig, TrainSetup};

use super::code_args::CodeFieldArgs;
use super::progress::Bars;

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Catalog name, .gguf file or Hugging Face folder (trained in f32).
    #[arg(long, short = 'm', default_value = catalog::DEFAULT_MODEL)]
    pub model: String,
    /// gsm8k-train | math-train | gsm8k | math500 | humaneval | PATH.jsonl (answers are
    /// never read; a code set's tests only by `rl --reward tests`).
    #[arg(long, default_value = "gsm8k-train")]
    pub prompts: String,
    /// Prompt field of a JSONL file.
    #[arg(long)]
    pub prompt_field: Option<String>,
    /// Gold-answer field of a JSONL file (default "answer"; GSM8K's "… #### 42" is cut
    /// to 42), read only by `rl --reward verified`.
    #[arg(long)]
    pub answer_field: Option<String>,
    #[command(flatten)]
    pub code_fields: CodeFieldArgs,
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

impl TrainArgs {
    /// The library's description of the run.
    pub fn setup(&self) -> Result<TrainSetup> {
        Ok(TrainSetup {
            model: self.model.clone(),
            prompts: self.prompts.clone(),
            prompt_field: self.prompt_field.clone(),
            answer_field: self.answer_field.clone(),
            code_fields: self.code_fields.fields(None),
            limit: self.limit,
            steps: self.steps,
            lr: self.lr,
            weight_decay: self.weight_decay,
            grad_clip: self.grad_clip,
            schedule: Schedule::parse(&self.schedule)?,
            warmup_steps: self.warmup_steps,
            head_chunk: self.head_chunk,
            freeze: self.freeze.clone(),
            recompute: self.recompute,
            seed: self.seed,
            checkpoint_every: self.checkpoint_every,
            out: self.out.clone(),
            resume: self.resume,
        })
    }

    /// Where the run's files are, and the peak memory it took.
    fn report_done(&self) {
        eprintln!(
            "[done: {} (Hugging Face folders), metrics in {}, peak RSS {:.0} MB]",
            self.out.display(),
            self.out.join("metrics.jsonl").display(),
            super::bench::peak_rss_mib().unwrap_or(f64::NAN)
        );
    }

    /// The device of `--device`, said on stderr.
    fn device(&self) -> Result<Device> {
        let (device, choice) = Device::open(self.device.parse()?)?;
        eprintln!("[device: {choice}]");
        Ok(device)
    }

    /// Runs the method of `config` on `--device` with progress bars, each step's metrics
    /// printed as a JSON line, and where the files went said at the end.
    pub fn launch<C: RunConfig>(&self, config: C) -> Result<()> {
        struct Launch<C>(TrainSetup, C);
        impl<C: RunConfig> BackendTask for Launch<C> {
            type Output = entmin::Result<()>;
            fn run<B: Backend>(self, backend: &B) -> entmin::Result<()> {
                let bars = Bars::new(true);
                self.1.train(backend, &self.0, &bars, &mut |m| bars.line(&metrics_line(m)))
            }
        }
        let setup = self.setup()?;
        match self.device()?.run(Launch(setup, config)) {
            Err(entmin::Error::RunExists { out }) => {
                bail!("{} already holds a run: pass --resume to continue it, or choose another --out", out.display())
            }
            done => done?,
        }
        self.report_done();
        Ok(())
    }
}

/// A step's metrics as the JSON line the command prints (the same as metrics.jsonl's).
pub fn metrics_line(m: &impl serde::Serialize) -> String {
    serde_json::to_string(m).unwrap_or_default()
}
