use std::path::PathBuf;

use anyhow::Result;
use entmin::code::{Limits, Sandbox};
use entmin::dataset;
use entmin::dataset::Fields;
use entmin::eval::{check_solutions, compare, paired_table, summarize, table, CodeOptions, EvalOptions};

use super::code_args::CodeFieldArgs;
use super::method_args::{parse_method, MethodArgs};
use super::progress::Bars;
use super::ModelArgs;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// gsm8k | math500 | gsm8k-train | math-train | humaneval | PATH.jsonl
    #[arg(long)]
    pub dataset: String,
    /// Question field of a JSONL file (default "question"; "problem" for MATH; for code
    /// problems an alias of --prompt-field).
    #[arg(long)]
    pub question_field: Option<String>,
    /// Gold-answer field of a JSONL file (default "answer"; GSM8K's "#### N" is understood).
    #[arg(long)]
    pub answer_field: Option<String>,
    /// Code problems: the prompt (function signature and docstring) field (default "prompt").
    #[arg(long)]
    pub prompt_field: Option<String>,
    #[command(flatten)]
    pub code_fields: CodeFieldArgs,
    /// The problem-id field (default: unique_id, id or task_id, else the line number).
    #[arg(long)]
    pub id_field: Option<String>,
    /// Code problems: run the solutions in this field instead of generating (checks the
    /// harness; no model is loaded).
    #[arg(long)]
    pub solution_field: Option<String>,
    /// HumanEval: run the canonical solutions (--solution-field canonical_solution).
    #[arg(long)]
    pub canonical: bool,
    /// Code problems: samples per problem, for pass@k.
    #[arg(short = 'n', long = "samples", default_value_t = 1)]
    pub samples: usize,
    /// Code problems, base models: the bare prompt as a completion (no chat template).
    #[arg(long)]
    pub raw: bool,
    /// Code problems: wall-clock seconds per program before it is killed.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Code problems: programs run at once (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Comma-separated methods, run on the same problems and seeds.
    #[arg(long, default_value = "plain,em-inf")]
    pub methods: String,
    #[command(flatten)]
    pub method_args: MethodArgs,
    /// Only the first N problems.
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, default_value_t = 512)]
    pub max_new_tokens: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sequences decoded together (self-consistency counts each vote).
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Results folder: METHOD.jsonl per method (resumed if present) and summary.json.
    #[arg(long, default_value = "eval-out")]
    pub out: PathBuf,
    /// System message (default: the chat template's own).
    #[arg(long)]
    pub system: Option<String>,
}

pub fn run(a: Args) -> Result<()> {
    let methods = a.methods.split(',').map(|m| parse_method(m.trim())).collect::<Result<Vec<_>>>()?;
    let configs = methods.iter().map(|&m| a.method_args.config(m)).collect::<Result<Vec<_>>>()?;
    let bars = Bars::new(true);
    let solution_field = match (&a.solution_field, a.canonical) {
        (Some(_), true) => anyhow::bail!("--canonical and --solution-field both name the solutions; give one"),
        (Some(f), false) => Some(f.clone()),
        (None, true) => Some("canonical_solution".to_string()),
        (None, false) => None,
    };
    let fields = Fields {
        question: a.question_field.clone(),
        answer: a.answer_field.clone(),
        solution: solution_field.clone(),
        id: a.id_field.clone(),
        ..a.code_fields.fields(a.prompt_field.clone())
    };
    let mut problems = dataset::load(&a.dataset, &fields, &bars)?;
    if let Some(n) = a.limit {
        problems.truncate(n);
    }
    if !(a.timeout > 0.0 && a.timeout.is_finite()) {
        anyhow::bail!("--timeout must be a positive number of seconds");
    }
    let code = CodeOptions {
        raw: a.raw,
        limits: Limits { wall: std::time::Duration::from_secs_f64(a.timeout), ..Limits::default() },
        workers: a.workers,
    };
    let is_code = problems.iter().any(|p| p.code.is_some());
    let isolation = if is_code { Some(Sandbox::new(code.limits.clone())?.isolation()) } else { None };
    if let Some(i) = isolation {
        eprintln!("[sandbox: {}]", i.describe());
    }
    if solution_field.is_some() {
        return self_check(&a, &problems, code, isolation.map(|i| i.describe()));
    }
    let engine = a.model.engine(true)?;
    let info = engine.info();
    let opts = EvalOptions {
        max_new_tokens: a.max_new_tokens,
        seed: a.seed,
        batch: a.batch.max(1),
        out_dir: a.out.clone(),
        system: a.system.clone(),
        run_identity: serde_json::json!({
            "model": a.model.model,
            "model_file": info.path.display().to_string(),
            "weights": info.weight_types,
            "device": engine.device().kind.name(),
            "dataset": a.dataset,
            "question_field": a.question_field,
            "answer_field": a.answer_field,
            "prompt_field": a.prompt_field,
            "test_field": a.code_fields.test_field,
            "entry_point_field": a.code_fields.entry_point_field,
            "setup_field": a.code_fields.setup_field,
            "id_field": a.id_field,
        }),
        samples: a.samples,
        code,
    };
    eprintln!("[{} problems from {}, methods {}]", problems.len(), a.dataset, a.methods);
    let mut summaries = Vec::new();
    let mut all = Vec::new();
    for c in &configs {
        let results = engine.evaluate(&problems, c, &opts, &bars)?;
        summaries.push(summarize(c.method.name(), &results));
        all.push((c.method.name().to_string(), results));
    }
    let pairs = compare(&all);
    let summary_path = a.out.join("summary.json");
    entmin::models::durable::replace_with_bytes(
        &summary_path,
        serde_json::to_string_pretty(&serde_json::json!({
            "model": a.model.model,
            "dataset": a.dataset,
            "problems": problems.len(),
            "seed": a.seed,
            "max_new_tokens": a.max_new_tokens,
            "samples": a.samples,
            "sandbox": isolation.map(|i| i.describe()),
            "methods": summaries,
            "paired": pairs,
        }))?
        .as_bytes(),
    )?;
    print!("{}", table(&summaries));
    print!("{}", paired_table(&pairs));
    eprintln!(
        "[model H: the model's own entropy per token (T = 1); sampled H: the distribution each token was drawn \
         from (after EM-INF, at the sampling temperature); EM steps: EM-INF's Adam steps per token]"
    );
    eprintln!("[per-problem results in {}]", a.out.display());
    Ok(())
}

/// `--canonical` / `--solution-field`: the given solutions through extraction and the
/// sandbox, no model.
fn self_check(
    a: &Args,
    problems: &[entmin::dataset::Problem],
    code: CodeOptions,
    sandbox: Option<String>,
) -> Result<()> {
    let opts = EvalOptions {
        max_new_tokens: 0,
        seed: a.seed,
        batch: 1,
        out_dir: a.out.clone(),
        system: None,
        run_identity: serde_json::Value::Null,
        samples: 1,
        code,
    };
    let results = check_solutions(problems, &opts, &Bars::new(true))?;
    let summary = summarize("solutions", &results);
    entmin::models::durable::replace_with_bytes(
        &a.out.join("summary.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "dataset": a.dataset,
            "problems": problems.len(),
            "sandbox": sandbox,
            "methods": [summary],
        }))?
        .as_bytes(),
    )?;
    print!("{}", table(std::slice::from_ref(&summary)));
    for r in results.iter().filter(|r| !r.correct) {
        let run = &r.runs[0];
        println!("  {}: {} {}", r.id, run.status.name(), run.detail);
    }
    eprintln!("[per-problem results in {}]", a.out.join("solutions.jsonl").display());
    Ok(())
}
