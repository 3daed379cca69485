use std::path::PathBuf;

use anyhow::Result;
use entmin::dataset;
use entmin::eval::{summarize, table, EvalOptions};

use super::method_args::{parse_method, MethodArgs};
use super::progress::Bars;
use super::ModelArgs;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// gsm8k | math500 | gsm8k-train | math-train | PATH.jsonl
    #[arg(long)]
    pub dataset: String,
    /// Question field of a JSONL file (default "question"; "problem" for MATH).
    #[arg(long)]
    pub question_field: Option<String>,
    /// Gold-answer field of a JSONL file (default "answer"; GSM8K's "#### N" is understood).
    #[arg(long)]
    pub answer_field: Option<String>,
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
    let mut problems = dataset::load(&a.dataset, a.question_field.as_deref(), a.answer_field.as_deref(), &bars)?;
    if let Some(n) = a.limit {
        problems.truncate(n);
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
        }),
    };
    eprintln!("[{} problems from {}, methods {}]", problems.len(), a.dataset, a.methods);
    let mut summaries = Vec::new();
    for c in &configs {
        let results = engine.evaluate(&problems, c, &opts, &bars)?;
        summaries.push(summarize(c.method.name(), &results));
    }
    let summary_path = a.out.join("summary.json");
    entmin::models::durable::replace_with_bytes(
        &summary_path,
        serde_json::to_string_pretty(&serde_json::json!({
            "model": a.model.model,
            "dataset": a.dataset,
            "problems": problems.len(),
            "seed": a.seed,
            "max_new_tokens": a.max_new_tokens,
            "methods": summaries,
        }))?
        .as_bytes(),
    )?;
    print!("{}", table(&summaries));
    eprintln!(
        "[model H: the model's own entropy per token (T = 1); sampled H: the distribution each token was drawn \
         from (after EM-INF, at the sampling temperature); EM steps: EM-INF's Adam steps per token]"
    );
    eprintln!("[per-problem results in {}]", a.out.display());
    Ok(())
}
