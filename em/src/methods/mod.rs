//! Decoding methods: plain sampling, EM-INF (the paper's inference-time method)
//! and the adaptive-temperature and self-consistency baselines. Each is a
//! [`TokenPicker`] for the shared batched generation loop, except
//! self-consistency, which samples N answers and votes.

pub mod adaptive_temperature;
pub mod em_inf;
pub mod self_consistency;

use entmin_engine::{Backend, EmInfParams, SamplingParams};
use entmin_models::{Sampler, TokenPicker};

pub use adaptive_temperature::{AdaptiveTemperature, AdaptiveTemperatureParams};
pub use em_inf::EmInf;

/// A decoding method (docs/methods.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// Plain sampling from the model's distribution.
    Plain,
    /// EM-INF: before each token is drawn, a few gradient steps on the logits lower their entropy.
    EmInf,
    /// The adaptive-temperature baseline: a temperature per token, found by bisection.
    AdaptiveTemp,
    /// The self-consistency baseline: N samples per question, majority vote on the answers.
    SelfConsistency,
}

impl Method {
    /// Every method, in the order they are listed to the user.
    pub const ALL: [Method; 4] = [Method::Plain, Method::EmInf, Method::AdaptiveTemp, Method::SelfConsistency];

    /// The method's name on the command line and in results ("plain", "em-inf", …).
    pub fn name(self) -> &'static str {
        match self {
            Method::Plain => "plain",
            Method::EmInf => "em-inf",
            Method::AdaptiveTemp => "adaptive-temp",
            Method::SelfConsistency => "self-consistency",
        }
    }

    /// The method called `s` (see [`Method::name`]), if any.
    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == s)
    }

    /// Sampling temperature when the user gives none: 0.1 for plain and EM-INF (the
    /// official evaluation's), 0.7 for self-consistency, which needs diverse samples.
    /// Adaptive temperature chooses its own.
    pub fn default_temperature(self) -> f32 {
        match self {
            Method::SelfConsistency => 0.7,
            _ => 0.1,
        }
    }
}

/// Everything a method needs besides the model.
#[derive(Clone, Debug)]
pub struct MethodConfig {
    /// Which decoding method to use.
    pub method: Method,
    /// Temperature, top-k, top-p, min-p applied when the token is drawn.
    pub sampling: SamplingParams,
    /// EM-INF's settings; used only by [`Method::EmInf`].
    pub em_inf: EmInfParams,
    /// Adaptive temperature's settings; used only by [`Method::AdaptiveTemp`].
    pub adaptive: AdaptiveTemperatureParams,
    /// Samples per question for self-consistency.
    pub votes: usize,
}

impl MethodConfig {
    /// Defaults for `method`: its default temperature, the official EM-INF and adaptive-temperature
    /// settings, and 4 votes.
    pub fn new(method: Method) -> Self {
        MethodConfig {
            method,
            sampling: SamplingParams { temperature: method.default_temperature(), ..Default::default() },
            em_inf: EmInfParams::default(),
            adaptive: AdaptiveTemperatureParams::default(),
            votes: 4,
        }
    }

    /// The per-token picker (self-consistency samples with plain sampling).
    pub fn picker<B: Backend>(&self) -> Box<dyn TokenPicker<B>> {
        match self.method {
            Method::Plain | Method::SelfConsistency => Box::new(Sampler(self.sampling.clone())),
            Method::EmInf => Box::new(EmInf::new(self.em_inf, self.sampling.clone())),
            Method::AdaptiveTemp => Box::new(AdaptiveTemperature::new(self.adaptive, self.sampling.clone())),
        }
    }
}
