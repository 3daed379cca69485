//! Code problems in an evaluation: the prompt, the program under test, its run in the
//! sandbox, and self-consistency over programs (docs/code-eval.md).

use std::collections::HashMap;

use entmin_engine::Backend;
use entmin_models::{LoadedModel, Message};

use super::results::{ProblemResult, Run};
use crate::code::{extract_program, normalise_program, Pending, Pool, Status};
use crate::dataset::CodeTask;
use crate::error::Result;

/// The instruction before an instruct model's code prompt.
pub const CODE_INSTRUCTION: &str =
    "Complete the following Python function. Reply with the whole function, including its imports, in one \
     ```python code block.";

/// The prompt of a code problem as token ids: the instruction and the problem in a
/// fenced block, in the chat template; with `raw`, the bare prompt as a completion.
pub fn code_prompt_ids<B: Backend>(
    lm: &LoadedModel<B>,
    prompt: &str,
    system: Option<&str>,
    raw: bool,
) -> Result<Vec<u32>> {
    if raw {
        return Ok(lm.tokenizer.encode(prompt, false)?);
    }
    let mut messages = Vec::new();
    if let Some(s) = system {
        messages.push(Message::new("system", s));
    }
    messages.push(Message::new("user", &format!("{CODE_INSTRUCTION}\n\n```python\n{}\n```", prompt.trim_end())));
    Ok(lm.chat.encode(&lm.tokenizer, &messages)?)
}

/// The whole program the sandbox runs: setup, the candidate, the tests and, for
/// HumanEval-style tests, the call `check(ENTRY_POINT)`.
pub fn test_program(task: &CodeTask, program: &str) -> String {
    let mut s = String::new();
    if !task.setup.trim().is_empty() {
        s += task.setup.trim_end();
        s += "\n\n";
    }
    s += program.trim_end();
    s += "\n\n\n";
    s += task.test.trim_end();
    s += "\n";
    if task.test.lines().any(|l| l.starts_with("def check(")) {
        s += &format!("\n\ncheck({})\n", task.entry_point);
    }
    s
}

/// Self-consistency for code: the most frequent program after normalisation (comments,
/// docstrings, blank lines and trailing spaces removed); a tie goes to the program seen
/// first. Returns the chosen sample and (cluster, votes) in order of first appearance.
pub fn most_frequent_program(programs: &[String]) -> (usize, Vec<(String, usize)>) {
    let mut clusters: Vec<(String, usize, usize)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, p) in programs.iter().enumerate() {
        let key = normalise_program(p);
        match index.get(&key) {
            Some(&c) => clusters[c].1 += 1,
            None => {
                index.insert(key, clusters.len());
                clusters.push((format!("program {}", clusters.len() + 1), 1, i));
            }
        }
    }
    let best =
        clusters.iter().enumerate().max_by(|(ia, a), (ib, b)| a.1.cmp(&b.1).then(ib.cmp(ia))).map_or(0, |(i, _)| i);
    let chosen = clusters.get(best).map_or(0, |c| c.2);
    (chosen, clusters.into_iter().map(|(name, n, _)| (name, n)).collect())
}

/// A result whose programs are running in the pool.
pub struct Scoring {
    result: ProblemResult,
    runs: Vec<(String, Pending)>,
}

impl Scoring {
    /// `result` with no program (math): finished as is.
    pub fn finished(result: ProblemResult) -> Scoring {
        Scoring { result, runs: Vec::new() }
    }

    /// Submit `programs` of `task` to `pool`; `result` gets their outcomes.
    pub fn submit(result: ProblemResult, task: &CodeTask, programs: Vec<String>, pool: &Pool) -> Scoring {
        let runs = programs
            .into_iter()
            .map(|p| {
                let pending = pool.submit(test_program(task, &p));
                (p, pending)
            })
            .collect();
        Scoring { result, runs }
    }

    /// Whether programs are still to be collected.
    pub fn is_pending(&self) -> bool {
        !self.runs.is_empty()
    }

    /// Wait for the programs and fill in the result.
    pub fn finish(self) -> Result<ProblemResult> {
        let mut r = self.result;
        for (program, pending) in self.runs {
            let outcome = pending.wait()?;
            r.runs.push(Run { program, status: outcome.status, detail: outcome.detail });
        }
        if !r.runs.is_empty() {
            r.correct = r.runs.iter().any(|run| run.status == Status::Passed);
        }
        Ok(r)
    }
}

/// The programs of a problem's answers: every sample's, or under self-consistency the
/// most frequent one (with the votes recorded in `result`).
pub fn programs_of(
    task: &CodeTask,
    texts: &[String],
    self_consistency: bool,
    result: &mut ProblemResult,
) -> Vec<String> {
    let programs: Vec<String> = texts.iter().map(|t| extract_program(&task.prompt, t, &task.entry_point)).collect();
    if !self_consistency {
        return programs;
    }
    let (chosen, votes) = most_frequent_program(&programs);
    result.votes = votes;
    result.output = texts[chosen].clone();
    vec![programs[chosen].clone()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(test: &str) -> CodeTask {
        CodeTask {
            prompt: "def f(x):\n".into(),
            test: test.into(),
            entry_point: "f".into(),
            setup: "import math".into(),
            solution: None,
        }
    }

    #[test]
    fn humaneval_tests_get_the_check_call_and_plain_tests_do_not() {
        let p = test_program(&task("def check(candidate):\n    assert candidate(1) == 1\n"), "def f(x):\n    return x");
        assert!(p.starts_with("import math\n\ndef f(x):") && p.ends_with("check(f)\n"), "{p}");
        let p = test_program(&task("assert f(1) == 1\n"), "def f(x):\n    return x");
        assert!(!p.contains("check("), "{p}");
    }

    #[test]
    fn the_most_frequent_program_wins_regardless_of_comments_and_docstrings() {
        let a = "def f(x):\n    \"\"\"Doc.\"\"\"\n    return x + 1  # add one\n".to_string();
        let b = "def f(x):\n    return x+2\n".to_string();
        let a2 = "def f(x):\n\n    # the answer\n    return x + 1\n".to_string();
        let (chosen, votes) = most_frequent_program(&[b.clone(), a.clone(), a2]);
        assert_eq!(chosen, 1);
        assert_eq!(votes, vec![("program 1".to_string(), 1), ("program 2".to_string(), 2)]);
        // A tie goes to the first.
        assert_eq!(most_frequent_program(&[b, a]).0, 0);
    }
}
