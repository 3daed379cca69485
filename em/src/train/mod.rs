//! Training: AdamW and schedules (`optim`), crash-safe checkpoints (`checkpoint`) and
//! EM-FT (`emft`); `run_emft` ties them together with a metrics JSONL and `--resume`.

pub mod checkpoint;
pub mod emft;
pub mod optim;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::engine::Backend;
use crate::models::LoadedModel;
use anyhow::{bail, Context, Result};

use emft::{EmFt, EmFtConfig, StepMetrics};
use optim::{AdamW, AdamWConfig};

pub struct RunOptions {
    pub out: PathBuf,
    /// Write a checkpoint every this many steps (and always after the last).
    pub checkpoint_every: u64,
    /// Everything that defines the run; a resumed run must have the same (steps may grow).
    pub settings: serde_json::Value,
}

/// The optimiser to continue from OUT's latest checkpoint, after checking that it
/// belongs to this run; None when OUT has no checkpoint.
pub fn resume_optimizer<B: Backend>(lm: &LoadedModel<B>, opts: &RunOptions) -> Result<Option<AdamW>> {
    let Some(latest) = checkpoint::latest(&opts.out)? else { return Ok(None) };
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("steps");
        }
        v
    };
    if strip(&latest.settings) != strip(&opts.settings) {
        bail!(
            "{}: the checkpoint was made with other settings ({}); use another --out or the same settings",
            opts.out.join("latest.json").display(),
            latest.settings
        );
    }
    let sizes: Vec<(String, usize)> = lm.model.named_parameters().into_iter().map(|(n, t)| (n, t.len())).collect();
    Ok(Some(checkpoint::load_optimizer(&opts.out, &latest, &sizes)?))
}

/// The model folder of OUT's latest checkpoint, if any.
pub fn latest_model(out: &Path) -> Result<Option<PathBuf>> {
    Ok(checkpoint::latest(out)?.map(|l| out.join(l.folder)))
}

/// Keep the metrics of steps ≤ `done` (a resumed run rewrites what followed).
fn trim_metrics(path: &Path, done: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: String = text
        .lines()
        .filter(|l| serde_json::from_str::<StepMetrics>(l).is_ok_and(|m| m.step <= done))
        .map(|l| format!("{l}\n"))
        .collect();
    checkpoint::write_atomically(path, kept.as_bytes())
}

/// Train until `config.steps` steps are done, from `opt.step`, checkpointing as asked.
pub fn run_emft<B: Backend>(
    backend: &B,
    lm: &mut LoadedModel<B>,
    prompts: &[Vec<u32>],
    config: EmFtConfig,
    opt: AdamW,
    opts: &RunOptions,
    on_step: &mut dyn FnMut(&StepMetrics),
) -> Result<()> {
    if prompts.is_empty() {
        bail!("no prompts to train on");
    }
    std::fs::create_dir_all(&opts.out).with_context(|| format!("creating {}", opts.out.display()))?;
    let metrics_path = opts.out.join("metrics.jsonl");
    trim_metrics(&metrics_path, opt.step)?;
    let steps = config.steps;
    let mut trainer = EmFt::new(backend, lm, opt, config)?;
    while trainer.opt.step < steps {
        let m = trainer.step(backend, prompts)?;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&metrics_path)?;
        writeln!(f, "{}", serde_json::to_string(&m)?)?;
        on_step(&m);
        if m.step % opts.checkpoint_every.max(1) == 0 || m.step == steps {
            checkpoint::save(backend, trainer.lm, &trainer.opt, &opts.out, &opts.settings)?;
        }
    }
    Ok(())
}

/// A fresh optimiser for `lm`.
pub fn new_optimizer<B: Backend>(lm: &LoadedModel<B>, config: AdamWConfig) -> AdamW {
    let sizes: Vec<usize> = lm.model.named_parameters().iter().map(|(_, t)| t.len()).collect();
    AdamW::new(config, &sizes)
}
