use std::io::{IsTerminal, Write};

use anyhow::Result;
use entmin::methods::Method;
use entmin::{Generation, Request};

use super::method_args::{parse_method, MethodArgs};
use super::{ModelArgs, PromptFormat};

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
    /// Colour each token by the entropy of the distribution it was drawn from (after
    /// EM-INF, at the sampling temperature), and report the model's own entropy beside
    /// it at the end. Colours only on a terminal and never with NO_COLOR; elsewhere each
    /// token is followed by [model entropy → sampled entropy].
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

/// Colours are for terminals, and never when NO_COLOR is set (no-color.org).
fn use_colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn summary(g: &Generation) -> String {
    let mut s = format!(
        "{} prompt + {} new tokens | prefill {:.1} tok/s | decode {:.1} tok/s | mean entropy: model {:.3}, sampled {:.3} nats",
        g.prompt_tokens,
        g.tokens.len(),
        g.prompt_tokens as f64 / g.prefill_secs.max(1e-9),
        g.decode_tokens_per_sec(),
        g.mean_entropy(),
        g.mean_sampled_entropy(),
    );
    if !g.em_inf.is_empty() {
        let optimised = g.em_inf.iter().filter(|s| s.steps > 0).count();
        s += &format!(" | EM-INF: {} Adam steps, {optimised}/{} tokens optimised", g.em_inf_steps(), g.em_inf.len());
    }
    s + &format!(" | stop: {}", g.stop.describe())
}

pub fn run(a: Args) -> Result<()> {
    let method = parse_method(&a.method)?;
    let config = a.method_args.config(method)?;
    let engine = a.model.engine(true)?;
    let prompt = a.format.prompt(&a.prompt, a.system.as_deref());
    let prompt_tokens = engine.encode(&prompt)?.len();
    let context = engine.info().context_length;
    let room = context.saturating_sub(prompt_tokens);
    if a.max_new_tokens > room && prompt_tokens < context {
        eprintln!(
            "[--max-new-tokens {} capped to {room}: the context holds {context} tokens and the prompt takes {prompt_tokens}]",
            a.max_new_tokens,
        );
    }
    let mut request = Request::new(prompt).method_config(config).max_tokens(a.max_new_tokens).seed(a.seed);
    request.stop = a.stop.clone();
    if method == Method::SelfConsistency {
        let answer = engine.generate(&request, |_| ())?;
        println!("{}", answer.text);
        let vote = answer.vote.as_ref().expect("self-consistency votes");
        let tally: Vec<String> = vote.tally.iter().map(|(ans, n)| format!("{ans} ×{n}")).collect();
        eprintln!(
            "[vote over {} samples: {}]",
            answer.samples.len(),
            if tally.is_empty() { "no answers found".into() } else { tally.join(", ") }
        );
        for (i, g) in answer.samples.iter().enumerate() {
            eprintln!("[sample {i}: {}]", summary(g));
        }
        return Ok(());
    }
    let colour = a.show_entropy && use_colour();
    if colour {
        eprintln!(
            "sampled entropy: {}<0.3\x1b[0m {}<1.0\x1b[0m {}<2.0\x1b[0m {}≥2.0 nats\x1b[0m",
            entropy_colour(0.0),
            entropy_colour(0.5),
            entropy_colour(1.5),
            entropy_colour(3.0)
        );
    }
    let mut stdout = std::io::stdout().lock();
    let answer = engine.generate(&request, |step| {
        let _ = if colour {
            write!(stdout, "{}{}\x1b[0m", entropy_colour(step.sampled_entropy), step.text)
        } else if a.show_entropy {
            write!(stdout, "{}[{:.2}→{:.2}]", step.text, step.entropy, step.sampled_entropy)
        } else {
            stdout.write_all(step.text.as_bytes())
        };
        let _ = stdout.flush();
    })?;
    drop(stdout);
    println!();
    eprintln!("[{} | method {}]", summary(answer.generation()), method.name());
    Ok(())
}
