//! entmin: entropy minimisation for language models.
//!
//! This crate is the library apps embed and the `entmin` command line is built on:
//! [`Engine::load`] opens a model (a catalog name fetched on first use, a `.gguf` file
//! or a Hugging Face folder) on the best device this machine has, and
//! [`Engine::generate`] answers a [`Request`] with one of the decoding methods —
//! EM-INF (the paper's inference-time entropy minimisation), plain sampling, adaptive
//! temperature or self-consistency — streaming each token with the model's entropy
//! and, under EM-INF, what the optimisation did. Evaluation ([`eval`]), EM-FT and EM-RL
//! training ([`train`]), answer checking ([`answer`]) and datasets ([`dataset`]) are
//! library calls too.
//!
//! # Streaming EM-INF chat
//!
//! ```
//! use std::io::Write;
//! use entmin::{Engine, Options, Request};
//!
//! fn main() -> Result<(), entmin::Error> {
//!     let engine = Engine::load("qwen2.5-coder-0.5b-instruct", Options::default())?;
//!     eprintln!("[{}]", engine.device()); // which device, and why
//!     let request = Request::chat("What is 12 × 13? Answer briefly.").max_tokens(16);
//!     let answer = engine.generate(&request, |token| {
//!         // token.entropy: the model's own distribution; token.sampled_entropy: the
//!         // one the token was drawn from (after EM-INF, at the sampling temperature).
//!         print!("{}", token.text);
//!         let _ = std::io::stdout().flush();
//!     })?;
//!     let g = answer.generation();
//!     println!("\n{} tokens, mean entropy {:.3} → {:.3} nats, {} Adam steps",
//!         g.tokens.len(), g.mean_entropy(), g.mean_sampled_entropy(), g.em_inf_steps());
//!     Ok(())
//! }
//! ```
//!
//! The callback returns `()` to go on or [`Flow::Stop`] to end the answer; a
//! [`Cancel`] handle given with [`Request::cancel`] stops it from another thread.
//!
//! # Layers
//! `entmin` (this crate: engine entry point, methods, evaluation, training) →
//! [`models`] (GGUF / Hugging Face loading, tokenizer, chat templates, the decoder and
//! the generation loop) → [`engine`] (tensors, the `Backend` trait, CPU / wgpu / CUDA
//! backends and their kernels). See `docs/design.md`.

#![warn(missing_docs)]

pub mod answer;
pub mod catalog;
pub mod code;
pub mod dataset;
mod error;
pub mod eval;
pub mod methods;
pub mod progress;
pub mod runtime;
#[cfg(feature = "server")]
pub mod server;
pub mod train;

pub use entmin_engine as engine;
pub use entmin_models as models;

pub use error::{Error, Result};
pub use methods::{Method, MethodConfig};
pub use models::{Cancel, Flow, Generation, Message, Step, StopReason};
pub use progress::Progress;
pub use runtime::{Completion, DeviceChoice, DeviceKind, Engine, ModelInfo, Options, Prompt, Request};
