//! Streaming chat with EM-INF. Each line on stdin is a user turn; the answer streams
//! with each token's entropy after it: the model's own, then that of the distribution
//! the token was drawn from (after EM-INF's optimisation, at the sampling temperature).
//! With SECONDS, an answer still running after that long is cancelled from another
//! thread, as an app's stop button would: the tokens so far are kept.
//!
//! ```text
//! cargo run --release --example chat -- [MODEL] [MAX_TOKENS] [SECONDS]
//! ```

use std::io::{BufRead, Write};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::time::Duration;

use entmin::{Cancel, Engine, Message, Options, Request};

fn main() -> Result<(), entmin::Error> {
    let mut args = std::env::args().skip(1);
    let model = args.next().unwrap_or_else(|| entmin::catalog::DEFAULT_MODEL.to_string());
    let max_tokens = args.next().and_then(|n| n.parse().ok()).unwrap_or(256);
    let time_limit = args.next().and_then(|s| s.parse().ok()).map(Duration::from_secs_f64);
    let engine = Engine::load(&model, Options::default())?;
    eprintln!("[{model} on {}; one question per line, Ctrl-D to end]", engine.device());
    let mut history = vec![Message::new("system", "You are a helpful assistant. Answer concisely.")];
    for line in std::io::stdin().lock().lines() {
        let question = line.map_err(|e| entmin::Error::io("reading", "stdin".as_ref(), e))?;
        if question.trim().is_empty() {
            continue;
        }
        history.push(Message::new("user", &question));
        let cancel = Cancel::new();
        let request = Request::messages(history.clone()).max_tokens(max_tokens).cancel(cancel.clone());
        // The watchdog cancels unless the answer ends first (dropping `answered` wakes it).
        let (answered, wait) = channel::<()>();
        let watchdog = time_limit.map(|limit| {
            std::thread::spawn(move || {
                if wait.recv_timeout(limit) == Err(RecvTimeoutError::Timeout) {
                    cancel.cancel();
                }
            })
        });
        let mut out = std::io::stdout().lock();
        let answer = engine.generate(&request, |token| {
            let _ = write!(out, "{}⟨{:.2}→{:.2}⟩", token.text, token.entropy, token.sampled_entropy);
            let _ = out.flush();
        });
        drop(answered);
        if let Some(w) = watchdog {
            w.join().expect("the watchdog does not panic");
        }
        let answer = answer?;
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
