//! EM-RL's per-token loss (docs/methods.md, "EM-RL"; the official code builds on verl,
//! whose definitions these follow; the rewards are in `rewards`, the advantages in
//! `advantage`):
//! - PPO's clipped surrogate with verl's dual clip (c = 3 for negative advantages), a KL
//!   penalty to the frozen reference (k1, k2 or k3 = "low_var_kl") and an optional
//!   entropy bonus; each term returns its value and its derivative in log p.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// How the per-token KL penalty to the reference is estimated from the two log-probabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KlEstimator {
    /// k3: e^{ref−logp} − (ref−logp) − 1, clamped to ±10 (verl's default for EM-RL).
    LowVarKl,
    /// logp − ref.
    K1,
    /// ½ (logp − ref)².
    K2,
}

impl KlEstimator {
    /// The estimator called `s`: "low_var_kl" (or "k3"), "k1" (or "kl"), "k2" (or "mse").
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "low_var_kl" | "k3" => Ok(KlEstimator::LowVarKl),
            "k1" | "kl" => Ok(KlEstimator::K1),
            "k2" | "mse" => Ok(KlEstimator::K2),
            other => Err(Error::invalid(format!("unknown KL estimator {other:?} (low_var_kl, k1, k2)"))),
        }
    }

    /// (value, ∂value/∂logp) for one token.
    pub fn eval(self, logp: f64, ref_logp: f64) -> (f64, f64) {
        match self {
            KlEstimator::K1 => (logp - ref_logp, 1.0),
            KlEstimator::K2 => (0.5 * (logp - ref_logp).powi(2), logp - ref_logp),
            KlEstimator::LowVarKl => {
                // verl clamps the log-ratio to ±20 and the estimate to ±10; a clamped
                // value passes no gradient.
                let kl = ref_logp - logp;
                let kl_c = kl.clamp(-20.0, 20.0);
                let value = kl_c.exp() - kl_c - 1.0;
                if value > 10.0 || kl != kl_c {
                    (value.min(10.0), 0.0)
                } else {
                    (value, 1.0 - kl.exp())
                }
            }
        }
    }
}

/// verl's dual-clip constant: a negative advantage's loss is capped at −A·3.
pub const DUAL_CLIP: f64 = 3.0;

/// PPO's clipped surrogate loss for one token: (loss, ∂loss/∂logp, clipped), with
/// ratio = e^{logp − old_logp}, loss = max(−A·ratio, −A·clip(ratio, 1 ± ε)) and, for
/// A < 0, min(that, −A·DUAL_CLIP). `clipped`: the clipped branch was taken.
pub fn ppo_clipped(advantage: f64, logp: f64, old_logp: f64, clip: f64) -> (f64, f64, bool) {
    let ratio = (logp - old_logp).exp();
    let unclipped = -advantage * ratio;
    let clipped = -advantage * ratio.clamp(1.0 - clip, 1.0 + clip);
    let (mut loss, mut grad, mut was_clipped) =
        if clipped > unclipped { (clipped, 0.0, true) } else { (unclipped, -advantage * ratio, false) };
    if advantage < 0.0 && loss > -advantage * DUAL_CLIP {
        (loss, grad, was_clipped) = (-advantage * DUAL_CLIP, 0.0, true);
    }
    (loss, grad, was_clipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * (1.0 + b.abs())
    }

    #[test]
    fn ppo_by_hand() {
        let ln = |x: f64| x.ln();
        // In the trust region: loss −A·ratio, gradient −A·ratio.
        let (l, g, c) = ppo_clipped(2.0, ln(1.1), 0.0, 0.2);
        assert!(close(l, -2.2) && close(g, -2.2) && !c);
        // A > 0 and ratio above 1 + ε: the clipped constant wins, no gradient.
        let (l, g, c) = ppo_clipped(2.0, ln(1.5), 0.0, 0.2);
        assert!(close(l, -2.4) && g == 0.0 && c);
        // A > 0 and ratio below 1 − ε: the unclipped term is larger, gradient flows.
        let (l, g, c) = ppo_clipped(2.0, ln(0.5), 0.0, 0.2);
        assert!(close(l, -1.0) && close(g, -1.0) && !c);
        // A < 0 and ratio below 1 − ε: clipped at 0.8.
        let (l, g, c) = ppo_clipped(-1.0, ln(0.5), 0.0, 0.2);
        assert!(close(l, 0.8) && g == 0.0 && c);
        // A < 0 and ratio 5: unclipped 5 exceeds the dual clip 3.
        let (l, g, c) = ppo_clipped(-1.0, ln(5.0), 0.0, 0.2);
        assert!(close(l, 3.0) && g == 0.0 && c);
        // A < 0 and ratio 2: unclipped 2 stands, gradient −A·ratio = 2.
        let (l, g, c) = ppo_clipped(-1.0, ln(2.0), 0.0, 0.2);
        assert!(close(l, 2.0) && close(g, 2.0) && !c);
    }

    #[test]
    fn kl_estimators_by_hand_and_by_finite_differences() {
        let (logp, r) = (-1.0f64, -1.5f64);
        let (k1, _) = KlEstimator::K1.eval(logp, r);
        let (k2, _) = KlEstimator::K2.eval(logp, r);
        let (k3, _) = KlEstimator::LowVarKl.eval(logp, r);
        assert!(close(k1, 0.5) && close(k2, 0.125));
        assert!(close(k3, (-0.5f64).exp() + 0.5 - 1.0));
        for est in [KlEstimator::K1, KlEstimator::K2, KlEstimator::LowVarKl] {
            for (lp, rf) in [(-1.0, -1.5), (-3.0, -0.2), (-0.1, -0.1)] {
                let h = 1e-6;
                let fd = (est.eval(lp + h, rf).0 - est.eval(lp - h, rf).0) / (2.0 * h);
                assert!((est.eval(lp, rf).1 - fd).abs() < 1e-6, "{est:?} at ({lp}, {rf})");
            }
        }
        // Clamped: ref − logp = 5 gives e^5 − 6 > 10 → 10, no gradient.
        assert_eq!(KlEstimator::LowVarKl.eval(-6.0, -1.0), (10.0, 0.0));
        assert_eq!(KlEstimator::LowVarKl.eval(-1.0, -1.0), (0.0, 0.0));
    }
}
