//! One EM-FT step: the model samples answers to a prompt, and one AdamW update lowers
//! the entropy of its own next-token distributions over them. The checkpoint (a Hugging
//! Face folder), the optimiser state and metrics.jsonl go to OUT; run it again with a
//! higher step count and it resumes.
//!
//! ```text
//! cargo run --release --example emft_step -- [MODEL] [OUT] [STEPS]
//! ```
//! MODEL defaults to the smallest catalog model, SmolLM2-135M-Instruct; STEPS to 1.

use std::path::PathBuf;

use entmin::engine::Backend;
use entmin::progress::Quiet;
use entmin::runtime::{BackendTask, Device, DeviceKind};
use entmin::train::emft::{EmFtConfig, Reduction};
use entmin::train::TrainSetup;
use entmin::Error;

struct OneStep(TrainSetup, EmFtConfig);

impl BackendTask for OneStep {
    type Output = Result<(), Error>;
    fn run<B: Backend>(self, backend: &B) -> Self::Output {
        entmin::train::em_ft(backend, &self.0, self.1, &Quiet, &mut |m| {
            println!(
                "step {}: loss {:.3}, response entropy {:.3} nats, {:.0} tokens/response, gradient norm {:.3}",
                m.step, m.loss, m.mean_entropy, m.mean_response_tokens, m.grad_norm
            )
        })
    }
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let model = args.next().unwrap_or_else(|| "smollm2-135m-instruct".to_string());
    let out = args.next().map_or_else(|| std::env::temp_dir().join("entmin-emft-example"), PathBuf::from);
    let steps = args.next().and_then(|n| n.parse().ok()).unwrap_or(1);
    // Unlabelled prompts: EM-FT never reads an answer.
    std::fs::create_dir_all(&out).map_err(|e| Error::io("creating", &out, e))?;
    let prompts = out.join("prompts.jsonl");
    std::fs::write(&prompts, "{\"question\": \"What is 6 times 7?\"}\n")
        .map_err(|e| Error::io("writing", &prompts, e))?;
    let setup = TrainSetup {
        steps,
        head_chunk: 64,
        // The tied embedding stays fixed: no optimiser moments for its 28 M values.
        freeze: vec!["embed_tokens".into()],
        checkpoint_every: 1,
        resume: true,
        ..TrainSetup::new(model, prompts.display().to_string(), out.join("run"))
    };
    let config = EmFtConfig {
        samples_per_prompt: 2,
        max_new_tokens: 16,
        rollout_temperature: 1.0,
        batch: 1,
        steps: setup.steps,
        seed: setup.seed,
        reduction: Reduction::Sum,
        head_chunk: setup.head_chunk,
        recompute: setup.recompute,
    };
    let (device, choice) = Device::open(DeviceKind::Cpu)?;
    eprintln!("[EM-FT on {choice}, output in {}]", setup.out.display());
    device.run(OneStep(setup, config))
}
