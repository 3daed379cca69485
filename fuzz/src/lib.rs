//! Mutation fuzzing of every parser of untrusted input (docs/fuzzing.md). A target runs
//! each input under `catch_unwind`; a panic or a broken property is a finding, saved with
//! the input that caused it so that it becomes a regression test
//! (`fuzz/regressions/TARGET/`, run by fuzz/tests/fuzz_smoke.rs).

pub mod mutate;
pub mod seeds;
pub mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use entmin::engine::Rng;

pub use targets::{find, Fixtures, Target, TARGETS};

/// What one target's run did.
#[derive(Debug)]
pub struct Report {
    pub target: &'static str,
    pub executions: u64,
    pub seconds: f64,
    pub seeds: usize,
    /// (what went wrong, the file holding the input).
    pub findings: Vec<(String, PathBuf)>,
}

/// Run one input; a panic or an Err is a finding.
pub fn run_one(target: &Target, fixtures: &Fixtures, input: &[u8]) -> Result<(), String> {
    match catch_unwind(AssertUnwindSafe(|| (target.run)(fixtures, input))) {
        Ok(result) => result,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(format!("panic: {msg}"))
        }
    }
}

/// Fuzz `target` from `seeds` for `time`, or `max_executions`, whichever ends first;
/// findings are written to `findings_dir` (one file per distinct message).
pub fn fuzz(
    target: &'static Target,
    fixtures: &Fixtures,
    seeds: &[Vec<u8>],
    time: Duration,
    max_executions: u64,
    seed: u64,
    findings_dir: &Path,
) -> Report {
    let mut rng = Rng::new(seed);
    let start = Instant::now();
    let mut report =
        Report { target: target.name, executions: 0, seconds: 0.0, seeds: seeds.len(), findings: Vec::new() };
    let record = |input: &[u8], msg: String, report: &mut Report| {
        if report.findings.iter().any(|(m, _)| *m == msg) {
            return;
        }
        let _ = std::fs::create_dir_all(findings_dir);
        let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
        let path = findings_dir.join(format!("{}-{hash:016x}", target.name));
        let _ = std::fs::write(&path, input);
        report.findings.push((msg, path));
    };
    // Every seed as it is first: they must pass.
    for s in seeds {
        report.executions += 1;
        if let Err(msg) = run_one(target, fixtures, s) {
            record(s, msg, &mut report);
        }
    }
    while start.elapsed() < time && report.executions < max_executions && !seeds.is_empty() {
        let a = &seeds[(rng.next_u64() % seeds.len() as u64) as usize];
        let b = &seeds[(rng.next_u64() % seeds.len() as u64) as usize];
        let input = mutate::mutate(&mut rng, a, b);
        report.executions += 1;
        if let Err(msg) = run_one(target, fixtures, &input) {
            record(&input, msg, &mut report);
        }
    }
    report.seconds = start.elapsed().as_secs_f64();
    report
}

/// The saved inputs of earlier findings for `target` (its regression corpus).
pub fn regressions(dir: &Path, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir.join(target))
        .map(|rd| rd.flatten().map(|e| e.path()).filter_map(|p| std::fs::read(&p).ok().map(|d| (p, d))).collect())
        .unwrap_or_default();
    v.sort();
    v
}
