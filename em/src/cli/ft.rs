//! `entmin ft`: EM-FT on unlabeled prompts (em/src/train/emft.rs) on any backend
//! (`--device`), with progress, metrics JSONL, atomic Hugging Face checkpoints and exact
//! `--resume`.

use anyhow::{bail, Result};
use entmin::engine::Backend;
use entmin::train::emft::{EmFt, EmFtConfig, Reduction};

use super::train_args::{run_with_progress, TrainArgs};
use super::{on_device, open_device};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub train: TrainArgs,
    #[arg(long, default_value_t = 1)]
    pub samples_per_prompt: usize,
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    #[arg(long, default_value_t = 1.0)]
    pub rollout_temperature: f32,
    /// Prompts per step.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// sum (the paper: Σ of response-token entropies) | mean (per-sequence mean).
    #[arg(long, default_value = "sum")]
    pub reduction: String,
}

pub fn run(a: Args) -> Result<()> {
    let reduction = match a.reduction.as_str() {
        "sum" => Reduction::Sum,
        "mean" => Reduction::Mean,
        other => bail!("unknown reduction {other:?} (sum, mean)"),
    };
    let t = &a.train;
    let config = EmFtConfig {
        samples_per_prompt: a.samples_per_prompt,
        max_new_tokens: a.max_new_tokens,
        rollout_temperature: a.rollout_temperature,
        batch: a.batch,
        steps: t.steps,
        seed: t.seed,
        reduction,
        head_chunk: t.head_chunk,
        recompute: t.recompute,
    };
    on_device!(open_device(&t.device, true)?, run_on(&a, config))
}

fn run_on<B: Backend>(backend: &B, a: &Args, config: EmFtConfig) -> Result<()> {
    let t = &a.train;
    let mut p = t.prepare(backend, serde_json::to_value(EmFtConfig { steps: 0, ..config.clone() })?, 1)?;
    eprintln!(
        "[EM-FT: {} prompts, {} per step × {} samples, {} steps, lr {}, {} parameters]",
        p.prompts.len(),
        a.batch,
        a.samples_per_prompt,
        t.steps,
        t.lr,
        p.lm.model.named_parameters().iter().map(|(_, t)| t.len()).sum::<usize>()
    );
    let done = p.opt.step;
    let mut ft = EmFt::new(backend, &mut p.lm, p.opt, config)?;
    run_with_progress(backend, &mut ft, &p.prompts, &p.opts, t.steps, done, |m| {
        let text = format!(
            "loss {:.3}, entropy {:.3}, {:.0} tokens/response, {:.1} tok/s",
            m.loss, m.mean_entropy, m.mean_response_tokens, m.tokens_per_sec
        );
        (m.step, text)
    })?;
    Ok(())
}
