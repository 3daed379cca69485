//! `entmin eval`: several decoding methods on the same problems and seeds, with
//! accuracy and a 95% Wilson interval, mean response entropy, tokens and speed.
//! Each method appends one JSON line per finished problem to `OUT/METHOD.jsonl`
//! (fsynced per batch), so an interrupted run resumes without redoing finished problems.
//! `OUT/METHOD.settings.json` records what the results depend on (model, weights,
//! device, dataset, the method's parameters, prompt format, token cap, seed); a resume
//! with other settings is refused, since it would mix two runs in one table.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use entmin_engine::Backend;
use entmin_models::{generate_batch, GenerationParams, LoadedModel, Message};
use serde::{Deserialize, Serialize};

use crate::answer::{extract_answer, is_equivalent};
use crate::dataset::Problem;
use crate::error::{Error, Result};
use crate::methods::self_consistency::majority_vote;
use crate::methods::{Method, MethodConfig};
use crate::progress::Progress;

/// The instruction appended to each question (the paper's Qwen math evaluation).
pub const INSTRUCTION: &str = "Please reason step by step, and put your final answer within \\boxed{}.";

/// How [`run_method`] runs and where it writes.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Token cap per answer.
    pub max_new_tokens: usize,
    /// Run seed; each problem's seed derives from it and the problem id.
    pub seed: u64,
    /// Sequences generated together.
    pub batch: usize,
    /// Folder of `METHOD.jsonl` and `METHOD.settings.json`.
    pub out_dir: PathBuf,
    /// System message of the chat prompt.
    pub system: Option<String>,
    /// What identifies the run besides the method's settings (model, weight dtype,
    /// device, dataset), recorded in each method's settings file.
    pub run_identity: serde_json::Value,
}

/// One problem's outcome, one JSON line of `METHOD.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProblemResult {
    /// The problem's id.
    pub id: String,
    /// The question asked.
    pub question: String,
    /// The gold answer.
    pub gold: String,
    /// The answer text (self-consistency: a sample with the winning answer).
    pub output: String,
    /// The final answer found in `output`.
    pub extracted: Option<String>,
    /// Whether `extracted` is equivalent to `gold`.
    pub correct: bool,
    /// Mean entropy (nats, T = 1) of the model's own next-token distributions over the
    /// response (all samples under self-consistency).
    pub mean_entropy: f32,
    /// Mean entropy of the distributions the tokens were drawn from: after EM-INF's
    /// optimisation, at the sampling (or adaptive) temperature; 0 for greedy decoding.
    /// None in results written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_sampled_entropy: Option<f32>,
    /// EM-INF's Adam steps per response token (0 for other methods).
    #[serde(default)]
    pub em_inf_steps_per_token: f32,
    /// Tokens generated (all samples).
    pub tokens: usize,
    /// This problem's share of its batch's wall time.
    pub seconds: f64,
    /// Self-consistency only: (answer, votes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub votes: Vec<(String, usize)>,
}

/// A method's results in a few numbers.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MethodSummary {
    /// The method's name.
    pub method: String,
    /// Problems.
    pub n: usize,
    /// Problems answered correctly.
    pub correct: usize,
    /// correct / n.
    pub accuracy: f64,
    /// 95% Wilson interval of the accuracy.
    pub ci95: (f64, f64),
    /// Mean over problems of [`ProblemResult::mean_entropy`] (the model's own entropy).
    pub mean_entropy: f64,
    /// Mean over problems of [`ProblemResult::mean_sampled_entropy`] (None when a result
    /// from an older run did not record it).
    pub mean_sampled_entropy: Option<f64>,
    /// Mean over problems of [`ProblemResult::em_inf_steps_per_token`].
    pub em_inf_steps_per_token: f64,
    /// Tokens per problem.
    pub mean_tokens: f64,
    /// Generated tokens per second of wall time.
    pub tokens_per_sec: f64,
    /// Wall time of all problems.
    pub wall_secs: f64,
}

/// 95% Wilson score interval for `k` successes in `n` trials.
pub fn wilson95(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (z, n, p) = (1.959_963_985, n as f64, k as f64 / n as f64);
    let denom = 1.0 + z * z / n;
    let center = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    ((center - half).max(0.0), (center + half).min(1.0))
}

/// A per-problem seed that depends only on the run seed and the problem id, so
/// every method sees the same randomness for the same problem.
pub fn problem_seed(seed: u64, id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325 ^ seed, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// Summary of `results`.
pub fn summarize(method: &str, results: &[ProblemResult]) -> MethodSummary {
    let n = results.len();
    let correct = results.iter().filter(|r| r.correct).count();
    let tokens: usize = results.iter().map(|r| r.tokens).sum();
    let secs: f64 = results.iter().map(|r| r.seconds).sum();
    let mean =
        |f: &dyn Fn(&ProblemResult) -> f64| if n == 0 { 0.0 } else { results.iter().map(f).sum::<f64>() / n as f64 };
    MethodSummary {
        method: method.to_string(),
        n,
        correct,
        accuracy: if n == 0 { 0.0 } else { correct as f64 / n as f64 },
        ci95: wilson95(correct, n),
        mean_entropy: mean(&|r| r.mean_entropy as f64),
        mean_sampled_entropy: results
            .iter()
            .map(|r| r.mean_sampled_entropy.map(f64::from))
            .sum::<Option<f64>>()
            .map(|sum| if n == 0 { 0.0 } else { sum / n as f64 }),
        em_inf_steps_per_token: mean(&|r| r.em_inf_steps_per_token as f64),
        mean_tokens: mean(&|r| r.tokens as f64),
        tokens_per_sec: if secs > 0.0 { tokens as f64 / secs } else { 0.0 },
        wall_secs: secs,
    }
}

/// Finished results of an earlier run; a torn last line (a kill mid-write) is dropped.
pub fn read_results(path: &Path) -> Result<Vec<ProblemResult>> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(Vec::new()) };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() => break,
            Err(e) => return Err(Error::corrupt(path, format!("line {}: not a result line: {e}", i + 1))),
        }
    }
    Ok(out)
}

/// The evaluation prompt of `question` (plus the instruction, in the chat template), as
/// token ids: EM-FT trains on the same prompts evaluation uses.
pub fn prompt_ids<B: Backend>(lm: &LoadedModel<B>, question: &str, system: Option<&str>) -> Result<Vec<u32>> {
    let mut messages = Vec::new();
    if let Some(s) = system {
        messages.push(Message::new("system", s));
    }
    messages.push(Message::new("user", &format!("{question}\n{INSTRUCTION}")));
    Ok(lm.chat.encode(&lm.tokenizer, &messages)?)
}

/// Run one method over `problems`, resuming from `OUT/METHOD.jsonl`; returns all results.
pub fn run_method<B: Backend>(
    backend: &B,
    lm: &LoadedModel<B>,
    problems: &[Problem],
    config: &MethodConfig,
    opts: &EvalOptions,
    progress: &dyn Progress,
) -> Result<Vec<ProblemResult>> {
    std::fs::create_dir_all(&opts.out_dir).map_err(|e| Error::io("creating", &opts.out_dir, e))?;
    let path = opts.out_dir.join(format!("{}.jsonl", config.method.name()));
    let mut results = read_results(&path)?;
    check_settings(
        &opts.out_dir.join(format!("{}.settings.json", config.method.name())),
        &results,
        &run_settings(lm, config, opts)?,
        progress,
    )?;
    // Rewrite the file without a torn tail before appending to it.
    let clean: String = results.iter().map(|r| serde_json::to_string(r).expect("results serialise") + "\n").collect();
    entmin_models::durable::replace_with_bytes(&path, clean.as_bytes()).map_err(|e| Error::io("writing", &path, e))?;
    let done: HashSet<String> = results.iter().map(|r| r.id.clone()).collect();
    let todo: Vec<&Problem> = problems.iter().filter(|p| !done.contains(&p.id)).collect();
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).map_err(|e| Error::io("opening", &path, e))?;
    let accuracy = |rs: &[ProblemResult]| {
        let c = rs.iter().filter(|r| r.correct).count();
        format!("acc {:.1}% ({c}/{})", 100.0 * c as f64 / rs.len().max(1) as f64, rs.len())
    };
    progress.begin(config.method.name(), problems.len() as u64, results.len() as u64);
    progress.advance(0, &accuracy(&results));

    let samples = if config.method == Method::SelfConsistency { config.votes } else { 1 };
    let per_batch = (opts.batch / samples).max(1);
    let params = GenerationParams { max_new_tokens: opts.max_new_tokens, ..GenerationParams::default() };
    for chunk in todo.chunks(per_batch) {
        let mut prompts = Vec::new();
        let mut seeds = Vec::new();
        for p in chunk {
            let ids = prompt_ids(lm, &p.question, opts.system.as_deref())?;
            let base = problem_seed(opts.seed, &p.id);
            for j in 0..samples {
                prompts.push(ids.clone());
                seeds.push(base.wrapping_add(j as u64));
            }
        }
        let t = Instant::now();
        let mut picker = config.picker::<B>();
        let gens = generate_batch(backend, lm, &prompts, &params, picker.as_mut(), &seeds, |_| ())?;
        let share = t.elapsed().as_secs_f64() / chunk.len() as f64;
        for (p, group) in chunk.iter().zip(gens.chunks(samples)) {
            let texts: Vec<String> = group.iter().map(|g| g.text.clone()).collect();
            let (output, extracted, votes) = if samples > 1 {
                let vote = majority_vote(&texts);
                (texts[vote.representative].clone(), vote.answer, vote.tally)
            } else {
                (texts[0].clone(), extract_answer(&texts[0]), Vec::new())
            };
            let tokens: usize = group.iter().map(|g| g.tokens.len()).sum();
            let per_token = |sum: f32| if tokens > 0 { sum / tokens as f32 } else { 0.0 };
            let entropy_sum: f32 = group.iter().flat_map(|g| g.entropies.iter()).sum();
            let sampled_sum: f32 = group.iter().flat_map(|g| g.sampled_entropies.iter()).sum();
            let steps: u64 = group.iter().map(|g| g.em_inf_steps()).sum();
            let r = ProblemResult {
                id: p.id.clone(),
                question: p.question.clone(),
                gold: p.gold.clone(),
                correct: extracted.as_deref().is_some_and(|e| is_equivalent(e, &p.gold)),
                output,
                extracted,
                mean_entropy: per_token(entropy_sum),
                mean_sampled_entropy: Some(per_token(sampled_sum)),
                em_inf_steps_per_token: per_token(steps as f32),
                tokens,
                seconds: share,
                votes,
            };
            let line = serde_json::to_string(&r).expect("results serialise") + "\n";
            file.write_all(line.as_bytes()).map_err(|e| Error::io("writing", &path, e))?;
            results.push(r);
        }
        file.flush().map_err(|e| Error::io("writing", &path, e))?;
        entmin_models::durable::sync_file(&file, &path).map_err(|e| Error::io("syncing", &path, e))?;
        progress.advance(chunk.len() as u64, &accuracy(&results));
    }
    progress.finish();
    // Report in the dataset's order, limited to the requested problems.
    let wanted: HashSet<&str> = problems.iter().map(|p| p.id.as_str()).collect();
    results.retain(|r| wanted.contains(r.id.as_str()));
    Ok(results)
}

/// What a method's results depend on, as recorded beside them.
fn run_settings<B: Backend>(
    lm: &LoadedModel<B>,
    config: &MethodConfig,
    opts: &EvalOptions,
) -> Result<serde_json::Value> {
    let mut sampling = config.sampling.clone();
    sampling.banned.clear(); // the model's, recorded through it
    let mut s = serde_json::json!({
        "run": opts.run_identity,
        "method": config.method.name(),
        "sampling": format!("{sampling:?}"),
        "max_new_tokens": opts.max_new_tokens,
        "seed": opts.seed,
        // The prompt format (template, system message, instruction) on a placeholder.
        "prompt": lm.tokenizer.decode(&prompt_ids(lm, "{question}", opts.system.as_deref())?, false)?,
    });
    match config.method {
        Method::EmInf => s["em_inf"] = format!("{:?}", config.em_inf).into(),
        Method::AdaptiveTemp => s["adaptive"] = format!("{:?}", config.adaptive).into(),
        Method::SelfConsistency => s["votes"] = config.votes.into(),
        Method::Plain => {}
    }
    Ok(s)
}

/// Record `settings` beside a method's results, or refuse to extend results made with
/// other ones (naming what differs). Results from before settings were recorded are
/// adopted with a warning.
fn check_settings(
    path: &Path,
    results: &[ProblemResult],
    settings: &serde_json::Value,
    progress: &dyn Progress,
) -> Result<()> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let old: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::corrupt(path, format!("not JSON: {e}")))?;
            if results.is_empty() || old == *settings {
                return write_settings(path, settings);
            }
            let keys = |v: &serde_json::Value| {
                v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default()
            };
            let mut all = keys(&old);
            all.extend(keys(settings));
            all.sort();
            all.dedup();
            let differ: Vec<String> = all
                .into_iter()
                .filter(|k| old.get(k) != settings.get(k))
                .map(|k| {
                    format!(
                        "{k}: {} before, {} now",
                        old.get(&k).unwrap_or(&serde_json::Value::Null),
                        settings.get(&k).unwrap_or(&serde_json::Value::Null)
                    )
                })
                .collect();
            Err(Error::invalid(format!(
                "{} holds {} results made with other settings; resuming would mix two runs. Use another --out, or \
                 delete the folder. Differences:\n  {}",
                path.parent().unwrap_or(Path::new(".")).display(),
                results.len(),
                differ.join("\n  ")
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !results.is_empty() {
                progress.note(&format!(
                    "{} results in {} have no recorded settings; assuming they match this run",
                    results.len(),
                    path.parent().unwrap_or(Path::new(".")).display()
                ));
            }
            write_settings(path, settings)
        }
        Err(e) => Err(Error::io("reading", path, e)),
    }
}

fn write_settings(path: &Path, settings: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(settings).expect("JSON values serialise") + "\n";
    entmin_models::durable::replace_with_bytes(path, text.as_bytes()).map_err(|e| Error::io("writing", path, e))
}

/// The side-by-side table printed at the end of an evaluation.
/// The side-by-side table: "model H" is the model's own entropy per token (T = 1),
/// "sampled H" that of the distribution the tokens were drawn from (after EM-INF, at the
/// sampling temperature), "EM steps" EM-INF's Adam steps per token.
pub fn table(summaries: &[MethodSummary]) -> String {
    let mut s = format!(
        "{:<17} {:>5} {:>9} {:>17} {:>9} {:>9} {:>11} {:>11} {:>8} {:>9}\n",
        "method", "n", "accuracy", "95% CI", "model H", "sampled H", "EM steps", "mean tokens", "tok/s", "wall"
    );
    for m in summaries {
        let sampled = m.mean_sampled_entropy.map_or("-".to_string(), |h| format!("{h:.3}"));
        s += &format!(
            "{:<17} {:>5} {:>8.1}% {:>7.1}% – {:>5.1}% {:>9.3} {:>9} {:>11.2} {:>11.1} {:>8.1} {:>8.0}s\n",
            m.method,
            m.n,
            100.0 * m.accuracy,
            100.0 * m.ci95.0,
            100.0 * m.ci95.1,
            m.mean_entropy,
            sampled,
            m.em_inf_steps_per_token,
            m.mean_tokens,
            m.tokens_per_sec,
            m.wall_secs
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resuming re-serialises the parsed results: every float must come back as the same
    /// text, or the finished lines change (serde_json's default float parser is not
    /// correctly rounded; the workspace enables `float_roundtrip`).
    #[test]
    fn resumed_results_are_rewritten_byte_for_byte() {
        let mut rng = entmin_engine::Rng::new(5);
        for _ in 0..100_000 {
            let seconds = rng.next_f64() * 50.0;
            let text = serde_json::to_string(&seconds).unwrap();
            let back: f64 = serde_json::from_str(&text).unwrap();
            assert_eq!(serde_json::to_string(&back).unwrap(), text);
            let entropy = (rng.next_f64() * 3.0) as f32;
            let text = serde_json::to_string(&entropy).unwrap();
            let back: f32 = serde_json::from_str(&text).unwrap();
            assert_eq!(serde_json::to_string(&back).unwrap(), text);
        }
    }

    #[test]
    fn wilson_interval_matches_known_values() {
        // 50/100: 40.4% – 59.6%; 0/10: 0 – 27.8%; 10/10: 72.2% – 100%.
        let (lo, hi) = wilson95(50, 100);
        assert!((lo - 0.4038).abs() < 1e-3 && (hi - 0.5962).abs() < 1e-3, "{lo} {hi}");
        let (lo, hi) = wilson95(0, 10);
        assert!(lo == 0.0 && (hi - 0.2775).abs() < 1e-3, "{hi}");
        let (lo, hi) = wilson95(10, 10);
        assert!((lo - 0.7225).abs() < 1e-3 && hi == 1.0, "{lo}");
    }

    #[test]
    fn seeds_depend_on_run_seed_and_id_only() {
        assert_eq!(problem_seed(1, "a"), problem_seed(1, "a"));
        assert_ne!(problem_seed(1, "a"), problem_seed(2, "a"));
        assert_ne!(problem_seed(1, "a"), problem_seed(1, "b"));
    }

    #[test]
    fn torn_last_line_is_dropped_but_corruption_elsewhere_is_an_error() {
        let dir = std::env::temp_dir().join(format!("entmin-eval-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r = ProblemResult {
            id: "1".into(),
            question: "q".into(),
            gold: "2".into(),
            output: "\\boxed{2}".into(),
            extracted: Some("2".into()),
            correct: true,
            mean_entropy: 0.5,
            mean_sampled_entropy: Some(0.25),
            em_inf_steps_per_token: 1.5,
            tokens: 3,
            seconds: 0.1,
            votes: vec![],
        };
        let line = serde_json::to_string(&r).unwrap();
        let p = dir.join("m.jsonl");
        std::fs::write(&p, format!("{line}\n{}", &line[..10])).unwrap();
        assert_eq!(read_results(&p).unwrap(), vec![r.clone()]);
        std::fs::write(&p, format!("{}\n{line}\n", &line[..10])).unwrap();
        assert!(read_results(&p).is_err());
        let s = summarize("m", &[r]);
        assert_eq!((s.n, s.correct, s.mean_tokens), (1, 1, 3.0));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
