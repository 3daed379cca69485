//! The statistics of an evaluation: intervals, pass@k and paired comparisons
//! (docs/code-eval.md, "Metrics").

use serde::Serialize;

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

/// The unbiased pass@k of one problem with `c` passing among `n` samples:
/// 1 − C(n−c, k) / C(n, k) (Chen et al., 2021), computed as a product so that it stays
/// exact for large n. None when k > n.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> Option<f64> {
    if k == 0 || k > n || c > n {
        return None;
    }
    if n - c < k {
        return Some(1.0);
    }
    // C(n−c, k) / C(n, k) = Π_{i = n−c+1}^{n} (1 − k / i)
    let fail: f64 = ((n - c + 1)..=n).map(|i| 1.0 - k as f64 / i as f64).product();
    Some(1.0 - fail)
}

/// Mean of per-problem values in [0, 1] with a 95% interval: Wilson when every value
/// is 0 or 1 (one sample per problem), else the normal interval of the mean
/// (mean ± 1.96 · sd / √N), clipped to [0, 1].
pub fn mean95(values: &[f64]) -> (f64, (f64, f64)) {
    let n = values.len();
    if n == 0 {
        return (0.0, (0.0, 1.0));
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if values.iter().all(|&v| v == 0.0 || v == 1.0) {
        return (mean, wilson95(values.iter().filter(|&&v| v == 1.0).count(), n));
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64;
    let half = 1.959_963_985 * (var / n as f64).sqrt();
    (mean, ((mean - half).max(0.0), (mean + half).min(1.0)))
}

/// Two-sided exact sign test: the probability, under "fixed and broken are equally
/// likely", of a split at least as uneven as `fixed` : `broken`.
pub fn sign_test(fixed: usize, broken: usize) -> f64 {
    let n = fixed + broken;
    if n == 0 {
        return 1.0;
    }
    let k = fixed.min(broken);
    // P(X ≤ k) for X ~ Binomial(n, 1/2), in log space for large n.
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    let mut ln_choose = 0.0; // ln C(n, 0)
    let mut tail = 0.0;
    for i in 0..=k {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_choose + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

/// A method against the baseline on the problems both answered.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Paired {
    /// The method compared.
    pub method: String,
    /// The baseline (the first method of the run).
    pub baseline: String,
    /// Problems both have results for.
    pub common: usize,
    /// Problems where the method scores higher than the baseline.
    pub fixed: usize,
    /// Problems where it scores lower.
    pub broken: usize,
    /// Two-sided sign test on fixed vs broken.
    pub p_value: f64,
}

/// Compare per-problem scores (id → score in [0, 1]) of `method` with `baseline`.
pub fn paired(
    method: &str,
    baseline: &str,
    scores: &std::collections::HashMap<String, f64>,
    base: &std::collections::HashMap<String, f64>,
) -> Paired {
    let (mut common, mut fixed, mut broken) = (0, 0, 0);
    for (id, s) in scores {
        let Some(b) = base.get(id) else { continue };
        common += 1;
        if s > b {
            fixed += 1;
        } else if s < b {
            broken += 1;
        }
    }
    Paired {
        method: method.into(),
        baseline: baseline.into(),
        common,
        fixed,
        broken,
        p_value: sign_test(fixed, broken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Against the definition with exact binomial coefficients (u128 arithmetic).
    #[test]
    fn pass_at_k_matches_the_binomial_definition() {
        fn choose(n: u128, k: u128) -> u128 {
            if k > n {
                return 0;
            }
            (0..k).fold(1, |acc, i| acc * (n - i) / (i + 1))
        }
        for n in 1..=20usize {
            for c in 0..=n {
                for k in 1..=n {
                    let exact = 1.0 - choose((n - c) as u128, k as u128) as f64 / choose(n as u128, k as u128) as f64;
                    let got = pass_at_k(n, c, k).unwrap();
                    assert!((got - exact).abs() < 1e-12, "n {n} c {c} k {k}: {got} vs {exact}");
                }
            }
        }
        assert!((pass_at_k(5, 2, 1).unwrap() - 0.4).abs() < 1e-12);
        assert_eq!(pass_at_k(3, 1, 4), None);
    }

    #[test]
    fn sign_test_matches_hand_computed_values() {
        // 6 fixed, 2 broken: 2 · (1 + 8 + 28) / 256 = 0.2890625 (the quick run).
        assert!((sign_test(6, 2) - 0.2890625).abs() < 1e-12);
        assert_eq!(sign_test(0, 0), 1.0);
        assert!((sign_test(5, 5) - 1.0).abs() < 1e-12);
        // 10 : 0 → 2 / 1024.
        assert!((sign_test(10, 0) - 2.0 / 1024.0).abs() < 1e-15);
    }

    #[test]
    fn mean_interval_is_wilson_for_binary_values_and_normal_otherwise() {
        let (m, ci) = mean95(&[1.0, 0.0, 1.0, 1.0]);
        assert_eq!((m, ci), (0.75, wilson95(3, 4)));
        let (m, (lo, hi)) = mean95(&[0.5, 0.25, 0.75]);
        assert!((m - 0.5).abs() < 1e-12);
        // sd = 0.25, half = 1.96 · 0.25 / √3
        assert!((hi - lo - 2.0 * 1.959_963_985 * 0.25 / 3f64.sqrt()).abs() < 1e-12);
    }
}
