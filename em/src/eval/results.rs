//! What an evaluation records: one [`ProblemResult`] per line of `METHOD.jsonl`, a
//! [`MethodSummary`] per method, and the side-by-side table.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::stats::{mean95, paired, pass_at_k, Paired};
use crate::code::Status;
use crate::error::{Error, Result};

/// One problem's outcome, one JSON line of `METHOD.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProblemResult {
    /// The problem's id.
    pub id: String,
    /// The question asked (code: the prompt).
    pub question: String,
    /// The gold answer (empty for code problems).
    pub gold: String,
    /// The answer text (self-consistency: a sample with the winning answer).
    pub output: String,
    /// The final answer found in `output` (math).
    pub extracted: Option<String>,
    /// Math: whether `extracted` is equivalent to `gold`. Code: whether the tested
    /// program passed (with several samples: whether any passed).
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
    /// Self-consistency only: (answer, votes); for code, (program cluster, votes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub votes: Vec<(String, usize)>,
    /// Code only: each tested program and how its run ended, in sample order
    /// (self-consistency: the chosen program).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<Run>,
}

/// One program's test run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Run {
    /// The program extracted from the answer (without the tests).
    pub program: String,
    /// How the run ended.
    pub status: Status,
    /// The failed assertion's or exception's last line, the signal, or why it stopped.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl ProblemResult {
    /// The problem's score in [0, 1]: math, 1 if correct; code, the fraction of tested
    /// programs that passed.
    pub fn score(&self) -> f64 {
        if self.runs.is_empty() {
            return f64::from(u8::from(self.correct));
        }
        self.passed() as f64 / self.runs.len() as f64
    }

    /// Code: programs that passed.
    pub fn passed(&self) -> usize {
        self.runs.iter().filter(|r| r.status == Status::Passed).count()
    }
}

/// pass@k of a method: the mean over problems of the unbiased estimate.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PassAtK {
    /// k.
    pub k: usize,
    /// The estimate.
    pub value: f64,
    /// Its 95% interval over problems.
    pub ci95: (f64, f64),
}

/// A method's results in a few numbers.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MethodSummary {
    /// The method's name.
    pub method: String,
    /// Problems.
    pub n: usize,
    /// Problems answered correctly (code: with a passing program).
    pub correct: usize,
    /// Mean problem score: math accuracy; code pass@1 (the mean fraction of passing
    /// samples).
    pub accuracy: f64,
    /// 95% interval of `accuracy` (Wilson for one sample per problem, else normal).
    pub ci95: (f64, f64),
    /// Code only: pass@k for k = 1, 5, 10, … up to the samples per problem.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pass_at: Vec<PassAtK>,
    /// Code only: how the tested programs' runs ended, counted by status.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub statuses: BTreeMap<String, usize>,
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

/// Summary of `results`.
pub fn summarize(method: &str, results: &[ProblemResult]) -> MethodSummary {
    let n = results.len();
    let correct = results.iter().filter(|r| r.correct).count();
    let tokens: usize = results.iter().map(|r| r.tokens).sum();
    let secs: f64 = results.iter().map(|r| r.seconds).sum();
    let mean =
        |f: &dyn Fn(&ProblemResult) -> f64| if n == 0 { 0.0 } else { results.iter().map(f).sum::<f64>() / n as f64 };
    let (accuracy, ci95) = mean95(&results.iter().map(ProblemResult::score).collect::<Vec<_>>());
    let code: Vec<&ProblemResult> = results.iter().filter(|r| !r.runs.is_empty()).collect();
    let min_samples = code.iter().map(|r| r.runs.len()).min().unwrap_or(0);
    let pass_at = [1, 5, 10, 25, 50, 100]
        .into_iter()
        .filter(|&k| k <= min_samples)
        .map(|k| {
            let values: Vec<f64> =
                code.iter().map(|r| pass_at_k(r.runs.len(), r.passed(), k).expect("k ≤ samples")).collect();
            let (value, ci95) = mean95(&values);
            PassAtK { k, value, ci95 }
        })
        .collect();
    let mut statuses = BTreeMap::new();
    for run in code.iter().flat_map(|r| &r.runs) {
        *statuses.entry(run.status.name().to_string()).or_insert(0) += 1;
    }
    MethodSummary {
        method: method.to_string(),
        n,
        correct,
        accuracy,
        ci95,
        pass_at,
        statuses,
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

/// Every method after the first against the first, problem by problem.
pub fn compare(methods: &[(String, Vec<ProblemResult>)]) -> Vec<Paired> {
    let scores = |rs: &[ProblemResult]| rs.iter().map(|r| (r.id.clone(), r.score())).collect::<HashMap<_, _>>();
    let Some((base_name, base)) = methods.first() else { return Vec::new() };
    let base = scores(base);
    methods[1..].iter().map(|(name, rs)| paired(name, base_name, &scores(rs), &base)).collect()
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

/// The side-by-side table: "accuracy" is pass@1 for code, "model H" the model's own
/// entropy per token (T = 1), "sampled H" that of the distribution the tokens were drawn
/// from (after EM-INF, at the sampling temperature), "EM steps" EM-INF's Adam steps per
/// token. Code runs add a line per method with pass@k and the run statuses.
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
    for m in summaries.iter().filter(|m| !m.statuses.is_empty()) {
        let pass: Vec<String> = m
            .pass_at
            .iter()
            .map(|p| format!("pass@{} {:.1}% ({:.1}–{:.1}%)", p.k, 100.0 * p.value, 100.0 * p.ci95.0, 100.0 * p.ci95.1))
            .collect();
        let statuses: Vec<String> = m.statuses.iter().map(|(k, v)| format!("{k} {v}")).collect();
        s += &format!("  {}: {}; runs: {}\n", m.method, pass.join(", "), statuses.join(", "));
    }
    s
}

/// One line per paired comparison.
pub fn paired_table(pairs: &[Paired]) -> String {
    pairs
        .iter()
        .map(|p| {
            format!(
                "{} vs {}: fixed {}, broken {}, unchanged {} of {} problems (sign test p = {:.3})\n",
                p.method,
                p.baseline,
                p.fixed,
                p.broken,
                p.common - p.fixed - p.broken,
                p.common,
                p.p_value
            )
        })
        .collect()
}
