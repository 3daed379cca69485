//! `entmin ft`: EM-FT on unlabeled prompts (em/src/train), on the CPU backend (the
//! backward ops are CPU-only so far), with progress, metrics JSONL, atomic Hugging Face
//! checkpoints and exact `--resume`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use entmin::catalog;
use entmin::dataset;
use entmin::engine::cpu::CpuBackend;
use entmin::engine::DType;
use entmin::eval::prompt_ids;
use entmin::train::emft::{EmFtConfig, Reduction};
use entmin::train::optim::{AdamWConfig, Schedule};
use entmin::train::{latest_model, new_optimizer, resume_optimizer, run_emft, RunOptions};
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct Args {
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
    #[arg(long, default_value_t = 1)]
    pub samples_per_prompt: usize,
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    #[arg(long, default_value_t = 1.0)]
    pub rollout_temperature: f32,
    /// Prompts per step.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    #[arg(long, default_value_t = 10)]
    pub steps: u64,
    #[arg(long, default_value_t = 1e-6)]
    pub lr: f32,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
    #[arg(long, default_value_t = 1.0)]
    pub grad_clip: f32,
    /// constant | linear | cosine
    #[arg(long, default_value = "constant")]
    pub schedule: String,
    #[arg(long, default_value_t = 0)]
    pub warmup_steps: u64,
    /// sum (the paper: Σ of response-token entropies) | mean (per-sequence mean).
    #[arg(long, default_value = "sum")]
    pub reduction: String,
    /// Positions per chunk of the LM head.
    #[arg(long, default_value_t = 64)]
    pub head_chunk: usize,
    /// Recompute activations in the backward pass (less memory, ~1/3 more compute).
    #[arg(long)]
    pub recompute: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 5)]
    pub checkpoint_every: u64,
    /// Output folder: step-N/ (Hugging Face folder), metrics.jsonl, latest.json.
    #[arg(long, default_value = "ft-out")]
    pub out: PathBuf,
    /// Continue from OUT's latest checkpoint (same settings; --steps may grow).
    #[arg(long)]
    pub resume: bool,
}

pub fn run(a: Args) -> Result<()> {
    let reduction = match a.reduction.as_str() {
        "sum" => Reduction::Sum,
        "mean" => Reduction::Mean,
        other => bail!("unknown reduction {other:?} (sum, mean)"),
    };
    let config = EmFtConfig {
        samples_per_prompt: a.samples_per_prompt,
        max_new_tokens: a.max_new_tokens,
        rollout_temperature: a.rollout_temperature,
        batch: a.batch,
        steps: a.steps,
        seed: a.seed,
        reduction,
        head_chunk: a.head_chunk,
        recompute: a.recompute,
    };
    let optim = AdamWConfig {
        lr: a.lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: a.weight_decay,
        grad_clip: a.grad_clip,
        schedule: Schedule::parse(&a.schedule)?,
        warmup_steps: a.warmup_steps,
        total_steps: a.steps,
    };
    let settings = json!({
        "model": a.model, "prompts": a.prompts, "prompt_field": a.prompt_field, "limit": a.limit,
        // Only --steps may change on resume: it is kept out of the nested settings.
        "emft": EmFtConfig { steps: 0, ..config.clone() }, "optim": AdamWConfig { total_steps: 0, ..optim },
        "steps": a.steps,
    });
    let opts = RunOptions { out: a.out.clone(), checkpoint_every: a.checkpoint_every, settings };
    let b = CpuBackend;
    let resume_from = if a.resume { latest_model(&a.out)? } else { None };
    if !a.resume && latest_model(&a.out)?.is_some() {
        bail!("{} already holds a run: pass --resume to continue it, or choose another --out", a.out.display());
    }
    let path = match &resume_from {
        Some(p) => p.clone(),
        None => catalog::resolve_model(&a.model, true)?,
    };
    let mut lm = entmin::models::load(&b, &path, DType::F32)?;
    let opt = match resume_optimizer(&lm, &opts)? {
        Some(mut opt) => {
            opt.config.total_steps = a.steps;
            eprintln!("[resuming after step {} from {}]", opt.step, path.display());
            opt
        }
        None => new_optimizer(&lm, optim),
    };
    let mut texts = dataset::load_prompts(&a.prompts, a.prompt_field.as_deref(), true)?;
    if let Some(n) = a.limit {
        texts.truncate(n);
    }
    let prompts = texts.iter().map(|t| prompt_ids(&lm, t, None)).collect::<Result<Vec<_>>>()?;
    eprintln!(
        "[EM-FT: {} prompts, {} per step × {} samples, {} steps, lr {}, {} parameters]",
        prompts.len(),
        a.batch,
        a.samples_per_prompt,
        a.steps,
        a.lr,
        lm.model.named_parameters().iter().map(|(_, t)| t.len()).sum::<usize>()
    );
    let bar = indicatif::ProgressBar::new(a.steps);
    bar.set_position(opt.step);
    bar.set_style(indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} steps, ETA {eta} {msg}")?);
    run_emft(&b, &mut lm, &prompts, config, opt, &opts, &mut |m| {
        bar.set_position(m.step);
        bar.set_message(format!(
            "loss {:.3}, entropy {:.3}, {:.0} tokens/response, {:.1} tok/s",
            m.loss, m.mean_entropy, m.mean_response_tokens, m.tokens_per_sec
        ));
        bar.println(serde_json::to_string(m).unwrap_or_default());
    })?;
    bar.finish();
    eprintln!(
        "[done: {} (Hugging Face folder), metrics in {}]",
        a.out.display(),
        a.out.join("metrics.jsonl").display()
    );
    Ok(())
}
