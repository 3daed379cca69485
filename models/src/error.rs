//! One error type for everything a model can refuse: each variant names the file
//! (or the input) and the problem, so a user can act on it.

use std::path::{Path, PathBuf};

use entmin_engine::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {msg}")]
    Corrupt { path: PathBuf, msg: String },
    #[error("{path}: {msg}")]
    Unsupported { path: PathBuf, msg: String },
    #[error("{path}: tensor {tensor}: expected shape {expected:?}, found {found:?}")]
    Shape { path: PathBuf, tensor: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("{path}: missing tensor {tensor}")]
    MissingTensor { path: PathBuf, tensor: String },
    #[error("{path}: tensor {tensor} contains {count} non-finite {unit} (NaN or infinity), first at index {first}")]
    NonFinite { path: PathBuf, tensor: String, count: usize, first: usize, unit: &'static str },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("prompt of {prompt} tokens plus {new} new tokens exceeds the context length {context}")]
    ContextOverflow { prompt: usize, new: usize, context: usize },
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl ModelError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        ModelError::Io { path: path.to_path_buf(), source }
    }
    pub fn corrupt(path: &Path, msg: impl Into<String>) -> Self {
        ModelError::Corrupt { path: path.to_path_buf(), msg: msg.into() }
    }
    pub fn unsupported(path: &Path, msg: impl Into<String>) -> Self {
        ModelError::Unsupported { path: path.to_path_buf(), msg: msg.into() }
    }
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
