//! `entmin rl`: EM-RL (em/src/train/emrl.rs) on the CPU backend: rollouts, the
//! old-policy and reference passes, PPO updates; progress, metrics JSONL, atomic Hugging
//! Face checkpoints and exact `--resume`. The frozen reference is the model the run
//! started from, loaded once beside the policy, and only when the KL coefficient is not 0.

use anyhow::Result;
use entmin::train::advantage::Advantage;
use entmin::train::emrl::EmRlConfig;
use entmin::train::rewards::{Reward, RewardReduction};
use entmin::train::rl_objective::KlEstimator;

use super::train_args::TrainArgs;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub train: TrainArgs,
    /// A term or a weighted sum such as `verified+0.5*token` (each term normalised within
    /// the group before the sum). Label-free: token (−entropy), sequence
    /// (log-probability), self-consistency (majority agreement), answer-cluster (the
    /// share of the group with the same answer). Labelled: verified (the answer equals the
    /// gold one), tests (the program passes the prompt's tests; code prompts). Controls:
    /// random (a seeded coin), format (a \boxed{} answer is present).
    #[arg(long, default_value = "token")]
    pub reward: String,
    /// rloo (r − mean of the others) | grpo ((r − mean)/(std + 1e-6)) | grpo-no-std (r − mean).
    #[arg(long, default_value = "rloo")]
    pub advantage: String,
    /// mean (the official code) | sum (the paper's formulas) over response tokens.
    #[arg(long, default_value = "mean")]
    pub reward_reduction: String,
    #[arg(long, default_value_t = 4)]
    pub rollouts_per_prompt: usize,
    #[arg(long, default_value_t = 1.0)]
    pub rollout_temperature: f32,
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Prompts per step.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// PPO clip ε.
    #[arg(long, default_value_t = 0.2)]
    pub clip: f32,
    #[arg(long, default_value_t = 0.001)]
    pub kl_coef: f32,
    /// low_var_kl (k3) | k1 | k2
    #[arg(long, default_value = "low_var_kl")]
    pub kl_estimator: String,
    /// Coefficient of the entropy bonus (the official config: 0.001, which works against EM).
    #[arg(long, default_value_t = 0.0)]
    pub entropy_bonus: f32,
    #[arg(long, default_value_t = 1)]
    pub ppo_epochs: usize,
    /// Responses per optimiser update (0: the whole step).
    #[arg(long, default_value_t = 0)]
    pub mini_batch: usize,
}

pub fn run(a: Args) -> Result<()> {
    let t = &a.train;
    let config = EmRlConfig {
        reward: Reward::parse(&a.reward)?,
        advantage: Advantage::parse(&a.advantage)?,
        reward_reduction: match a.reward_reduction.as_str() {
            "mean" => RewardReduction::Mean,
            "sum" => RewardReduction::Sum,
            other => anyhow::bail!("unknown reward reduction {other:?} (mean, sum)"),
        },
        rollouts_per_prompt: a.rollouts_per_prompt,
        rollout_temperature: a.rollout_temperature,
        max_new_tokens: a.max_new_tokens,
        clip: a.clip,
        kl_coef: a.kl_coef,
        kl_estimator: KlEstimator::parse(&a.kl_estimator)?,
        entropy_bonus: a.entropy_bonus,
        ppo_epochs: a.ppo_epochs,
        mini_batch: a.mini_batch,
        batch: a.batch,
        steps: t.steps,
        seed: t.seed,
        head_chunk: t.head_chunk,
        recompute: t.recompute,
    };
    t.launch(config)
}
