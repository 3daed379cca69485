//! Flags shared by `generate` and `eval` that choose and tune the decoding method.

use anyhow::{bail, Result};
use entmin::methods::{Method, MethodConfig};

#[derive(clap::Args, Clone, Debug)]
pub struct MethodArgs {
    /// Sampling temperature (0 = greedy); default 0.1 (plain, em-inf) or 0.7 (self-consistency).
    #[arg(long)]
    pub temperature: Option<f32>,
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    /// EM-INF: stop optimising once the entropy is below this (δ).
    #[arg(long, default_value_t = 0.3)]
    pub em_threshold: f32,
    /// EM-INF: Adam learning rate on the logits.
    #[arg(long, default_value_t = 0.1)]
    pub em_lr: f32,
    /// EM-INF: at most this many Adam steps per token (K).
    #[arg(long, default_value_t = 5)]
    pub em_steps: u32,
    /// EM-INF: weight λ of KL(p(z) ‖ p(z′)).
    #[arg(long, default_value_t = 0.001)]
    pub em_kl: f32,
    /// Adaptive temperature: target entropy as a fraction α of the model's.
    #[arg(long, default_value_t = 0.5)]
    pub at_ratio: f32,
    /// Adaptive temperature: smallest and largest τ.
    #[arg(long, default_value_t = 0.01)]
    pub at_tau_min: f32,
    #[arg(long, default_value_t = 1.0)]
    pub at_tau_max: f32,
    /// Adaptive temperature: bisection stops within this much of the target entropy.
    #[arg(long, default_value_t = 0.1)]
    pub at_tolerance: f32,
    #[arg(long, default_value_t = 100)]
    pub at_max_iterations: u32,
    /// Self-consistency: samples per question.
    #[arg(long = "votes", default_value_t = 4)]
    pub votes: usize,
}

impl MethodArgs {
    pub fn config(&self, method: Method) -> Result<MethodConfig> {
        let mut c = MethodConfig::new(method);
        c.sampling.temperature = self.temperature.unwrap_or(method.default_temperature());
        c.sampling.top_k = self.top_k;
        c.sampling.top_p = self.top_p;
        c.sampling.min_p = self.min_p;
        c.em_inf.threshold = self.em_threshold;
        c.em_inf.lr = self.em_lr;
        c.em_inf.max_steps = self.em_steps;
        c.em_inf.kl_weight = self.em_kl;
        c.adaptive.ratio = self.at_ratio;
        c.adaptive.threshold = self.em_threshold;
        c.adaptive.tau_min = self.at_tau_min;
        c.adaptive.tau_max = self.at_tau_max;
        c.adaptive.tolerance = self.at_tolerance;
        c.adaptive.max_iterations = self.at_max_iterations;
        c.votes = self.votes;
        c.sampling.validate()?;
        c.em_inf.validate()?;
        if !(0.0 < c.adaptive.tau_min && c.adaptive.tau_min < c.adaptive.tau_max) {
            bail!("need 0 < --at-tau-min < --at-tau-max");
        }
        if c.votes == 0 {
            bail!("--votes must be at least 1");
        }
        Ok(c)
    }
}

pub fn parse_method(s: &str) -> Result<Method> {
    match Method::parse(s) {
        Some(m) => Ok(m),
        None => {
            let names: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
            bail!("unknown method {s:?} ({})", names.join(", "))
        }
    }
}
