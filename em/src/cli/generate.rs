use std::io::Write;

use anyhow::Result;
use entmin::engine::Backend;
use entmin::methods::self_consistency::majority_vote;
use entmin::methods::Method;
use entmin::models::{generate, generate_batch, Generation, GenerationParams};

use super::method_args::{parse_method, MethodArgs};
use super::{encode_prompt, on_device, ModelArgs, PromptFormat};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The question or text.
    pub prompt: String,
    /// plain | em-inf | adaptive-temp | self-consistency
    #[arg(long, default_value = "em-inf")]
    pub method: String,
    #[command(flatten)]
    pub method_args: MethodArgs,
    /// System message (chat template only).
    #[arg(long)]
    pub system: Option<String>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 512)]
    pub max_new_tokens: usize,
    /// Stop when the output ends with this text (repeatable).
    #[arg(long = "stop")]
    pub stop: Vec<String>,
    #[command(flatten)]
    pub format: PromptFormat,
    /// Colour each token by the entropy of the distribution it was drawn from.
    #[arg(long)]
    pub show_entropy: bool,
}

/// ANSI colour for an entropy in nats: where the model is sure, hesitant, lost.
fn entropy_colour(h: f32) -> &'static str {
    match h {
        h if h < 0.3 => "\x1b[32m",
        h if h < 1.0 => "\x1b[33m",
        h if h < 2.0 => "\x1b[38;5;208m",
        _ => "\x1b[31m",
    }
}

fn summary(g: &Generation) -> String {
    format!(
        "{} prompt + {} new tokens | prefill {:.1} tok/s | decode {:.1} tok/s | mean entropy {:.3} nats | stop: {}",
        g.prompt_tokens,
        g.tokens.len(),
        g.prompt_tokens as f64 / g.prefill_secs.max(1e-9),
        g.decode_tokens_per_sec(),
        g.mean_entropy(),
        g.stop.describe(),
    )
}

pub fn run(a: Args) -> Result<()> {
    on_device!(a.model.device(true)?, run_on(a))
}

fn run_on<B: Backend>(b: &B, a: Args) -> Result<()> {
    let method = parse_method(&a.method)?;
    let config = a.method_args.config(method)?;
    let lm = a.model.load(b, true)?;
    let ids = encode_prompt(&lm, &a.prompt, a.system.as_deref(), &a.format)?;
    let context = lm.model.config.context_length;
    let room = context.saturating_sub(ids.len());
    if a.max_new_tokens > room && ids.len() < context {
        eprintln!(
            "[--max-new-tokens {} capped to {room}: the context holds {context} tokens and the prompt takes {}]",
            a.max_new_tokens,
            ids.len()
        );
    }
    let params = GenerationParams { max_new_tokens: a.max_new_tokens, stop_strings: a.stop.clone() };
    let mut picker = config.picker::<B>();
    if method == Method::SelfConsistency {
        let prompts = vec![ids; config.votes];
        let seeds: Vec<u64> = (0..config.votes as u64).map(|i| a.seed.wrapping_add(i)).collect();
        let gens = generate_batch(b, &lm, &prompts, &params, picker.as_mut(), &seeds, &mut |_| {})?;
        let texts: Vec<String> = gens.iter().map(|g| g.text.clone()).collect();
        let vote = majority_vote(&texts);
        println!("{}", gens[vote.representative].text);
        let tally: Vec<String> = vote.tally.iter().map(|(ans, n)| format!("{ans} ×{n}")).collect();
        eprintln!(
            "[vote over {} samples: {}]",
            gens.len(),
            if tally.is_empty() { "no answers found".into() } else { tally.join(", ") }
        );
        for (i, g) in gens.iter().enumerate() {
            eprintln!("[sample {i}: {}]", summary(g));
        }
        return Ok(());
    }
    if a.show_entropy {
        eprintln!(
            "entropy: {}<0.3\x1b[0m {}<1.0\x1b[0m {}<2.0\x1b[0m {}≥2.0 nats\x1b[0m",
            entropy_colour(0.0),
            entropy_colour(0.5),
            entropy_colour(1.5),
            entropy_colour(3.0)
        );
    }
    let mut stdout = std::io::stdout().lock();
    let show = a.show_entropy;
    let g = generate(b, &lm, &ids, &params, picker.as_mut(), a.seed, |step| {
        let _ = if show {
            write!(stdout, "{}{}\x1b[0m", entropy_colour(step.entropy), step.text)
        } else {
            stdout.write_all(step.text.as_bytes())
        };
        let _ = stdout.flush();
    })?;
    drop(stdout);
    println!();
    eprintln!("[{} | method {}]", summary(&g), method.name());
    Ok(())
}
