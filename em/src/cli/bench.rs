use std::time::Instant;

use anyhow::{bail, Context, Result};
use entmin::engine::{Backend, Rng};
use entmin::methods::Method;
use entmin::models::generate::{generate_batch, Decoder, GenerationParams};
use entmin::models::{KvCache, LoadedModel, Logits, Model};
use entmin::runtime::{BackendTask, Device, ModelTask};
use serde_json::json;

use super::method_args::{parse_method, MethodArgs};
use super::progress::Bars;
use super::ModelArgs;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Random weights in the shapes and storage formats of this catalog model instead of
    /// a file (no download; for machines the model cannot travel to). Prompts are random
    /// token ids.
    #[arg(long, value_name = "NAME", conflicts_with = "prompts")]
    pub synthetic: Option<String>,
    /// Prompt length for the prefill measurement (ignored with --prompts).
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Tokens decoded one at a time per sequence (end-of-turn tokens do not stop them).
    #[arg(long, default_value_t = 64)]
    pub new_tokens: usize,
    /// Sequences decoded together.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Decoding method of the decode measurement, with the same options as `generate`.
    #[arg(long, default_value = "plain")]
    pub method: String,
    #[command(flatten)]
    pub method_args: MethodArgs,
    /// Real prompts instead of a repeated sentence: gsm8k | math500 | gsm8k-train |
    /// math-train | PATH.jsonl, each question in the evaluation's prompt and chat template.
    #[arg(long)]
    pub prompts: Option<String>,
    /// Question field of a JSONL file given to --prompts.
    #[arg(long)]
    pub question_field: Option<String>,
    /// Measurements in a row, each on the next `--batch` prompts; times are summed.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON line (the shape benches/peers/hf_decode.py prints).
    #[arg(long)]
    pub json: bool,
}

/// Peak resident set size of this process in MiB (Linux), if known.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub fn run(a: Args) -> Result<()> {
    let verbose = !a.json;
    if a.synthetic.is_some() {
        let (device, choice) = Device::open(a.model.options()?.device)?;
        if verbose {
            eprintln!("[device: {choice}]");
        }
        return device.run(Synthetic(a));
    }
    let engine = a.model.engine(verbose)?;
    let load_s = engine.info().load_secs;
    engine.run(Loaded(a, load_s))
}

/// The model under test: a loaded one, or random weights without a tokenizer.
struct Subject<'m, B: Backend> {
    decoder: Decoder<'m, B>,
    /// One prompt per sequence and round, in order.
    prompts: Vec<Vec<u32>>,
    label: String,
}

fn sequences(a: &Args) -> usize {
    a.batch.max(1) * a.rounds.max(1)
}

/// `bench --synthetic NAME`: random weights in the catalog model's shapes and formats.
struct Synthetic(Args);

impl BackendTask for Synthetic {
    type Output = Result<()>;
    fn run<B: Backend>(self, b: &B) -> Result<()> {
        let a = self.0;
        let name = a.synthetic.as_deref().expect("synthetic bench");
        let t0 = Instant::now();
        let dtype = super::parse_dtype(&a.model.dtype)?;
        let source = entmin::catalog::synthetic(name, a.seed)?;
        let config = source.config.clone();
        let model = Model::load(b, config.clone(), &source, dtype)?;
        let load_s = t0.elapsed().as_secs_f64();
        let mut rng = Rng::new(a.seed ^ 0x5eed);
        let prompts = (0..sequences(&a))
            .map(|_| (0..a.prompt_tokens).map(|_| (rng.next_u64() % config.vocab_size as u64) as u32).collect())
            .collect();
        let decoder = Decoder { model: &model, tokenizer: None, stop_ids: &[], banned_ids: &[] };
        measure(b, Subject { decoder, prompts, label: format!("synthetic:{name}") }, &a, load_s)
    }
}

/// `bench -m MODEL`: a real model, with real or repeated-sentence prompts.
struct Loaded(Args, f64);

impl ModelTask for Loaded {
    type Output = Result<()>;
    fn run<B: Backend>(self, b: &B, lm: &LoadedModel<B>) -> Result<()> {
        let Loaded(a, load_s) = self;
        let sequences = sequences(&a);
        let prompts = match &a.prompts {
            Some(spec) => {
                let bars = Bars::new(!a.json);
                let questions = entmin::dataset::load_prompts(spec, a.question_field.as_deref(), &bars)?;
                if questions.len() < sequences {
                    bail!("{spec} has {} prompts; --batch × --rounds needs {sequences}", questions.len());
                }
                questions[..sequences]
                    .iter()
                    .map(|q| entmin::eval::prompt_ids(lm, q, None))
                    .collect::<Result<Vec<_>, _>>()
                    .with_context(|| format!("encoding the prompts of {spec}"))?
            }
            None => {
                let sentence = lm
                    .tokenizer
                    .encode("The quick brown fox jumps over the lazy dog while the sun sets slowly. ", false)?;
                vec![sentence.iter().copied().cycle().take(a.prompt_tokens).collect(); sequences]
            }
        };
        let subject = Subject { decoder: lm.into(), prompts, label: a.model.model.clone() };
        measure(b, subject, &a, load_s)
    }
}

/// Times and counts of the measured rounds.
#[derive(Default)]
struct Totals {
    prefill: f64,
    decode: f64,
    /// Time in the method's token choice (EM-INF loop, sampling), inside `decode`.
    pick: f64,
    prompt_tokens: usize,
    new_tokens: usize,
    steps: usize,
    entropy_sum: f64,
    sampled_entropy_sum: f64,
    em_inf_rows: usize,
    em_inf_optimised: usize,
    em_inf_steps: u64,
    kv_bytes: usize,
}

/// Warm up, then decode `--new-tokens` per sequence in rounds of `--batch` through the
/// generation loop every command uses (stop tokens ignored, so every round decodes the
/// same number of tokens).
fn measure<B: Backend>(b: &B, s: Subject<'_, B>, a: &Args, load_s: f64) -> Result<()> {
    let method = parse_method(&a.method)?;
    let config = a.method_args.config(method)?;
    if method == Method::SelfConsistency {
        bail!("bench measures one sequence per prompt: use --method plain with --batch N for N samples");
    }
    let c = &s.decoder.model.config;
    let longest = s.prompts.iter().map(Vec::len).max().unwrap_or(0);
    if longest == 0 || longest + a.new_tokens > c.context_length {
        bail!("prompt {longest} + new {} tokens must fit the context {}", a.new_tokens, c.context_length);
    }
    // Warm up caches, thread pool, kernels and page faults.
    let mut cache = KvCache::new(b, c, 8)?;
    s.decoder.model.forward(b, &s.prompts[0][..4.min(s.prompts[0].len())], &mut cache, Logits::Last)?;
    s.decoder.model.forward(b, &s.prompts[0][..1], &mut cache, Logits::Last)?;
    b.synchronize()?;

    let batch = a.batch.max(1);
    let params = GenerationParams { max_new_tokens: a.new_tokens, ignore_stops: true, ..GenerationParams::default() };
    let mut picker = config.picker::<B>();
    let mut totals = Totals::default();
    for (round, prompts) in s.prompts.chunks(batch).enumerate() {
        let seeds: Vec<u64> = (0..prompts.len()).map(|i| a.seed.wrapping_add((round * batch + i) as u64)).collect();
        let gens = generate_batch(b, s.decoder, prompts, &params, picker.as_mut(), &seeds, |_| ())?;
        let first = &gens[0];
        totals.prefill += first.prefill_secs;
        totals.decode += first.decode_secs;
        totals.pick += first.pick_secs;
        totals.prompt_tokens += prompts.iter().map(Vec::len).sum::<usize>();
        totals.steps += gens.iter().map(|g| g.tokens.len()).max().unwrap_or(0);
        totals.kv_bytes = totals.kv_bytes.max(gens.iter().map(|g| g.kv_cache_bytes).sum());
        for g in &gens {
            totals.new_tokens += g.tokens.len();
            totals.entropy_sum += g.entropies.iter().map(|&h| h as f64).sum::<f64>();
            totals.sampled_entropy_sum += g.sampled_entropies.iter().map(|&h| h as f64).sum::<f64>();
            totals.em_inf_rows += g.em_inf.len();
            totals.em_inf_optimised += g.em_inf.iter().filter(|s| s.steps > 0).count();
            totals.em_inf_steps += g.em_inf_steps();
        }
    }
    let mib = |bytes: usize| bytes as f64 / (1 << 20) as f64;
    let per_token = |secs: f64| secs * 1e3 / totals.new_tokens.max(1) as f64;
    let mean = |sum: f64| sum / totals.new_tokens.max(1) as f64;
    let mut report = json!({
        "impl": "entmin",
        "model": s.label,
        "dtype": s.decoder.model.weight_types(),
        "device": b.name(),
        "threads": rayon::current_num_threads(),
        "prompts": a.prompts.as_deref().unwrap_or(if a.synthetic.is_some() { "random ids" } else { "repeated sentence" }),
        "prompt_tokens": totals.prompt_tokens as f64 / s.prompts.len() as f64,
        "new_tokens": a.new_tokens,
        "rounds": a.rounds.max(1),
        "load_s": load_s,
        "batch": batch,
        "method": method.name(),
        "temperature": config.sampling.temperature,
        "prefill_tok_s": totals.prompt_tokens as f64 / totals.prefill,
        "decode_tok_s": totals.new_tokens as f64 / totals.decode,
        "decode_ms_per_step": totals.decode * 1e3 / totals.steps.max(1) as f64,
        "pick_ms_per_token": per_token(totals.pick),
        "mean_entropy": mean(totals.entropy_sum),
        "mean_sampled_entropy": mean(totals.sampled_entropy_sum),
        "weights_mb": mib(s.decoder.model.size_bytes()),
        "kv_cache_mb": mib(totals.kv_bytes),
        "peak_rss_mb": peak_rss_mib(),
    });
    if totals.em_inf_rows > 0 {
        report["em_inf_optimised_share"] = json!(totals.em_inf_optimised as f64 / totals.em_inf_rows as f64);
        report["em_inf_adam_steps_per_token"] = json!(totals.em_inf_steps as f64 / totals.em_inf_rows as f64);
    }
    if a.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
