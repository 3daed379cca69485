//! The suite's share of fuzzing: every target for a few seconds from its real seeds (the
//! long runs are scripts/fuzz.sh), and every input a long run ever found, kept in
//! fuzz/regressions/TARGET/, must now pass.

use std::path::PathBuf;
use std::time::Duration;

#[test]
fn every_target_survives_a_short_run_and_its_regressions() {
    let dir = std::env::temp_dir().join(format!("entmin-fuzz-smoke-{}", std::process::id()));
    let (fixtures, seeds) = entmin_fuzz::seeds::build(&dir);
    if std::env::var("ENTMIN_REQUIRE_ASSETS").as_deref() == Ok("1") {
        assert_eq!(fixtures.tokenizers.len(), 2, "the real SmolLM2 and Qwen tokenizers");
        assert_eq!(fixtures.templates.len(), 3, "ChatML and the two real templates");
    }
    let regressions = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let findings = dir.join("findings");
    let mut failures = Vec::new();
    for t in &entmin_fuzz::TARGETS {
        entmin_fuzz::targets::clean(&fixtures.dir);
        for (path, input) in entmin_fuzz::regressions(&regressions, t.name) {
            if let Err(msg) = entmin_fuzz::run_one(t, &fixtures, &input) {
                failures.push(format!("{}: regression {}: {msg}", t.name, path.display()));
            }
        }
        let corpus = &seeds.iter().find(|(n, _)| *n == t.name).unwrap().1;
        assert!(!corpus.is_empty(), "{}: no seeds", t.name);
        let r = entmin_fuzz::fuzz(t, &fixtures, corpus, Duration::from_secs(2), 5_000, 7, &findings);
        eprintln!("{:<15} {:>6} executions in {:.1} s", r.target, r.executions, r.seconds);
        assert!(r.executions > corpus.len() as u64, "{}: no mutated input ran", t.name);
        failures.extend(r.findings.iter().map(|(m, p)| format!("{}: {m} (input in {})", t.name, p.display())));
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
