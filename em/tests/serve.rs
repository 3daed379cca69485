//! `entmin serve` end to end: tests/python/test_server.py drives servers started from
//! this build with the real `openai` Python client (installed, pinned, by
//! scripts/test.sh), on SmolLM2 and on tiny random models written here as GGUF.

use std::process::Command;

use entmin_tests::gguf_writer::{tiny_model_gguf_as, Matrices};
use entmin_tests::tiny::{config, random_weights};

fn openai_client_installed() -> bool {
    let ok = Command::new("python3").args(["-c", "import openai"]).status().is_ok_and(|s| s.success());
    if !ok {
        assert_ne!(std::env::var("ENTMIN_REQUIRE_ASSETS").as_deref(), Ok("1"), "python3 cannot import openai");
        eprintln!("skipped: python3 cannot import openai (scripts/test.sh installs it)");
    }
    ok
}

#[test]
fn openai_client_against_the_server() {
    if !openai_client_installed() || entmin_tests::cached_model("smollm2-135m-instruct").is_none() {
        return;
    }
    let dir = entmin_tests::scratch_dir("serve");
    // Rows of whole Q8_0 blocks (32 values) for the quantised variant.
    let mut c = config(entmin::models::Architecture::Llama, true);
    (c.hidden_size, c.intermediate_size, c.n_heads) = (64, 96, 8);
    let w = random_weights(&c, 21);
    let q8 = dir.join("tiny-q8_0.gguf");
    let f32 = dir.join("tiny-f32.gguf");
    std::fs::write(&q8, tiny_model_gguf_as(&c, &w, Matrices::Q8_0).build()).unwrap();
    std::fs::write(&f32, tiny_model_gguf_as(&c, &w, Matrices::F32).build()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/python/test_server.py");
    let out = Command::new("python3")
        .arg(script)
        .env("ENTMIN_BIN", env!("CARGO_BIN_EXE_entmin"))
        .env("ENTMIN_TINY_Q8", &q8)
        .env("ENTMIN_TINY_F32", &f32)
        .output()
        .expect("python3 runs");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    // unittest reports on stderr; make sure the tests ran rather than being skipped.
    assert!(log.contains("Ran ") && !log.contains("skipped"), "{log}");
}
