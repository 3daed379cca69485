//! `entmin ft`: EM-FT on unlabeled prompts (em/src/train/emft.rs) on any backend
//! (`--device`), with progress, metrics JSONL, atomic Hugging Face checkpoints and exact
//! `--resume`.

use anyhow::{bail, Result};
use entmin::train::emft::{EmFtConfig, Reduction};

use super::train_args::TrainArgs;

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
    t.launch(config)
}
