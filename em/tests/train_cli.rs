//! `entmin rl` and `entmin ft` killed by a real SIGKILL in the middle of a run, then
//! `--resume`d: the final checkpoint equals an uninterrupted run's to the byte, and the
//! metrics agree. On SmolLM2-135M (pulled by scripts/test.sh) with tiny settings.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{scratch, smollm2};

fn latest_step(out: &Path) -> u64 {
    std::fs::read_to_string(out.join("latest.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["step"].as_u64())
        .unwrap_or(0)
}

fn command(args: &[String], out: &Path, resume: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_entmin"));
    c.args(args).arg("--out").arg(out);
    if resume {
        c.arg("--resume");
    }
    c
}

/// Run `args` straight to the end in one folder; in another, SIGKILL the run once its
/// first checkpoint is on disk, then resume it. Compare the final checkpoints and plot.
fn kill_and_resume(tag: &str, args: &[&str], steps: u64, second_panel: &str) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let dir = scratch(tag);
    let prompts = dir.join("prompts.jsonl");
    std::fs::write(&prompts, "{\"question\": \"What is 2+2?\"}\n{\"question\": \"Name a colour.\"}\n").unwrap();
    let mut args = args;
    args.extend(["--prompts".into(), prompts.display().to_string(), "--steps".into(), steps.to_string()]);

    let straight = dir.join("straight");
    let out = command(&args, &straight, false).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let killed = dir.join("killed");
    let mut child = command(&args, &killed, false).stderr(std::process::Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    while latest_step(&killed) < 1 {
        assert!(start.elapsed() < Duration::from_secs(600), "no checkpoint after 10 minutes");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let at_kill = latest_step(&killed);
    assert!(at_kill < steps, "killed after the last step ({at_kill}): nothing left to resume");
    let out = command(&args, &killed, true).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming"), "the second run resumed");

    let last = format!("step-{steps:06}");
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap_or_else(|e| panic!("{}/{f}: {e}", d.display()));
    assert!(
        read(&straight.join(&last), "model.safetensors") == read(&killed.join(&last), "model.safetensors"),
        "{tag}: the resumed run's weights differ from the uninterrupted run's (killed after step {at_kill})"
    );
    let metrics = |d: &Path| -> Vec<serde_json::Value> {
        let text = String::from_utf8(read(d, "metrics.jsonl")).unwrap();
        text.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                // Timings differ between runs; everything else must not.
                v.as_object_mut().unwrap().retain(|k, _| !k.contains("secs") && !k.contains("per_sec"));
                v
            })
            .collect()
    };
    assert_eq!(metrics(&straight), metrics(&killed));
    assert_eq!(metrics(&straight).len() as u64, steps);

    // `entmin plot` draws the run: entropy and the method's own second series.
    let metrics_path = killed.join("metrics.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_entmin")).arg("plot").arg(&metrics_path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(metrics_path.with_extension("svg")).unwrap();
    assert_eq!(svg.matches("<polyline").count(), 2);
    assert!(svg.contains(second_panel), "the second panel is {second_panel}");
    std::fs::remove_dir_all(&dir).unwrap(); // gigabytes of checkpoints
}

#[test]
fn a_killed_rl_run_resumes_exactly() {
    if smollm2().is_none() {
        return;
    }
    let args = [
        "rl",
        "-m",
        "smollm2-135m-instruct",
        "--batch",
        "1",
        "--rollouts-per-prompt",
        "2",
        "--max-new-tokens",
        "6",
        "--kl-coef",
        "0.01",
        "--lr",
        "1e-5",
        "--checkpoint-every",
        "1",
    ];
    kill_and_resume("rl-kill", &args, 2, "mean reward");
}

#[test]
fn a_killed_ft_run_resumes_exactly() {
    if smollm2().is_none() {
        return;
    }
    let args = [
        "ft",
        "-m",
        "smollm2-135m-instruct",
        "--batch",
        "1",
        "--samples-per-prompt",
        "2",
        "--max-new-tokens",
        "6",
        "--lr",
        "1e-5",
        "--checkpoint-every",
        "1",
    ];
    kill_and_resume("ft-kill", &args, 2, "loss");
}
