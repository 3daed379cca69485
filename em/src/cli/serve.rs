//! `entmin serve`: the OpenAI-compatible server (docs/server.md) on a tokio runtime;
//! the model runs on its own thread inside [`entmin::server::serve`].

use std::time::Duration;

use anyhow::{bail, Context, Result};
use entmin::server::{Defaults, ServerConfig};

use super::method_args::parse_method;
use super::ModelArgs;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to bind: loopback unless you mean to expose it (then set --api-key).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0 picks a free one; the "listening on" line says which).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Most sequences decoded together (a request with n choices takes n).
    #[arg(long, default_value_t = 8)]
    pub max_batch: usize,
    /// Most requests waiting beyond the running ones; more get 429.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Require `Authorization: Bearer KEY` (also read from ENTMIN_API_KEY).
    #[arg(long, env = "ENTMIN_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Decoding method when a request names none (its `method` field).
    #[arg(long, default_value = "em-inf")]
    pub method: String,
    /// Temperature when a request gives none: OpenAI's documented default is 1.
    #[arg(long, default_value_t = 1.0)]
    pub default_temperature: f32,
    /// Chat answers without max_tokens stop after this many tokens (or when the
    /// context is full); completions follow OpenAI's default of 16.
    #[arg(long, default_value_t = 4096)]
    pub default_max_tokens: usize,
    /// Most choices per request (n, self-consistency votes, prompts × n).
    #[arg(long, default_value_t = 16)]
    pub max_n: usize,
    /// Largest request body in bytes; larger ones get 400.
    #[arg(long, default_value_t = 4 << 20)]
    pub body_limit: usize,
    /// On SIGTERM / Ctrl-C, seconds running requests get to finish before they are cancelled.
    #[arg(long, default_value_t = 30.0)]
    pub shutdown_grace: f64,
}

pub fn run(a: Args) -> Result<()> {
    if a.max_batch == 0 {
        bail!("--max-batch must be at least 1");
    }
    if !(0.0..=2.0).contains(&a.default_temperature) {
        bail!("--default-temperature must be in [0, 2]");
    }
    let options = a.model.options()?;
    let config = ServerConfig {
        model: a.model.model.clone(),
        options,
        max_batch: a.max_batch,
        queue: a.queue,
        api_key: a.api_key.clone().filter(|k| !k.is_empty()),
        defaults: Defaults {
            method: parse_method(&a.method)?,
            temperature: a.default_temperature,
            chat_max_tokens: a.default_max_tokens,
            max_n: a.max_n.max(1),
        },
        body_limit: a.body_limit,
        shutdown_grace: Duration::from_secs_f64(a.shutdown_grace.max(0.0)),
    };
    // Two workers are plenty: handlers only parse JSON and move events.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind((a.host.as_str(), a.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", a.host, a.port))?;
        let addr = entmin::server::local_addr(&listener)?;
        eprintln!("[listening on http://{addr} — the model is loading; /health says 200 when ready]");
        let model = a.model.model.clone();
        let on_ready = move |engine: &entmin::Engine| {
            for note in engine.notices() {
                eprintln!("[note: {note}]");
            }
            let info = engine.info();
            eprintln!("[device: {}]", engine.device());
            eprintln!(
                "[{model} ({}) ready in {:.1}s, weights {}; serving on http://{addr}/v1]",
                info.architecture, info.load_secs, info.weight_types
            );
        };
        entmin::server::serve(listener, config, shutdown_signal(), on_ready).await?;
        eprintln!("[stopped]");
        Ok(())
    })
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    eprintln!("[shutting down: running requests may finish]");
}
