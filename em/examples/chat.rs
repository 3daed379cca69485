//! Streaming chat with EM-INF. Each line on stdin is a user turn; the answer streams
//! with each token's entropy after it: the model's own, then that of the distribution
//! the token was drawn from (after EM-INF's optimisation, at the sampling temperature).
//!
//! ```text
//! cargo run --release --example chat -- [MODEL] [MAX_TOKENS]
//! ```

use std::io::{BufRead, Write};

use entmin::{Engine, Message, Options, Request};

fn main() -> Result<(), entmin::Error> {
    let mut args = std::env::args().skip(1);
    let model = args.next().unwrap_or_else(|| entmin::catalog::DEFAULT_MODEL.to_string());
    let max_tokens = args.next().and_then(|n| n.parse().ok()).unwrap_or(256);
    let engine = Engine::load(&model, Options::default())?;
    eprintln!("[{model} on {}; one question per line, Ctrl-D to end]", engine.device());
    let mut history = vec![Message::new("system", "You are a helpful assistant. Answer concisely.")];
    for line in std::io::stdin().lock().lines() {
        let question = line.map_err(|e| entmin::Error::io("reading", "stdin".as_ref(), e))?;
        if question.trim().is_empty() {
            continue;
        }
        history.push(Message::new("user", &question));
        let request = Request::messages(history.clone()).max_tokens(max_tokens);
        let mut out = std::io::stdout().lock();
        let answer = engine.generate(&request, |token| {
            let _ = write!(out, "{}⟨{:.2}→{:.2}⟩", token.text, token.entropy, token.sampled_entropy);
            let _ = out.flush();
        })?;
        let g = answer.generation();
        writeln!(out).ok();
        eprintln!(
            "[{} tokens, {:.1} tok/s, mean entropy: model {:.3}, sampled {:.3} nats, {} EM-INF Adam steps, stop: {}]",
            g.tokens.len(),
            g.decode_tokens_per_sec(),
            g.mean_entropy(),
            g.mean_sampled_entropy(),
            g.em_inf_steps(),
            g.stop.describe()
        );
        history.push(Message::new("assistant", &answer.text));
    }
    Ok(())
}
