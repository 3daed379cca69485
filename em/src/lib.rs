//! entmin: entropy minimisation for language models.
//!
//! This crate is the facade: it re-exports the engine and the models, holds the
//! catalog of fetchable models, answer checking, and the EM decoding methods. The
//! `entmin` binary is a thin command line over it.

pub mod answer;
pub mod catalog;
pub mod dataset;
pub mod eval;
pub mod methods;
pub mod train;

pub use entmin_engine as engine;
pub use entmin_models as models;
