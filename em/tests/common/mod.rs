//! What the binary's end-to-end tests share: the cached small model, the binary itself
//! and scratch folders. Each test crate uses a part of it, hence `dead_code` is allowed.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The cache entmin and scripts/test.sh use: $ENTMIN_HOME, default ~/.cache/entmin.
pub fn entmin_home() -> PathBuf {
    std::env::var_os("ENTMIN_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/entmin"))
}

/// The cached SmolLM2-135M GGUF (pulled by scripts/test.sh), or None with a note.
pub fn smollm2() -> Option<PathBuf> {
    cached(entmin_home().join("models/smollm2-135m-instruct/model.gguf"))
}

/// `p` if it exists, else None with a note; missing it is a failure when
/// ENTMIN_REQUIRE_ASSETS=1 (CI).
pub fn cached(p: PathBuf) -> Option<PathBuf> {
    if p.exists() {
        return Some(p);
    }
    assert_ne!(std::env::var("ENTMIN_REQUIRE_ASSETS").as_deref(), Ok("1"), "{} missing", p.display());
    eprintln!("skipped: {} missing", p.display());
    None
}

/// `entmin ARGS…`, run to its end.
pub fn entmin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_entmin")).args(args).output().expect("entmin runs")
}

/// Output bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An empty folder of this test process, named by `tag`.
pub fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("entmin-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
