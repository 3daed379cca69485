/// Parameters of the fused EM-INF loop (docs/methods.md, "EM-INF"): Adam on a copy z′ of
/// the logits minimising H(softmax(z′)) + λ·KL(softmax(z) ‖ softmax(z′)), at most
/// `max_steps` steps, stopping as soon as H(softmax(z′)) < `threshold` (checked
/// before each step). Defaults are the official code's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EmInfParams {
    /// δ
    pub threshold: f32,
    pub lr: f32,
    /// K
    pub max_steps: u32,
    /// λ
    pub kl_weight: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
}

impl Default for EmInfParams {
    fn default() -> Self {
        EmInfParams { threshold: 0.3, lr: 0.1, max_steps: 5, kl_weight: 0.001, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }
}

impl EmInfParams {
    pub fn validate(&self) -> crate::Result<()> {
        let ok = self.threshold >= 0.0
            && self.lr > 0.0
            && self.lr.is_finite()
            && self.kl_weight >= 0.0
            && (0.0..1.0).contains(&self.beta1)
            && (0.0..1.0).contains(&self.beta2)
            && self.eps > 0.0;
        if ok {
            Ok(())
        } else {
            Err(crate::EngineError::invalid("em_inf", format!("parameters out of range: {self:?}")))
        }
    }
}

/// What the loop did to one row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EmInfRowStats {
    pub steps: u32,
    /// Entropy (nats) of softmax(z) before and of softmax(z′) after.
    pub entropy_before: f32,
    pub entropy_after: f32,
}

/// Per-row statistics as GPU kernels write them: (steps, H before — NaN when the row
/// holds NaN or +inf —, H after) per row.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub(crate) fn stats_from_device(raw: &[f32]) -> crate::Result<Vec<EmInfRowStats>> {
    raw.chunks_exact(3)
        .enumerate()
        .map(|(row, s)| {
            if s[1].is_nan() {
                return Err(crate::EngineError::NonFinite { row, what: "NaN or +inf" });
            }
            Ok(EmInfRowStats { steps: s[0] as u32, entropy_before: s[1], entropy_after: s[2] })
        })
        .collect()
}
