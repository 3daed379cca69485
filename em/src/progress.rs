//! Progress of long library calls (downloads, evaluations) reported to whoever draws it:
//! the command line draws bars, an app its own widget, a server nothing.

/// Receives progress; every method has an empty default. Methods take `&self` so one
/// reporter can be shared; implementations use interior mutability.
pub trait Progress: Sync {
    /// A phase of `total` units begins, `done` of them already done (a resumed run).
    fn begin(&self, label: &str, total: u64, done: u64) {
        let _ = (label, total, done);
    }
    /// `n` more units are done; `status` is a short summary so far (may be empty).
    fn advance(&self, n: u64, status: &str) {
        let _ = (n, status);
    }
    /// The phase is over.
    fn finish(&self) {}
    /// Something the user should know that is not an error, one sentence.
    fn note(&self, text: &str) {
        let _ = text;
    }
}

/// Reports nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {}
