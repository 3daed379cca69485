//! Self-consistency: N sampled answers to the same question, majority vote over
//! the extracted final answers (equivalent answers vote together; ties go to the
//! answer seen first).

use crate::answer::{extract_answer, is_equivalent};

/// The outcome of a self-consistency vote.
#[derive(Clone, Debug, PartialEq)]
pub struct Vote {
    /// The winning answer, if any sample had one.
    pub answer: Option<String>,
    /// Index of a sample that gave the winning answer.
    pub representative: usize,
    /// (answer, votes) for each distinct answer, in order of first appearance.
    pub tally: Vec<(String, usize)>,
}

/// Extract each sample's final answer and take a majority vote: equivalent answers vote
/// together, samples with no answer do not vote, and a tie goes to the answer seen first.
pub fn majority_vote(samples: &[String]) -> Vote {
    let mut tally: Vec<(String, usize, usize)> = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        let Some(a) = extract_answer(s) else { continue };
        match tally.iter_mut().find(|(t, ..)| is_equivalent(&a, t)) {
            Some(entry) => entry.1 += 1,
            None => tally.push((a, 1, i)),
        }
    }
    let best = tally.iter().enumerate().max_by(|(ia, a), (ib, b)| a.1.cmp(&b.1).then(ib.cmp(ia))).map(|(i, _)| i);
    Vote {
        answer: best.map(|i| tally[i].0.clone()),
        representative: best.map_or(0, |i| tally[i].2),
        tally: tally.into_iter().map(|(a, n, _)| (a, n)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_wins_and_equivalent_answers_vote_together() {
        let s = |x: &str| x.to_string();
        let v =
            majority_vote(&[s("so \\boxed{1/2}"), s("\\boxed{3}"), s("answer \\boxed{\\frac{1}{2}}"), s("no idea")]);
        assert_eq!(v.answer.as_deref(), Some("1/2"));
        assert_eq!(v.representative, 0);
        assert_eq!(v.tally, vec![(s("1/2"), 2), (s("3"), 1)]);
    }

    #[test]
    fn ties_go_to_the_first_answer_and_no_answers_give_none() {
        let s = |x: &str| x.to_string();
        let v = majority_vote(&[s("\\boxed{7}"), s("\\boxed{8}")]);
        assert_eq!(v.answer.as_deref(), Some("7"));
        assert_eq!(majority_vote(&[s("hmm"), s("")]).answer, None);
    }
}
