//! Advantages of one prompt's group of rollouts from their rewards (docs/training.md,
//! "Advantages"): RLOO (the paper's EM-RL), GRPO, and GRPO without the std division
//! (Dr. GRPO). Every response token of a rollout gets its rollout's advantage.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// ε added to the group's standard deviation by GRPO (verl's value).
pub const GRPO_EPS: f64 = 1e-6;

/// How a group's rewards become advantages (`--advantage`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Advantage {
    /// A_i = r_i − mean_{j≠i} r_j.
    Rloo,
    /// A_i = (r_i − mean) / (std + ε), std the unbiased (N − 1) standard deviation.
    Grpo,
    /// A_i = r_i − mean (Dr. GRPO: no division, so groups with little spread keep their
    /// small advantages).
    GrpoNoStd,
}

impl Advantage {
    /// The estimator called `s`: "rloo", "grpo" or "grpo-no-std".
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "rloo" => Ok(Advantage::Rloo),
            "grpo" => Ok(Advantage::Grpo),
            "grpo-no-std" => Ok(Advantage::GrpoNoStd),
            other => Err(Error::invalid(format!("unknown advantage {other:?} (rloo, grpo, grpo-no-std)"))),
        }
    }

    /// The advantages of one group; 0 for every member of a group of one (it has no
    /// baseline to compare with).
    pub fn of(self, rewards: &[f64]) -> Vec<f64> {
        if rewards.len() < 2 {
            return vec![0.0; rewards.len()];
        }
        match self {
            Advantage::Rloo => rloo_advantages(rewards),
            Advantage::Grpo => group_normalised(rewards),
            Advantage::GrpoNoStd => {
                let mean = mean(rewards);
                rewards.iter().map(|r| r - mean).collect()
            }
        }
    }
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// RLOO advantages of one group: r_i minus the mean of the others' rewards (0 for a
/// group of one).
pub fn rloo_advantages(rewards: &[f64]) -> Vec<f64> {
    let n = rewards.len();
    if n < 2 {
        return vec![0.0; n];
    }
    let total: f64 = rewards.iter().sum();
    rewards.iter().map(|&r| r - (total - r) / (n - 1) as f64).collect()
}

/// (x_i − mean) / (std + [`GRPO_EPS`]) with the unbiased standard deviation: GRPO's
/// advantage, and how a sum of reward terms normalises each term. 0 for a group of one.
pub fn group_normalised(x: &[f64]) -> Vec<f64> {
    if x.len() < 2 {
        return vec![0.0; x.len()];
    }
    let m = mean(x);
    let std = (x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() - 1) as f64).sqrt();
    x.iter().map(|v| (v - m) / (std + GRPO_EPS)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * (1.0 + b.abs())
    }

    #[test]
    fn rloo_by_hand() {
        // r = [1, 2, 3, 6]: others' means 11/3, 10/3, 3, 2.
        let a = Advantage::Rloo.of(&[1.0, 2.0, 3.0, 6.0]);
        for (got, want) in a.iter().zip([1.0 - 11.0 / 3.0, 2.0 - 10.0 / 3.0, 0.0, 4.0]) {
            assert!(close(*got, want), "{a:?}");
        }
        // The identity in docs/methods.md, "RLOO advantage": A_i = N/(N−1)·(r_i − mean).
        assert!(close(a[3], 4.0 / 3.0 * (6.0 - 3.0)));
        assert_eq!(rloo_advantages(&[5.0]), vec![0.0]);
        assert!(rloo_advantages(&[2.0, 2.0, 2.0]).iter().all(|&x| x == 0.0));
    }

    #[test]
    fn grpo_by_hand() {
        // r = [1, 2, 3, 6]: mean 3, squared deviations 4 + 1 + 0 + 9 = 14, unbiased
        // variance 14/3, std √(14/3) = 2.1602…
        let std = (14.0f64 / 3.0).sqrt();
        let a = Advantage::Grpo.of(&[1.0, 2.0, 3.0, 6.0]);
        for (got, dev) in a.iter().zip([-2.0, -1.0, 0.0, 3.0]) {
            assert!(close(*got, dev / (std + 1e-6)), "{a:?}");
        }
        let d = Advantage::GrpoNoStd.of(&[1.0, 2.0, 3.0, 6.0]);
        assert_eq!(d, vec![-2.0, -1.0, 0.0, 3.0]);
        // Binary rewards [1, 0, 0, 0]: mean ¼, std ½ → A = (¾, −¼, −¼, −¼) / (½ + ε).
        let b = Advantage::Grpo.of(&[1.0, 0.0, 0.0, 0.0]);
        assert!(close(b[0], 0.75 / (0.5 + 1e-6)) && close(b[1], -0.25 / (0.5 + 1e-6)), "{b:?}");
        // All equal: every estimator gives 0 (no division by a zero std).
        for adv in [Advantage::Rloo, Advantage::Grpo, Advantage::GrpoNoStd] {
            assert!(adv.of(&[0.5; 4]).iter().all(|&x| x == 0.0), "{adv:?}");
            assert_eq!(adv.of(&[3.0]), vec![0.0], "{adv:?}: a group of one");
            assert!(adv.of(&[]).is_empty());
        }
        assert!(Advantage::parse("ppo").unwrap_err().to_string().contains("grpo-no-std"));
        assert_eq!(Advantage::parse("grpo-no-std").unwrap(), Advantage::GrpoNoStd);
    }
}
