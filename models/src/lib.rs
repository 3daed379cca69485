//! Llama and Qwen2 decoder models for entmin: GGUF and Hugging Face loading,
//! tokenizer, chat templates, KV-cache generation.

pub mod batch;
pub mod chat;
mod chat_encode;
pub mod config;
pub mod durable;
pub mod error;
pub mod export;
pub mod generate;
pub mod gguf;
pub mod layer;
pub mod loader;
pub mod model;
pub mod synthetic;
pub mod tokenizer;
pub mod train;
pub mod train_head;
pub mod weights;

pub use batch::{DecodeBatch, NewSequence};
pub use chat::{ChatTemplate, Message};
pub use config::{Architecture, ModelConfig};
pub use error::{ModelError, Result};
pub use generate::{
    generate, generate_batch, Cancel, Decoder, Flow, Generation, GenerationParams, Pick, Sampler, SeenFn, Step,
    StopReason, TokenPicker,
};
pub use loader::{load, Format, LoadedModel};
pub use model::{BatchItem, KvCache, Logits, Model};
pub use tokenizer::Tokenizer;
pub use weights::WeightDtype;
