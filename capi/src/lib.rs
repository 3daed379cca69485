//! libentmin: the C interface of entmin (`include/entmin.h`, generated from this
//! crate by cbindgen; the rules every function follows are at the header's top and in
//! docs/capi.md). Each module is one concept: status codes and the panic guard,
//! handles, models, cancel handles, generation, token ids.

// The exported names are C's (`entmin_model`, `entmin_status`), as the header shows them.
#![allow(non_camel_case_types)]

mod cancel;
mod generate;
mod handles;
mod model;
mod status;
#[cfg(test)]
mod tests;
mod tokens;

pub use cancel::*;
pub use generate::*;
pub use model::*;
pub use status::*;
pub use tokens::*;
