//! Code reasoning: from a model's answer to a tested program. [`extract_program`] finds
//! the program in the answer, [`Sandbox`] runs it with its tests in isolation,
//! [`Pool`] runs many at once beside generation, and [`normalise_program`] lets
//! self-consistency count equal programs. See docs/code-eval.md.

mod extract;
#[cfg(target_os = "linux")]
mod isolate;
mod normalise;
mod pool;
mod sandbox;

pub use extract::extract_program;
pub use normalise::normalise_program;
pub use pool::{Pending, Pool};
pub use sandbox::{Isolation, Limits, Outcome, Sandbox, Status};
