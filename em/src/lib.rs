//! entmin: entropy minimisation for language models.
//!
//! This crate is the facade: it re-exports the engine and the models, holds the
//! catalog of fetchable models, and (in later modules) the EM methods. The
//! `entmin` binary is a thin command line over it.

pub mod catalog;

pub use entmin_engine as engine;
pub use entmin_models as models;
