//! What EM-RL rewards a response for (docs/training.md, "Rewards"): the terms, each a
//! number per response, and `--reward` specs that weigh several of them.
//! - label-free: token (−entropy), sequence (log-probability), self-consistency (the
//!   paper's), self-certainty (Intuitor's KL(U ‖ p)), answer-cluster (EMPO's soft
//!   self-consistency);
//! - labelled baselines: verified (the answer equals the gold one), tests (the program
//!   passes the prompt's tests);
//! - controls: random (a seeded coin) and format (a `\boxed{}` answer is present), which
//!   carry no information about correctness.
//!
//! A spec of one term uses its values as they are (times its weight); a sum of several
//! normalises each term within the prompt's group before weighing it, so that terms on
//! different scales (nats against 0/1) count by their weights.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::advantage::group_normalised;
use crate::answer::{extract_answer, has_boxed_answer, is_equivalent};
use crate::engine::Rng;
use crate::error::{Error, Result};
use crate::methods::self_consistency::majority_vote;

/// One reward term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RewardKind {
    /// −(mean or sum) of the response tokens' entropies.
    Token,
    /// (mean or sum) of the response tokens' log-probabilities.
    Sequence,
    /// (mean or sum) of the response tokens' self-certainty KL(U ‖ p) = −log V −
    /// mean_j log p_j (Intuitor): how far each next-token distribution is from uniform.
    SelfCertainty,
    /// The fraction of the group agreeing with the majority answer, for the responses that
    /// give it; 0 for the others.
    SelfConsistency,
    /// The fraction of the group whose answer is equivalent to this response's; 0 without
    /// an answer (EMPO's semantic-cluster probability with answers as clusters).
    AnswerCluster,
    /// 1 if the extracted answer is equivalent to the prompt's gold answer, else 0.
    Verified,
    /// 1 if the response's program passes the prompt's tests in the sandbox, else 0
    /// (code prompts only; the labelled baseline on code).
    Tests,
    /// A fair coin per response, seeded by (seed, step, response): the control for
    /// what an uninformative reward does.
    Random,
    /// 1 if the response holds a non-empty `\boxed{}` answer, else 0: the control for a
    /// reward that teaches only the output format.
    Format,
}

const NAMES: [(&str, RewardKind); 9] = [
    ("token", RewardKind::Token),
    ("sequence", RewardKind::Sequence),
    ("self-certainty", RewardKind::SelfCertainty),
    ("self-consistency", RewardKind::SelfConsistency),
    ("answer-cluster", RewardKind::AnswerCluster),
    ("verified", RewardKind::Verified),
    ("tests", RewardKind::Tests),
    ("random", RewardKind::Random),
    ("format", RewardKind::Format),
];

impl RewardKind {
    /// The term called `s` (the names of `--reward`).
    pub fn parse(s: &str) -> Result<Self> {
        NAMES.iter().find(|(n, _)| *n == s).map(|(_, k)| *k).ok_or_else(|| {
            let names: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
            Error::invalid(format!("unknown reward {s:?} ({})", names.join(", ")))
        })
    }

    /// The term's name, as `--reward` and the metrics (`reward/NAME`) spell it.
    pub fn name(self) -> &'static str {
        NAMES.iter().find(|(_, k)| *k == self).map(|(n, _)| *n).expect("every kind is named")
    }

    /// Terms that compare a response with the others of its group.
    pub fn needs_group(self) -> bool {
        matches!(self, RewardKind::SelfConsistency | RewardKind::AnswerCluster)
    }
}

/// A `--reward` spec: a weighted sum of terms, such as `token` or `verified+0.5*token`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Reward {
    /// (weight, term), each term at most once, in the order given.
    pub terms: Vec<(f64, RewardKind)>,
}

impl Reward {
    /// One term with weight 1: its values are the rewards.
    pub fn single(kind: RewardKind) -> Self {
        Reward { terms: vec![(1.0, kind)] }
    }

    /// Parse `TERM` or `[W*]TERM+[W*]TERM…`: weights are finite numbers (default 1), a
    /// term appears at most once.
    pub fn parse(spec: &str) -> Result<Self> {
        let mut terms: Vec<(f64, RewardKind)> = Vec::new();
        for part in spec.split('+') {
            let part = part.trim();
            let (weight, name) = match part.split_once('*') {
                Some((w, name)) => {
                    let w: f64 = w.trim().parse().map_err(|_| {
                        Error::invalid(format!("--reward {spec:?}: weight {w:?} of {name:?} is not a number"))
                    })?;
                    (w, name.trim())
                }
                None => (1.0, part),
            };
            if !weight.is_finite() {
                return Err(Error::invalid(format!("--reward {spec:?}: weight {weight} is not finite")));
            }
            let kind = RewardKind::parse(name).map_err(|e| Error::invalid(format!("--reward {spec:?}: {e}")))?;
            if terms.iter().any(|(_, k)| *k == kind) {
                return Err(Error::invalid(format!("--reward {spec:?}: {name} appears twice")));
            }
            terms.push((weight, kind));
        }
        Ok(Reward { terms })
    }

    /// Whether the spec holds `kind`.
    pub fn has(&self, kind: RewardKind) -> bool {
        self.terms.iter().any(|(_, k)| *k == kind)
    }

    /// The rewards of one group from each term's values (`values[t][i]`: term t of the
    /// spec, response i): one term gives w·value; several give Σ_t w_t·normalised_t,
    /// each term normalised within the group as GRPO's advantage is
    /// ([`group_normalised`]).
    pub fn combine(&self, values: &[Vec<f64>]) -> Vec<f64> {
        assert_eq!(values.len(), self.terms.len(), "one value list per term");
        let n = values.first().map_or(0, Vec::len);
        if let [(w, _)] = self.terms.as_slice() {
            return values[0].iter().map(|v| w * v).collect();
        }
        let mut out = vec![0.0; n];
        for ((w, _), term) in self.terms.iter().zip(values) {
            for (o, z) in out.iter_mut().zip(group_normalised(term)) {
                *o += w * z;
            }
        }
        out
    }
}

impl fmt::Display for Reward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .terms
            .iter()
            .map(|(w, k)| if *w == 1.0 { k.name().to_string() } else { format!("{w}*{}", k.name()) })
            .collect();
        f.write_str(&parts.join("+"))
    }
}

impl From<Reward> for String {
    fn from(r: Reward) -> String {
        r.to_string()
    }
}

impl TryFrom<String> for Reward {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Reward::parse(&s)
    }
}

/// How the token and sequence rewards combine the response tokens' values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RewardReduction {
    /// The official code's choice.
    Mean,
    /// The paper's formulas.
    Sum,
}

fn reduce(values: impl Iterator<Item = f64>, reduction: RewardReduction) -> f64 {
    let (mut sum, mut n) = (0f64, 0usize);
    for v in values {
        sum += v;
        n += 1;
    }
    match reduction {
        RewardReduction::Sum => sum,
        RewardReduction::Mean => sum / n.max(1) as f64,
    }
}

/// Token reward: −(mean or sum) of the response tokens' entropies.
pub fn token_reward(entropies: &[f32], reduction: RewardReduction) -> f64 {
    -reduce(entropies.iter().map(|&h| h as f64), reduction)
}

/// Sequence reward: (mean or sum) of the response tokens' log-probabilities.
pub fn sequence_reward(logprobs: &[f32], reduction: RewardReduction) -> f64 {
    reduce(logprobs.iter().map(|&l| l as f64), reduction)
}

/// Self-certainty reward: (mean or sum) of the response tokens' KL(U ‖ p).
pub fn self_certainty_reward(certainties: &[f32], reduction: RewardReduction) -> f64 {
    reduce(certainties.iter().map(|&c| c as f64), reduction)
}

/// Self-consistency reward of each response of one group: the fraction of the group
/// whose answer agrees with the majority answer, for responses that give it; 0 for the
/// others (and for everyone when no response has an answer).
pub fn self_consistency_rewards(texts: &[String]) -> Vec<f64> {
    let vote = majority_vote(texts);
    let Some(majority) = vote.answer else { return vec![0.0; texts.len()] };
    let agree: Vec<bool> =
        texts.iter().map(|t| extract_answer(t).is_some_and(|a| is_equivalent(&a, &majority))).collect();
    let fraction = agree.iter().filter(|&&a| a).count() as f64 / texts.len() as f64;
    agree.iter().map(|&a| if a { fraction } else { 0.0 }).collect()
}

/// Answer-cluster reward of each response of one group: the fraction of the group whose
/// answer is equivalent to its own (its cluster's empirical probability), 0 for a
/// response without an answer. Self-consistency is the hard form: only the largest
/// cluster is rewarded.
pub fn answer_cluster_rewards(texts: &[String]) -> Vec<f64> {
    let answers: Vec<Option<String>> = texts.iter().map(|t| extract_answer(t)).collect();
    answers
        .iter()
        .map(|a| match a {
            None => 0.0,
            Some(a) => {
                let same = answers.iter().flatten().filter(|b| is_equivalent(b, a)).count();
                same as f64 / texts.len() as f64
            }
        })
        .collect()
}

/// Verified reward: 1 if the response's extracted answer is equivalent to `gold` (the
/// evaluation's checker), else 0.
pub fn verified_reward(text: &str, gold: &str) -> f64 {
    f64::from(u8::from(extract_answer(text).is_some_and(|a| is_equivalent(&a, gold))))
}

/// Format reward: 1 if the response holds a non-empty `\boxed{}` answer, else 0.
pub fn format_reward(text: &str) -> f64 {
    f64::from(u8::from(has_boxed_answer(text)))
}

/// Random reward: 0 or 1 with probability ½ each, a function of (seed, step, response
/// index) alone, so a resumed run draws the same coins.
pub fn random_reward(seed: u64, step: u64, index: usize) -> f64 {
    let mut rng = Rng::new(seed ^ 0x00C0_1A5E_ED00 ^ (step << 24) ^ index as u64);
    (rng.next_u64() >> 63) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * (1.0 + b.abs())
    }

    fn texts(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn specs_parse_print_and_refuse() {
        let r = Reward::parse("verified+0.5*token").unwrap();
        assert_eq!(r.terms, vec![(1.0, RewardKind::Verified), (0.5, RewardKind::Token)]);
        assert_eq!(r.to_string(), "verified+0.5*token");
        assert_eq!(Reward::parse(&r.to_string()).unwrap(), r);
        assert_eq!(Reward::parse("token").unwrap(), Reward::single(RewardKind::Token));
        assert_eq!(Reward::parse(" 2 * format + -1*random ").unwrap().to_string(), "2*format+-1*random");
        for (bad, says) in [
            ("tokens", "unknown reward \"tokens\""),
            ("token+token", "appears twice"),
            ("x*token", "is not a number"),
            ("inf*token", "not finite"),
            ("token+", "unknown reward \"\""),
        ] {
            let err = Reward::parse(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
        for (name, kind) in NAMES {
            assert_eq!(RewardKind::parse(name).unwrap().name(), name);
            assert_eq!(kind.name(), name);
        }
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, "\"verified+0.5*token\"");
        assert_eq!(serde_json::from_str::<Reward>(&json).unwrap(), r);
    }

    #[test]
    fn rewards_by_hand() {
        assert!(close(token_reward(&[0.5, 1.5], RewardReduction::Mean), -1.0));
        assert!(close(token_reward(&[0.5, 1.5], RewardReduction::Sum), -2.0));
        assert!(close(sequence_reward(&[-0.25, -1.0, -0.25], RewardReduction::Mean), -0.5));
        assert!(close(sequence_reward(&[-0.25, -1.0, -0.25], RewardReduction::Sum), -1.5));
        assert_eq!(token_reward(&[], RewardReduction::Mean), 0.0);
        assert!(close(self_certainty_reward(&[2.0, 4.0, 0.0], RewardReduction::Mean), 2.0));
        assert!(close(self_certainty_reward(&[2.0, 4.0, 0.0], RewardReduction::Sum), 6.0));
        let group = texts(&["so \\boxed{4}", "it is 4.0", "\\boxed{5}", "no answer here"]);
        assert_eq!(self_consistency_rewards(&group), vec![0.5, 0.5, 0.0, 0.0]);
        assert_eq!(self_consistency_rewards(&texts(&["none", "none"])), vec![0.0, 0.0]);
        // Clusters {4, 4.0}, {5}, no answer: 2/4, 2/4, 1/4, 0.
        assert_eq!(answer_cluster_rewards(&group), vec![0.5, 0.5, 0.25, 0.0]);
        assert_eq!(answer_cluster_rewards(&texts(&["none", "none"])), vec![0.0, 0.0]);
        assert_eq!(verified_reward("so \\boxed{\\frac{1}{2}}", "0.5"), 1.0);
        assert_eq!(verified_reward("the answer is 7", "7"), 1.0);
        assert_eq!(verified_reward("\\boxed{8}", "7"), 0.0);
        assert_eq!(verified_reward("no idea", "7"), 0.0);
        assert_eq!(format_reward("\\boxed{8}"), 1.0);
        assert_eq!(format_reward("the answer is 8"), 0.0);
        assert_eq!(format_reward("\\boxed{}"), 0.0);
        assert_eq!(format_reward("\\boxed{8"), 0.0, "an unclosed box is no answer");
    }

    #[test]
    fn random_reward_is_a_seeded_fair_coin() {
        let coins: Vec<f64> = (0..4000).map(|i| random_reward(7, 3, i)).collect();
        assert!(coins.iter().all(|&c| c == 0.0 || c == 1.0));
        let heads = coins.iter().sum::<f64>();
        // Binomial(4000, ½): sd ≈ 31.6, so ±150 is almost 5 sd.
        assert!((heads - 2000.0).abs() < 150.0, "{heads} heads of 4000");
        assert_eq!(coins, (0..4000).map(|i| random_reward(7, 3, i)).collect::<Vec<_>>());
        assert_ne!(coins[..64], (0..64).map(|i| random_reward(7, 4, i)).collect::<Vec<_>>()[..]);
    }

    #[test]
    fn sums_normalise_each_term_within_the_group() {
        // One term: raw values times the weight.
        let one = Reward::parse("0.5*token").unwrap();
        assert_eq!(one.combine(&[vec![-1.0, -3.0]]), vec![-0.5, -1.5]);
        // verified = [1, 0, 0, 1]: mean ½, unbiased sd √(1/3); token = [−1, −2, −3, −2]:
        // mean −2, sd √(2/3). z_v = ±√3/2·…, computed here from the definitions.
        let r = Reward::parse("verified+0.5*token").unwrap();
        let v = vec![1.0, 0.0, 0.0, 1.0];
        let t = vec![-1.0, -2.0, -3.0, -2.0];
        let z = |x: &[f64]| -> Vec<f64> {
            let m = x.iter().sum::<f64>() / x.len() as f64;
            let sd = (x.iter().map(|a| (a - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64).sqrt();
            x.iter().map(|a| (a - m) / (sd + 1e-6)).collect()
        };
        let (zv, zt) = (z(&v), z(&t));
        let got = r.combine(&[v, t]);
        for i in 0..4 {
            assert!(close(got[i], zv[i] + 0.5 * zt[i]), "{got:?}");
        }
        // A term constant over the group contributes nothing.
        let flat = r.combine(&[vec![1.0; 3], vec![-1.0, -2.0, -3.0]]);
        assert!(close(flat[0], 0.5 * 1.0 / (1.0 + 1e-6)) && close(flat[1], 0.0), "{flat:?}");
    }
}
