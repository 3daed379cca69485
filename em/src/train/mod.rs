//! Training: AdamW and schedules (`optim`), crash-safe checkpoints (`checkpoint`), the
//! state every method shares (`trainable`), EM-FT (`emft`) and EM-RL (`emrl`, its
//! `rewards`, `advantage` and `rl_objective`); `run` drives any [`Method`] with a metrics JSONL and `--resume`.

pub mod advantage;
pub mod checkpoint;
pub mod emft;
pub mod emrl;
pub mod optim;
pub mod rewards;
pub mod rl_objective;
pub mod setup;
pub mod trainable;

pub use setup::{Prepared, TrainSetup};

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::engine::Backend;
use crate::error::{Error, Result};
use crate::models::LoadedModel;
use crate::progress::Progress;

use optim::{AdamW, AdamWConfig};
use serde::Serialize;

/// A training method that [`run`] drives one step at a time.
pub trait Method<B: Backend> {
    /// One step's figures, written as a line of the metrics JSONL.
    type Metrics: Serialize;
    /// What a progress display calls the steps ("EM-FT steps").
    const STEPS_LABEL: &'static str;
    /// A step's figures in a few words, for a progress display.
    fn summary(m: &Self::Metrics) -> String;
    /// Steps completed.
    fn steps_done(&self) -> u64;
    /// Run the next step on `prompts` (token ids, chat template applied) and return its figures.
    fn step(&mut self, backend: &B, prompts: &[Vec<u32>]) -> Result<Self::Metrics>;
    /// The model and the optimiser, for checkpoints.
    fn state(&self) -> (&LoadedModel<B>, &AdamW);
}

impl<B: Backend> Method<B> for emft::EmFt<'_, B> {
    type Metrics = emft::StepMetrics;
    const STEPS_LABEL: &'static str = "EM-FT steps";
    fn summary(m: &Self::Metrics) -> String {
        format!(
            "loss {:.3}, entropy {:.3}, {:.0} tokens/response, {:.1} tok/s",
            m.loss, m.mean_entropy, m.mean_response_tokens, m.tokens_per_sec
        )
    }
    fn steps_done(&self) -> u64 {
        self.t.opt.step
    }
    fn step(&mut self, backend: &B, prompts: &[Vec<u32>]) -> Result<Self::Metrics> {
        emft::EmFt::step(self, backend, prompts)
    }
    fn state(&self) -> (&LoadedModel<B>, &AdamW) {
        (self.t.lm, &self.t.opt)
    }
}

impl<B: Backend> Method<B> for emrl::EmRl<'_, B> {
    type Metrics = emrl::RlStepMetrics;
    const STEPS_LABEL: &'static str = "EM-RL steps";
    fn summary(m: &Self::Metrics) -> String {
        format!(
            "reward {:.3}, entropy {:.3}, kl {:.2e}, {:.0} tokens/response",
            m.mean_reward, m.mean_entropy, m.kl, m.mean_response_tokens
        )
    }
    fn steps_done(&self) -> u64 {
        emrl::EmRl::steps_done(self)
    }
    fn step(&mut self, backend: &B, prompts: &[Vec<u32>]) -> Result<Self::Metrics> {
        emrl::EmRl::step(self, backend, prompts)
    }
    fn state(&self) -> (&LoadedModel<B>, &AdamW) {
        (self.t.lm, &self.t.opt)
    }
}

/// Where and how [`run`] writes a run's output.
pub struct RunOptions {
    /// Output folder: checkpoints (step-NNNNNN/), metrics.jsonl and latest.json.
    pub out: PathBuf,
    /// Write a checkpoint every this many steps (and always after the last).
    pub checkpoint_every: u64,
    /// Everything that defines the run; a resumed run must have the same (steps may grow).
    pub settings: serde_json::Value,
}

/// The optimiser to continue from OUT's latest checkpoint, after checking that it
/// belongs to this run; None when OUT has no checkpoint.
pub fn resume_optimizer<B: Backend>(lm: &LoadedModel<B>, opts: &RunOptions) -> Result<Option<AdamW>> {
    let Some(latest) = checkpoint::latest(&opts.out)? else { return Ok(None) };
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("steps");
        }
        v
    };
    if strip(&latest.settings) != strip(&opts.settings) {
        return Err(Error::training(format!(
            "{}: the checkpoint was made with other settings ({}); use another --out or the same settings",
            opts.out.join("latest.json").display(),
            latest.settings
        )));
    }
    let sizes: Vec<(String, usize)> = lm.model.named_parameters().into_iter().map(|(n, t)| (n, t.len())).collect();
    Ok(Some(checkpoint::load_optimizer(&opts.out, &latest, &sizes)?))
}

/// The model folder of OUT's latest checkpoint, if any.
pub fn latest_model(out: &Path) -> Result<Option<PathBuf>> {
    Ok(checkpoint::latest(out)?.map(|l| out.join(l.folder)))
}

/// Keep the metrics of steps ≤ `done` (a resumed run rewrites what followed).
fn trim_metrics(path: &Path, done: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .is_ok_and(|m| m.get("step").and_then(|s| s.as_u64()).is_some_and(|s| s <= done))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    checkpoint::write_atomically(path, kept.as_bytes())
}

/// Train until `steps` steps are done, checkpointing as asked; `on_step` sees each
/// step's metrics after they are written.
pub fn run<B: Backend, M: Method<B>>(
    backend: &B,
    method: &mut M,
    prompts: &[Vec<u32>],
    steps: u64,
    opts: &RunOptions,
    on_step: &mut dyn FnMut(&M::Metrics),
) -> Result<()> {
    if prompts.is_empty() {
        return Err(Error::invalid("no prompts to train on"));
    }
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io("creating", &opts.out, e))?;
    let metrics_path = opts.out.join("metrics.jsonl");
    trim_metrics(&metrics_path, method.steps_done())?;
    while method.steps_done() < steps {
        let m = method.step(backend, prompts)?;
        let io = |e| Error::io("writing", &metrics_path, e);
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&metrics_path).map_err(io)?;
        writeln!(f, "{}", serde_json::to_string(&m).expect("metrics serialise")).map_err(io)?;
        crate::models::durable::sync_file(&f, &metrics_path).map_err(io)?;
        on_step(&m);
        let done = method.steps_done();
        if done % opts.checkpoint_every.max(1) == 0 || done == steps {
            let (lm, opt) = method.state();
            checkpoint::save(backend, lm, opt, done, &opts.out, &opts.settings)?;
        }
    }
    Ok(())
}

/// EM-FT from `setup` until its step count: the model, optimiser and prompts prepared
/// (resuming from the output folder when `setup.resume`), then training with a metrics
/// line per step and checkpoints, `on_step` seeing each step's metrics.
pub fn em_ft<B: Backend>(
    backend: &B,
    setup: &TrainSetup,
    config: emft::EmFtConfig,
    progress: &dyn Progress,
    on_step: &mut dyn FnMut(&emft::StepMetrics),
) -> Result<()> {
    let settings = serde_json::to_value(emft::EmFtConfig { steps: 0, ..config.clone() }).expect("config serialises");
    let mut p = setup.prepare(backend, settings, 1, false, progress)?;
    progress.note(&format!(
        "EM-FT: {} prompts, {} per step × {} samples, {} steps, lr {}, {} parameters",
        p.prompts.len(),
        config.batch,
        config.samples_per_prompt,
        setup.steps,
        setup.lr,
        p.lm.model.named_parameters().iter().map(|(_, t)| t.len()).sum::<usize>()
    ));
    let mut ft = emft::EmFt::new(backend, &mut p.lm, p.opt, config)?;
    run_shown(backend, &mut ft, &p.prompts, setup.steps, &p.opts, progress, on_step)
}

/// EM-RL from `setup` until its step count, as [`em_ft`] does for EM-FT; the reference
/// policy of the KL term is the model the run started from (loaded only when the KL
/// coefficient is positive).
pub fn em_rl<B: Backend>(
    backend: &B,
    setup: &TrainSetup,
    config: emrl::EmRlConfig,
    progress: &dyn Progress,
    on_step: &mut dyn FnMut(&emrl::RlStepMetrics),
) -> Result<()> {
    config.validate()?;
    let settings = serde_json::to_value(emrl::EmRlConfig { steps: 0, ..config.clone() }).expect("config serialises");
    let updates = config.updates_per_step();
    let needs_gold = config.reward.has(rewards::RewardKind::Verified);
    let mut p = setup.prepare(backend, settings, updates, needs_gold, progress)?;
    let reference = match config.kl_coef > 0.0 {
        true => Some(crate::models::load(backend, &p.base, crate::engine::DType::F32)?),
        false => None,
    };
    progress.note(&format!(
        "EM-RL ({} reward, {:?} advantage): {} prompts, {} per step × {} rollouts, {} steps of {updates} updates, lr {}, reference {}",
        config.reward,
        config.advantage,
        p.prompts.len(),
        config.batch,
        config.rollouts_per_prompt,
        setup.steps,
        setup.lr,
        if reference.is_some() { p.base.display().to_string() } else { "none (KL coefficient 0)".into() }
    ));
    let tests = config.reward.has(rewards::RewardKind::Tests);
    if tests && p.tasks.len() != p.prompts.len() {
        return Err(Error::invalid(
            "the tests reward needs code prompts with tests: --prompts humaneval, or a JSONL file with --test-field",
        ));
    }
    let tasks = std::mem::take(&mut p.tasks);
    let golds = std::mem::take(&mut p.golds);
    let mut rl = emrl::EmRl::new(backend, &mut p.lm, reference.as_ref(), p.opt, config)?;
    if needs_gold {
        rl = rl.with_golds(golds);
    }
    if tests {
        let pool = crate::eval::CodeOptions::default().pool()?;
        progress.note(&format!("tests reward: sandbox {}", pool.sandbox().isolation().describe()));
        rl = rl.with_tests(tasks, pool);
    }
    run_shown(backend, &mut rl, &p.prompts, setup.steps, &p.opts, progress, on_step)
}

/// A method's settings, able to run a whole training run from a [`TrainSetup`]: what lets
/// a client (the CLI's `ft` and `rl`) drive any method through one code path.
pub trait RunConfig {
    /// One step's figures.
    type Metrics: Serialize;
    /// The whole run ([`em_ft`], [`em_rl`]).
    fn train<B: Backend>(
        self,
        backend: &B,
        setup: &TrainSetup,
        progress: &dyn Progress,
        on_step: &mut dyn FnMut(&Self::Metrics),
    ) -> Result<()>;
}

impl RunConfig for emft::EmFtConfig {
    type Metrics = emft::StepMetrics;
    fn train<B: Backend>(
        self,
        backend: &B,
        setup: &TrainSetup,
        progress: &dyn Progress,
        on_step: &mut dyn FnMut(&Self::Metrics),
    ) -> Result<()> {
        em_ft(backend, setup, self, progress, on_step)
    }
}

impl RunConfig for emrl::EmRlConfig {
    type Metrics = emrl::RlStepMetrics;
    fn train<B: Backend>(
        self,
        backend: &B,
        setup: &TrainSetup,
        progress: &dyn Progress,
        on_step: &mut dyn FnMut(&Self::Metrics),
    ) -> Result<()> {
        em_rl(backend, setup, self, progress, on_step)
    }
}

/// [`run`] with a progress display of the steps, each advanced with the step's summary.
fn run_shown<B: Backend, M: Method<B>>(
    backend: &B,
    method: &mut M,
    prompts: &[Vec<u32>],
    steps: u64,
    opts: &RunOptions,
    progress: &dyn Progress,
    on_step: &mut dyn FnMut(&M::Metrics),
) -> Result<()> {
    progress.begin(M::STEPS_LABEL, steps, method.steps_done());
    run(backend, method, prompts, steps, opts, &mut |m| {
        progress.advance(1, &M::summary(m));
        on_step(m);
    })?;
    progress.finish();
    Ok(())
}

/// A fresh optimiser for `lm` that trains every parameter except those whose name
/// contains one of `freeze` (`--freeze`).
pub fn new_optimizer<B: Backend>(lm: &LoadedModel<B>, config: AdamWConfig, freeze: &[String]) -> Result<AdamW> {
    let params: Vec<(String, usize)> = lm.model.named_parameters().into_iter().map(|(n, t)| (n, t.len())).collect();
    Ok(AdamW::new(config, &moment_sizes(&params, freeze)?))
}

/// Moments per parameter: its size, or 0 (frozen) when its name contains one of
/// `freeze`. A pattern that matches nothing, or one that freezes everything, is an error.
pub fn moment_sizes(params: &[(String, usize)], freeze: &[String]) -> Result<Vec<usize>> {
    if let Some(p) = freeze.iter().find(|p| !params.iter().any(|(n, _)| n.contains(p.as_str()))) {
        let example = params.first().map_or("", |(n, _)| n.as_str());
        return Err(Error::invalid(format!("--freeze {p:?} matches no parameter (names look like {example:?})")));
    }
    let frozen = |name: &str| freeze.iter().any(|p| name.contains(p.as_str()));
    if params.iter().all(|(n, _)| frozen(n)) {
        return Err(Error::invalid(format!("--freeze {freeze:?} freezes every parameter: nothing left to train")));
    }
    Ok(params.iter().map(|(n, size)| if frozen(n) { 0 } else { *size }).collect())
}

#[cfg(test)]
mod tests {
    use super::moment_sizes;

    #[test]
    fn freeze_patterns_select_parameters_by_name() {
        let params: Vec<(String, usize)> =
            [("model.embed_tokens.weight", 6), ("model.layers.0.mlp.up_proj.weight", 4), ("model.norm.weight", 2)]
                .iter()
                .map(|(n, s)| (n.to_string(), *s))
                .collect();
        assert_eq!(moment_sizes(&params, &[]).unwrap(), [6, 4, 2]);
        assert_eq!(moment_sizes(&params, &["embed_tokens".into()]).unwrap(), [0, 4, 2]);
        assert_eq!(moment_sizes(&params, &["layers.0.".into(), "norm".into()]).unwrap(), [6, 0, 0]);
        let err = moment_sizes(&params, &["lm_head".into()]).unwrap_err().to_string();
        assert!(err.contains("lm_head") && err.contains("matches no parameter"), "{err}");
        assert!(moment_sizes(&params, &["model.".into()]).is_err(), "nothing left to train");
    }
}
