//! `entmin eval`: several decoding methods on the same problems and seeds, with
//! accuracy (math) or pass@k (code) and 95% intervals, paired comparisons, mean response
//! entropy, tokens and speed. Each method appends one JSON line per finished problem to
//! `OUT/METHOD.jsonl` (fsynced per batch), so an interrupted run resumes without redoing
//! finished problems. `OUT/METHOD.settings.json` records what the results depend on
//! (model, weights, device, dataset, the method's parameters, prompt format, token cap,
//! seed, samples, sandbox limits); a resume with other settings is refused, since it
//! would mix two runs in one table. Code problems run in the sandbox (crate::code) while
//! the next batch generates.

mod code;
mod results;
mod settings;
pub mod stats;

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use entmin_engine::Backend;
use entmin_models::{generate_batch, GenerationParams, LoadedModel, Message};

use crate::answer::{extract_answer, is_equivalent};
use crate::code::{extract_program, Limits, Pool, Sandbox};
use crate::dataset::Problem;
use crate::error::{Error, Result};
use crate::methods::self_consistency::majority_vote;
use crate::methods::{Method, MethodConfig};
use crate::progress::Progress;
use code::{programs_of, Scoring};
use settings::{check_settings, run_settings};

pub use code::{code_prompt_ids, most_frequent_program, test_program, CODE_INSTRUCTION};
pub use results::{compare, paired_table, read_results, summarize, table, MethodSummary, PassAtK, ProblemResult, Run};
pub use stats::{wilson95, Paired};

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
    /// Samples per problem (code: pass@k is estimated from them; math: 1).
    pub samples: usize,
    /// How code problems are prompted and run.
    pub code: CodeOptions,
}

/// Code problems' prompt and sandbox.
#[derive(Clone, Debug, Default)]
pub struct CodeOptions {
    /// Base models: the bare prompt as a completion, no chat template.
    pub raw: bool,
    /// Per-program limits.
    pub limits: Limits,
    /// Programs run at once (0: one per core).
    pub workers: usize,
}

impl CodeOptions {
    /// The sandbox pool these options describe.
    pub fn pool(&self) -> Result<Pool> {
        let workers =
            if self.workers == 0 { std::thread::available_parallelism().map_or(2, |n| n.get()) } else { self.workers };
        Ok(Pool::new(Sandbox::new(self.limits.clone())?, workers))
    }
}

/// A per-problem seed that depends only on the run seed and the problem id, so
/// every method sees the same randomness for the same problem.
pub fn problem_seed(seed: u64, id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325 ^ seed, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
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

/// A method's results file, resumed: the finished results and the file to append to.
fn open_results(
    path: &Path,
    settings_path: &Path,
    settings: &serde_json::Value,
    progress: &dyn Progress,
) -> Result<(Vec<ProblemResult>, File)> {
    let results = read_results(path)?;
    check_settings(settings_path, &results, settings, progress)?;
    // Rewrite the file without a torn tail before appending to it.
    let clean: String = results.iter().map(|r| serde_json::to_string(r).expect("results serialise") + "\n").collect();
    entmin_models::durable::replace_with_bytes(path, clean.as_bytes()).map_err(|e| Error::io("writing", path, e))?;
    let file = std::fs::OpenOptions::new().append(true).open(path).map_err(|e| Error::io("opening", path, e))?;
    Ok((results, file))
}

/// Append finished results and make them durable.
fn append(file: &mut File, path: &Path, finished: &[ProblemResult]) -> Result<()> {
    let text: String = finished.iter().map(|r| serde_json::to_string(r).expect("results serialise") + "\n").collect();
    file.write_all(text.as_bytes()).map_err(|e| Error::io("writing", path, e))?;
    file.flush().map_err(|e| Error::io("writing", path, e))?;
    entmin_models::durable::sync_file(file, path).map_err(|e| Error::io("syncing", path, e))
}

fn accuracy_note(rs: &[ProblemResult]) -> String {
    let score: f64 = rs.iter().map(ProblemResult::score).sum();
    format!("acc {:.1}% ({score:.0}/{})", 100.0 * score / rs.len().max(1) as f64, rs.len())
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
    let code = problems.iter().any(|p| p.code.is_some());
    if code && problems.iter().any(|p| p.code.is_none()) {
        return Err(Error::invalid("a problem set mixes code and math problems"));
    }
    if opts.samples == 0 || (opts.samples > 1 && !code) {
        return Err(Error::invalid(
            "samples per problem (-n) must be 1 for math problems (self-consistency has --votes) and at least 1",
        ));
    }
    if opts.code.raw && !code {
        return Err(Error::invalid("--raw prompts apply to code problems"));
    }
    std::fs::create_dir_all(&opts.out_dir).map_err(|e| Error::io("creating", &opts.out_dir, e))?;
    let name = config.method.name();
    let path = opts.out_dir.join(format!("{name}.jsonl"));
    let settings_path = opts.out_dir.join(format!("{name}.settings.json"));
    let (mut results, mut file) =
        open_results(&path, &settings_path, &run_settings(lm, config, opts, code)?, progress)?;
    let done: HashSet<String> = results.iter().map(|r| r.id.clone()).collect();
    let todo: Vec<&Problem> = problems.iter().filter(|p| !done.contains(&p.id)).collect();
    let pool = if code && !todo.is_empty() { Some(opts.code.pool()?) } else { None };
    progress.begin(name, problems.len() as u64, results.len() as u64);
    progress.advance(0, &accuracy_note(&results));

    let self_consistency = config.method == Method::SelfConsistency;
    let samples = if self_consistency { config.votes } else { opts.samples };
    let per_batch = (opts.batch / samples).max(1);
    let params = GenerationParams { max_new_tokens: opts.max_new_tokens, ..GenerationParams::default() };
    // Code: a batch's programs run while the next batch generates.
    let mut running: Vec<Scoring> = Vec::new();
    let mut finish = |running: &mut Vec<Scoring>, results: &mut Vec<ProblemResult>| -> Result<()> {
        if running.is_empty() {
            return Ok(());
        }
        let finished = running.drain(..).map(Scoring::finish).collect::<Result<Vec<_>>>()?;
        append(&mut file, &path, &finished)?;
        let n = finished.len() as u64;
        results.extend(finished);
        progress.advance(n, &accuracy_note(results));
        Ok(())
    };
    for chunk in todo.chunks(per_batch) {
        let mut prompts = Vec::new();
        let mut seeds = Vec::new();
        for p in chunk {
            let ids = match &p.code {
                Some(task) => code_prompt_ids(lm, &task.prompt, opts.system.as_deref(), opts.code.raw)?,
                None => prompt_ids(lm, &p.question, opts.system.as_deref())?,
            };
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
        let mut scored = Vec::new();
        for (p, group) in chunk.iter().zip(gens.chunks(samples)) {
            let texts: Vec<String> = group.iter().map(|g| g.text.clone()).collect();
            let tokens: usize = group.iter().map(|g| g.tokens.len()).sum();
            let per_token = |sum: f32| if tokens > 0 { sum / tokens as f32 } else { 0.0 };
            let entropy_sum: f32 = group.iter().flat_map(|g| g.entropies.iter()).sum();
            let sampled_sum: f32 = group.iter().flat_map(|g| g.sampled_entropies.iter()).sum();
            let steps: u64 = group.iter().map(|g| g.em_inf_steps()).sum();
            let mut r = ProblemResult {
                id: p.id.clone(),
                question: p.question.clone(),
                gold: p.gold.clone(),
                output: texts[0].clone(),
                extracted: None,
                correct: false,
                mean_entropy: per_token(entropy_sum),
                mean_sampled_entropy: Some(per_token(sampled_sum)),
                em_inf_steps_per_token: per_token(steps as f32),
                tokens,
                seconds: share,
                votes: Vec::new(),
                runs: Vec::new(),
            };
            scored.push(match (&p.code, &pool) {
                (Some(task), Some(pool)) => {
                    let programs = programs_of(task, &texts, self_consistency, &mut r);
                    Scoring::submit(r, task, programs, pool)
                }
                _ => {
                    if samples > 1 {
                        let vote = majority_vote(&texts);
                        r.output = texts[vote.representative].clone();
                        r.extracted = vote.answer;
                        r.votes = vote.tally;
                    } else {
                        r.extracted = extract_answer(&texts[0]);
                    }
                    r.correct = r.extracted.as_deref().is_some_and(|e| is_equivalent(e, &p.gold));
                    Scoring::finished(r)
                }
            });
        }
        finish(&mut running, &mut results)?;
        running = scored;
        if !running.iter().any(Scoring::is_pending) {
            finish(&mut running, &mut results)?;
        }
    }
    finish(&mut running, &mut results)?;
    progress.finish();
    // Report in the dataset's order, limited to the requested problems.
    let wanted: HashSet<&str> = problems.iter().map(|p| p.id.as_str()).collect();
    results.retain(|r| wanted.contains(r.id.as_str()));
    Ok(results)
}

/// The harness's self-check: run each problem's given solution (`--solution-field`,
/// `--canonical`) through the same extraction and sandbox instead of generating, into
/// `OUT/solutions.jsonl` (rewritten whole). Problems without a solution are an error.
pub fn check_solutions(
    problems: &[Problem],
    opts: &EvalOptions,
    progress: &dyn Progress,
) -> Result<Vec<ProblemResult>> {
    let mut tasks = Vec::new();
    for p in problems {
        let task = p.code.as_ref().ok_or_else(|| Error::invalid(format!("problem {}: not a code problem", p.id)))?;
        let solution = task
            .solution
            .as_ref()
            .ok_or_else(|| Error::invalid(format!("problem {}: no solution to check (--solution-field)", p.id)))?;
        tasks.push((p, task, solution));
    }
    std::fs::create_dir_all(&opts.out_dir).map_err(|e| Error::io("creating", &opts.out_dir, e))?;
    let pool = opts.code.pool()?;
    progress.begin("solutions", problems.len() as u64, 0);
    let t = Instant::now();
    let scorings: Vec<Scoring> = tasks
        .iter()
        .map(|(p, task, solution)| {
            let program = extract_program(&task.prompt, solution, &task.entry_point);
            let r = ProblemResult {
                id: p.id.clone(),
                question: p.question.clone(),
                gold: String::new(),
                output: (*solution).clone(),
                extracted: None,
                correct: false,
                mean_entropy: 0.0,
                mean_sampled_entropy: None,
                em_inf_steps_per_token: 0.0,
                tokens: 0,
                seconds: 0.0,
                votes: Vec::new(),
                runs: Vec::new(),
            };
            Scoring::submit(r, task, vec![program], &pool)
        })
        .collect();
    let mut results = Vec::new();
    for s in scorings {
        results.push(s.finish()?);
        progress.advance(1, &accuracy_note(&results));
    }
    let share = t.elapsed().as_secs_f64() / results.len().max(1) as f64;
    results.iter_mut().for_each(|r| r.seconds = share);
    progress.finish();
    let path = opts.out_dir.join("solutions.jsonl");
    let text: String = results.iter().map(|r| serde_json::to_string(r).expect("results serialise") + "\n").collect();
    entmin_models::durable::replace_with_bytes(&path, text.as_bytes()).map_err(|e| Error::io("writing", &path, e))?;
    Ok(results)
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
            runs: vec![],
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
