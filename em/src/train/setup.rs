//! Turning a run's description into a model, an optimiser (fresh, or resumed from the
//! output folder's latest checkpoint) and tokenised prompts: the resume policy every
//! training client shares.

use std::path::PathBuf;

use serde_json::json;

use super::optim::{AdamW, AdamWConfig, Schedule};
use super::{latest_model, new_optimizer, resume_optimizer, RunOptions};
use crate::dataset::{CodeTask, Fields};
use crate::engine::{Backend, DType};
use crate::error::{Error, Result};
use crate::eval::{code_prompt_ids, prompt_ids};
use crate::models::LoadedModel;
use crate::progress::Progress;

/// What an EM-FT or EM-RL run trains, on what, and where it writes.
#[derive(Clone, Debug)]
pub struct TrainSetup {
    /// Catalog name, `.gguf` file or Hugging Face folder (trained in f32).
    pub model: String,
    /// A dataset name or JSONL file; only the prompts are read (no labels).
    pub prompts: String,
    /// Prompt field of a JSONL file (default "question"; "prompt" for code prompts).
    pub prompt_field: Option<String>,
    /// Gold-answer field of a JSONL file (default "answer"), read only by EM-RL's verified
    /// reward; the named math sets bring their own.
    pub answer_field: Option<String>,
    /// Code prompts: the tests, entry-point and setup fields of a JSONL file (a tests
    /// field, or the `humaneval` set, makes the prompts code problems, for EM-RL's tests
    /// reward); the prompt field is `prompt_field`, the others are not read.
    pub code_fields: Fields,
    /// Use only the first N prompts.
    pub limit: Option<usize>,
    /// Steps to reach (a resumed run may raise it).
    pub steps: u64,
    /// AdamW learning rate.
    pub lr: f32,
    /// AdamW decoupled weight decay.
    pub weight_decay: f32,
    /// Global gradient-norm clip (0: none).
    pub grad_clip: f32,
    /// Learning-rate schedule over optimiser updates.
    pub schedule: Schedule,
    /// Linear warm-up, in optimiser updates.
    pub warmup_steps: u64,
    /// Positions per chunk of the LM head (memory against GEMM size).
    pub head_chunk: usize,
    /// Parameters kept fixed, by parts of their Hugging Face names.
    pub freeze: Vec<String>,
    /// Recompute activations in the backward pass.
    pub recompute: bool,
    /// Run seed.
    pub seed: u64,
    /// Checkpoint every this many steps (and after the last).
    pub checkpoint_every: u64,
    /// Output folder: step-N/ (Hugging Face folders), metrics.jsonl, latest.json.
    pub out: PathBuf,
    /// Continue from `out`'s latest checkpoint; without it an `out` that holds a run is
    /// refused.
    pub resume: bool,
}

/// A run ready to start or continue.
pub struct Prepared<B: Backend> {
    /// The model to train (the latest checkpoint when resuming).
    pub lm: LoadedModel<B>,
    /// The model the run started from (the reference policy of EM-RL).
    pub base: PathBuf,
    /// The optimiser, fresh or resumed.
    pub opt: AdamW,
    /// The prompts, in the evaluation's prompt format, as token ids.
    pub prompts: Vec<Vec<u32>>,
    /// Code prompts: each prompt's task (tests, entry point), by index; empty otherwise.
    pub tasks: Vec<CodeTask>,
    /// Each prompt's gold answer, by index, when the run asked for them; empty otherwise.
    pub golds: Vec<String>,
    /// Output, checkpoint cadence and the settings a resume must match.
    pub opts: RunOptions,
}

impl TrainSetup {
    /// A run of `model` on `prompts` (a dataset name or JSONL file) into `out` with the
    /// CLI's defaults: 10 steps, constant lr 1e-6, no weight decay, clipping at 1, head
    /// chunks of 256 positions, nothing frozen, activations kept, seed 0, a checkpoint
    /// every 5 steps, a fresh run (an `out` that holds one is refused unless `resume`).
    pub fn new(model: impl Into<String>, prompts: impl Into<String>, out: impl Into<PathBuf>) -> Self {
        TrainSetup {
            model: model.into(),
            prompts: prompts.into(),
            prompt_field: None,
            answer_field: None,
            code_fields: Fields::default(),
            limit: None,
            steps: 10,
            lr: 1e-6,
            weight_decay: 0.0,
            grad_clip: 1.0,
            schedule: Schedule::Constant,
            warmup_steps: 0,
            head_chunk: 256,
            freeze: Vec::new(),
            recompute: false,
            seed: 0,
            checkpoint_every: 5,
            out: out.into(),
            resume: false,
        }
    }

    /// Load the model (the latest checkpoint when resuming), the optimiser and the
    /// prompts. `method` holds the method's settings (everything but the step count),
    /// recorded so that a resume with other settings is refused; one step is
    /// `updates_per_step` optimiser updates. `needs_gold`: read each prompt's gold answer
    /// too (an error names the file and line that lacks one).
    pub fn prepare<B: Backend>(
        &self,
        backend: &B,
        method: serde_json::Value,
        updates_per_step: u64,
        needs_gold: bool,
        progress: &dyn Progress,
    ) -> Result<Prepared<B>> {
        let optim = AdamWConfig {
            lr: self.lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: self.weight_decay,
            grad_clip: self.grad_clip,
            schedule: self.schedule,
            warmup_steps: self.warmup_steps,
            total_steps: self.steps * updates_per_step,
        };
        let settings = json!({
            "model": self.model, "prompts": self.prompts, "prompt_field": self.prompt_field, "limit": self.limit,
            "answer_field": self.answer_field,
            "test_field": self.code_fields.test, "entry_point_field": self.code_fields.entry_point,
            "setup_field": self.code_fields.setup,
            // Only the step count may change on resume: it is kept out of the nested settings.
            "method": method, "optim": AdamWConfig { total_steps: 0, ..optim }, "head_chunk": self.head_chunk,
            "freeze": self.freeze, "recompute": self.recompute, "seed": self.seed, "steps": self.steps,
        });
        let opts = RunOptions { out: self.out.clone(), checkpoint_every: self.checkpoint_every, settings };
        let latest = latest_model(&self.out)?;
        if !self.resume && latest.is_some() {
            return Err(Error::RunExists { out: self.out.clone() });
        }
        let base = crate::catalog::resolve_model(&self.model, progress)?;
        let path = if self.resume { latest.unwrap_or_else(|| base.clone()) } else { base.clone() };
        let lm = crate::models::load(backend, &path, DType::F32)?;
        let quantised: Vec<&str> =
            lm.file_dtypes.split(", ").filter(|t| DType::parse(t).is_some_and(DType::is_quantised)).collect();
        if !quantised.is_empty() {
            progress.note(&format!(
                "training keeps f32 master weights: the file's {} blocks were dequantised to f32 at load",
                quantised.join(", ")
            ));
        }
        let opt = match resume_optimizer(&lm, &opts)? {
            Some(mut opt) => {
                opt.config.total_steps = optim.total_steps;
                progress.note(&format!("resuming after {} updates from {}", opt.step, path.display()));
                opt
            }
            None => new_optimizer(&lm, optim, &self.freeze)?,
        };
        let code = self.prompts == "humaneval" || self.code_fields.test.is_some();
        let mut golds = Vec::new();
        let (prompts, tasks) = if code {
            if needs_gold {
                return Err(Error::invalid(format!(
                    "{}: the verified reward checks math answers; code prompts are rewarded with --reward tests",
                    self.prompts
                )));
            }
            let fields = Fields { prompt: self.prompt_field.clone(), ..self.code_fields.clone() };
            let mut problems = crate::dataset::load(&self.prompts, &fields, progress)?;
            problems.truncate(self.limit.unwrap_or(usize::MAX));
            let prompts =
                problems.iter().map(|p| code_prompt_ids(&lm, &p.question, None, false)).collect::<Result<Vec<_>>>()?;
            (prompts, problems.into_iter().filter_map(|p| p.code).collect())
        } else if needs_gold {
            let fields =
                Fields { question: self.prompt_field.clone(), answer: self.answer_field.clone(), ..Fields::default() };
            let mut problems = crate::dataset::load(&self.prompts, &fields, progress).map_err(|e| match e {
                Error::Dataset { dataset, msg } => Error::Dataset {
                    dataset,
                    msg: format!("{msg} (the verified reward reads gold answers: --answer-field)"),
                },
                e => e,
            })?;
            problems.truncate(self.limit.unwrap_or(usize::MAX));
            let prompts = problems.iter().map(|p| prompt_ids(&lm, &p.question, None)).collect::<Result<Vec<_>>>()?;
            golds = problems.into_iter().map(|p| p.gold).collect();
            (prompts, Vec::new())
        } else {
            let mut texts = crate::dataset::load_prompts(&self.prompts, self.prompt_field.as_deref(), progress)?;
            texts.truncate(self.limit.unwrap_or(usize::MAX));
            (texts.iter().map(|t| prompt_ids(&lm, t, None)).collect::<Result<Vec<_>>>()?, Vec::new())
        };
        Ok(Prepared { lm, base, opt, prompts, tasks, golds, opts })
    }
}
