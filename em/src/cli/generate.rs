use std::io::Write;

use anyhow::Result;
use entmin::engine::SamplingParams;
use entmin::models::{generate, GenerationParams, StopReason};

use super::{encode_prompt, ModelArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The question or text.
    pub prompt: String,
    /// System message (chat template only).
    #[arg(long)]
    pub system: Option<String>,
    /// Sampling temperature; 0 = greedy.
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 512)]
    pub max_new_tokens: usize,
    /// Stop when the output ends with this text (repeatable).
    #[arg(long = "stop")]
    pub stop: Vec<String>,
    /// Feed the prompt as is, without the chat template.
    #[arg(long)]
    pub raw: bool,
}

pub fn run(a: Args) -> Result<()> {
    let lm = a.model.load(true)?;
    let ids = encode_prompt(&lm, &a.prompt, a.system.as_deref(), a.raw)?;
    let params = GenerationParams {
        sampling: SamplingParams {
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
            min_p: a.min_p,
            banned: vec![],
        },
        max_new_tokens: a.max_new_tokens,
        seed: a.seed,
        stop_strings: a.stop.clone(),
    };
    let mut stdout = std::io::stdout().lock();
    let g = generate(&entmin::engine::cpu::CpuBackend, &lm, &ids, &params, |step| {
        let _ = stdout.write_all(step.text.as_bytes());
        let _ = stdout.flush();
    })?;
    drop(stdout);
    println!();
    let stop = match g.stop {
        StopReason::StopToken => "end of turn",
        StopReason::StopString => "stop string",
        StopReason::MaxTokens => "max tokens",
    };
    eprintln!(
        "[{} prompt + {} new tokens | prefill {:.1} tok/s | decode {:.1} tok/s | mean entropy {:.3} nats | stop: {stop}]",
        g.prompt_tokens,
        g.tokens.len(),
        g.prompt_tokens as f64 / g.prefill_secs.max(1e-9),
        g.decode_tokens_per_sec(),
        g.mean_entropy(),
    );
    Ok(())
}
