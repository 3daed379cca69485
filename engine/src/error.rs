#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("shape mismatch in {op}: {detail}")]
    Shape { op: &'static str, detail: String },
    #[error("{op} does not support dtype {dtype}")]
    DType { op: &'static str, dtype: crate::DType },
    #[error("non-finite logits in row {row} ({what})")]
    NonFinite { row: usize, what: &'static str },
    #[error("invalid argument to {op}: {detail}")]
    Invalid { op: &'static str, detail: String },
    #[error("backend {backend} is not available: {reason}")]
    Unavailable { backend: &'static str, reason: String },
    #[error("{backend} device error: {detail}")]
    Device { backend: &'static str, detail: String },
}

impl EngineError {
    pub fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        EngineError::Shape { op, detail: detail.into() }
    }
    pub fn invalid(op: &'static str, detail: impl Into<String>) -> Self {
        EngineError::Invalid { op, detail: detail.into() }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
