//! `entmin bench-train`: speed and peak memory of one EM-FT training step on the CPU —
//! forward, chunked entropy head, backward and AdamW over `--batch` sequences of
//! `--tokens` tokens, every position in the loss — the shape
//! benches/peers/torch_train_step.py measures for PyTorch eager.

use std::time::Instant;

use anyhow::Result;
use entmin::catalog;
use entmin::engine::cpu::CpuBackend;
use entmin::engine::DType;
use entmin::train::emft::{EmFt, EmFtConfig, Reduction};
use entmin::train::new_optimizer;
use entmin::train::optim::{AdamWConfig, Schedule};
use serde_json::json;

use super::bench::peak_rss_mib;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, short = 'm', default_value = catalog::DEFAULT_MODEL)]
    pub model: String,
    #[arg(long, default_value_t = 2)]
    pub batch: usize,
    #[arg(long, default_value_t = 256)]
    pub tokens: usize,
    /// Timed steps after one warm-up step; the best is reported.
    #[arg(long, default_value_t = 2)]
    pub steps: usize,
    #[arg(long, default_value_t = 256)]
    pub head_chunk: usize,
    #[arg(long)]
    pub recompute: bool,
}

pub fn run(a: Args) -> Result<()> {
    let b = CpuBackend;
    let mut lm = entmin::models::load(&b, &catalog::resolve_model(&a.model, &entmin::progress::Quiet)?, DType::F32)?;
    let sentence =
        lm.tokenizer.encode("The quick brown fox jumps over the lazy dog while the sun sets slowly. ", false)?;
    let ids: Vec<u32> = sentence.iter().copied().cycle().take(a.tokens).collect();
    let weights = vec![1.0 / a.batch as f32; a.tokens];
    let batch: Vec<(Vec<u32>, Vec<f32>)> = (0..a.batch).map(|_| (ids.clone(), weights.clone())).collect();
    let optim = AdamWConfig {
        lr: 1e-6,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        grad_clip: 1.0,
        schedule: Schedule::Constant,
        warmup_steps: 0,
        total_steps: 1_000,
    };
    let config = EmFtConfig {
        samples_per_prompt: 1,
        max_new_tokens: 0,
        rollout_temperature: 1.0,
        batch: a.batch,
        steps: 0,
        seed: 0,
        reduction: Reduction::Sum,
        head_chunk: a.head_chunk,
        recompute: a.recompute,
    };
    let opt = new_optimizer(&lm, optim, &[])?;
    let mut trainer = EmFt::new(&b, &mut lm, opt, config)?;
    trainer.update(&b, &batch)?;
    let mut best = f64::INFINITY;
    let (mut loss, mut phases) = (0.0, Default::default());
    for _ in 0..a.steps.max(1) {
        let t = Instant::now();
        let update = trainer.update(&b, &batch)?;
        let secs = t.elapsed().as_secs_f64();
        // The last step's loss, as the PyTorch peer reports it.
        loss = update.loss;
        if secs < best {
            (best, phases) = (secs, update.phases);
        }
    }
    let report = json!({
        "impl": "entmin",
        "model": a.model,
        "threads": rayon::current_num_threads(),
        "batch": a.batch,
        "tokens": a.tokens,
        "recompute": a.recompute,
        "head_chunk": a.head_chunk,
        "step_s": best,
        "phase_s": phases,
        "train_tok_s": (a.batch * a.tokens) as f64 / best,
        "loss": loss,
        "peak_rss_mb": peak_rss_mib(),
    });
    println!("{report}");
    Ok(())
}
