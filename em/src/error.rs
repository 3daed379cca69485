//! The library's error type: each variant says which file, model, device, dataset or
//! request caused it, so an app can show it as is or act on the kind.

use std::path::{Path, PathBuf};

use crate::engine::EngineError;
use crate::models::ModelError;

/// Everything that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading, running or tokenising a model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A backend refused an op or failed on the device.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Reading, writing or creating a file or folder.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done: "reading", "writing", "creating" and so on.
        action: &'static str,
        /// The file or folder it was done on.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file exists but does not hold what it should (a torn checkpoint, a bad line).
    #[error("{}: {msg}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with its contents.
        msg: String,
    },
    /// A model spec that is neither a file nor a catalog entry, or a failed download.
    #[error("model {spec:?}: {msg}")]
    ModelSpec {
        /// The `--model` argument or catalog name, as given.
        spec: String,
        /// Why it could not be resolved or fetched.
        msg: String,
    },
    /// A device that cannot be opened (not in this build, no driver, unknown name).
    #[error("device {device}: {msg}")]
    Device {
        /// The device's name, as given or as the backend kind ("cpu", "wgpu", "cuda").
        device: String,
        /// Why it cannot be opened.
        msg: String,
    },
    /// A dataset name or prompt file that cannot be used.
    #[error("dataset {dataset}: {msg}")]
    Dataset {
        /// The dataset spec, as given: a dataset name or a JSONL file's path.
        dataset: String,
        /// What is wrong with it.
        msg: String,
    },
    /// An option or request parameter out of range, or options that contradict each other.
    #[error("{0}")]
    Invalid(String),
    /// Training refused to go on (a non-finite gradient, a checkpoint of another run).
    #[error("training: {0}")]
    Training(String),
    /// A training run's output folder already holds a run, and resuming was not asked for.
    #[error("{} already holds a run: resume it, or choose another output folder", out.display())]
    RunExists {
        /// The output folder.
        out: PathBuf,
    },
    /// Programs cannot be run in isolation here, or isolating one failed.
    #[error("sandbox: {0}")]
    Sandbox(String),
    /// A helper program (python3, pip) failed.
    #[error("{program}: {msg}")]
    Subprocess {
        /// The program that failed ("python3", "pip").
        program: &'static str,
        /// Why it could not be started or what it reported.
        msg: String,
    },
}

/// `Result` with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O failure while doing `action` ("reading", "writing", "creating") on `path`.
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Error {
        Error::Io { action, path: path.to_path_buf(), source }
    }

    /// `path` holds something unusable.
    pub fn corrupt(path: &Path, msg: impl Into<String>) -> Error {
        Error::Corrupt { path: path.to_path_buf(), msg: msg.into() }
    }

    /// An invalid option or request.
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }

    /// A training step or resume refused.
    pub fn training(msg: impl Into<String>) -> Error {
        Error::Training(msg.into())
    }

    /// A dataset problem.
    pub fn dataset(dataset: impl Into<String>, msg: impl Into<String>) -> Error {
        Error::Dataset { dataset: dataset.into(), msg: msg.into() }
    }
}
