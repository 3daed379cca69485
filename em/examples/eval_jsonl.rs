//! Accuracy of decoding methods on a JSONL file of math problems (fields "question" and
//! "answer"), side by side, with results that resume when the run is interrupted.
//!
//! ```text
//! cargo run --release --example eval_jsonl -- MODEL PROBLEMS.jsonl [METHODS] [MAX_TOKENS] [OUT]
//! ```
//! METHODS is a comma-separated list (default "plain,em-inf").

use entmin::eval::{summarize, table, EvalOptions};
use entmin::progress::Quiet;
use entmin::{Engine, Error, Method, MethodConfig, Options};

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, file, rest @ ..] = args.as_slice() else {
        return Err(Error::invalid("usage: eval_jsonl MODEL PROBLEMS.jsonl [METHODS] [MAX_TOKENS]"));
    };
    let methods = rest.first().map_or("plain,em-inf", String::as_str);
    let max_new_tokens = rest.get(1).and_then(|n| n.parse().ok()).unwrap_or(512);
    let methods = methods
        .split(',')
        .map(|m| Method::parse(m).ok_or_else(|| Error::invalid(format!("unknown method {m:?}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let problems = entmin::dataset::read_jsonl(file.as_ref(), "question", "answer")?;
    let engine = Engine::load(model, Options::default())?;
    let opts = EvalOptions {
        max_new_tokens,
        seed: 0,
        batch: 4,
        out_dir: rest.get(2).map_or_else(|| std::env::temp_dir().join("entmin-eval-example"), Into::into),
        system: None,
        // What the results depend on besides the methods' settings: a resume with other
        // values is refused instead of mixing two runs.
        run_identity: serde_json::json!({ "model": model, "file": file, "device": engine.device().kind.name() }),
        samples: 1,
        code: Default::default(),
    };
    let mut summaries = Vec::new();
    for method in methods {
        let results = engine.evaluate(&problems, &MethodConfig::new(method), &opts, &Quiet)?;
        summaries.push(summarize(method.name(), &results));
    }
    print!("{}", table(&summaries));
    println!("per-problem results in {}", opts.out_dir.display());
    Ok(())
}
