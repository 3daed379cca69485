use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use entmin::engine::{Backend, Rng};
use entmin::methods::{EmInf, Method};
use entmin::models::generate::row_entropies;
use entmin::models::{BatchItem, KvCache, Logits, Model, TokenPicker};
use serde_json::json;

use super::method_args::{parse_method, MethodArgs};
use super::{on_device, ModelArgs};

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
    on_device!(a.model.device(!a.json)?, run_on(a))
}

/// The model under test and what the decode loop needs of it.
struct Subject<B: Backend> {
    model: Model<B>,
    banned_ids: Vec<u32>,
    /// One prompt per sequence and round, in order.
    prompts: Vec<Vec<u32>>,
    label: String,
}

fn subject<B: Backend>(b: &B, a: &Args) -> Result<Subject<B>> {
    let sequences = a.batch.max(1) * a.rounds.max(1);
    if let Some(name) = &a.synthetic {
        let dtype = super::parse_dtype(&a.model.dtype)?;
        let source = entmin::catalog::synthetic(name, a.seed)?;
        let config = source.config.clone();
        let model = Model::load(b, config.clone(), &source, dtype)?;
        let mut rng = Rng::new(a.seed ^ 0x5eed);
        let prompts = (0..sequences)
            .map(|_| (0..a.prompt_tokens).map(|_| (rng.next_u64() % config.vocab_size as u64) as u32).collect())
            .collect();
        return Ok(Subject { model, banned_ids: Vec::new(), prompts, label: format!("synthetic:{name}") });
    }
    let lm = a.model.load(b, !a.json)?;
    let prompts = match &a.prompts {
        Some(spec) => {
            let questions = entmin::dataset::load_prompts(spec, a.question_field.as_deref(), !a.json)?;
            if questions.len() < sequences {
                bail!("{spec} has {} prompts; --batch × --rounds needs {sequences}", questions.len());
            }
            questions[..sequences]
                .iter()
                .map(|q| entmin::eval::prompt_ids(&lm, q, None))
                .collect::<Result<Vec<_>>>()
                .with_context(|| format!("encoding the prompts of {spec}"))?
        }
        None => {
            let sentence = lm
                .tokenizer
                .encode("The quick brown fox jumps over the lazy dog while the sun sets slowly. ", false)?;
            vec![sentence.iter().copied().cycle().take(a.prompt_tokens).collect(); sequences]
        }
    };
    Ok(Subject { model: lm.model, banned_ids: lm.banned_ids, prompts, label: a.model.model.clone() })
}

/// Times and counts of the measured rounds.
#[derive(Default)]
struct Totals {
    prefill: Duration,
    decode: Duration,
    /// Time in the method's token choice (EM-INF loop, sampling), inside `decode`.
    pick: Duration,
    prompt_tokens: usize,
    new_tokens: usize,
    steps: usize,
    entropy_sum: f64,
    kv_bytes: usize,
}

fn run_on<B: Backend>(b: &B, a: Args) -> Result<()> {
    let method = parse_method(&a.method)?;
    let mut config = a.method_args.config(method)?;
    let t0 = Instant::now();
    let s = subject(b, &a)?;
    let load_s = t0.elapsed().as_secs_f64();
    config.sampling.banned = s.banned_ids.clone();
    let c = &s.model.config;
    let longest = s.prompts.iter().map(Vec::len).max().unwrap_or(0);
    if longest == 0 || longest + a.new_tokens > c.context_length {
        bail!("prompt {longest} + new {} tokens must fit the context {}", a.new_tokens, c.context_length);
    }
    // EM-INF is built here rather than behind `config.picker()` so that its statistics
    // (positions optimised, Adam steps) can be read after the run.
    let mut em_inf = (method == Method::EmInf).then(|| EmInf::new(config.em_inf, config.sampling.clone()));
    let mut other = config.picker::<B>();
    let picker: &mut dyn TokenPicker<B> = match em_inf.as_mut() {
        Some(e) => e,
        None => other.as_mut(),
    };

    // Warm up caches, thread pool, kernels and page faults.
    let mut cache = KvCache::new(b, c, 8)?;
    s.model.forward(b, &s.prompts[0][..4.min(s.prompts[0].len())], &mut cache, Logits::Last)?;
    s.model.forward(b, &s.prompts[0][..1], &mut cache, Logits::Last)?;
    b.synchronize()?;

    let batch = a.batch.max(1);
    let mut totals = Totals::default();
    for (round, prompts) in s.prompts.chunks(batch).enumerate() {
        let mut rngs: Vec<Rng> =
            (0..prompts.len()).map(|i| Rng::new(a.seed.wrapping_add((round * batch + i) as u64))).collect();
        let mut caches: Vec<KvCache<B>> =
            prompts.iter().map(|p| KvCache::new(b, c, p.len() + a.new_tokens)).collect::<Result<_, _>>()?;
        let t = Instant::now();
        let mut items: Vec<BatchItem<'_, B>> =
            caches.iter_mut().zip(prompts).map(|(cache, ids)| BatchItem { ids, cache }).collect();
        let mut logits = s.model.forward_batch(b, &mut items, Logits::Last)?;
        drop(items);
        b.synchronize()?;
        totals.prefill += t.elapsed();
        totals.prompt_tokens += prompts.iter().map(Vec::len).sum::<usize>();
        let t = Instant::now();
        for _ in 0..a.new_tokens {
            b.mask_columns(&mut logits, &s.banned_ids)?;
            totals.entropy_sum += row_entropies(b, &logits)?.iter().map(|&h| h as f64).sum::<f64>();
            let p = Instant::now();
            let toks: Vec<[u32; 1]> = picker.pick(b, &logits, &mut rngs)?.iter().map(|p| [p.token]).collect();
            totals.pick += p.elapsed();
            let mut items: Vec<BatchItem<'_, B>> =
                caches.iter_mut().zip(&toks).map(|(cache, t)| BatchItem { ids: t, cache }).collect();
            logits = s.model.forward_batch(b, &mut items, Logits::Last)?;
        }
        b.synchronize()?;
        totals.decode += t.elapsed();
        totals.new_tokens += prompts.len() * a.new_tokens;
        totals.steps += a.new_tokens;
        totals.kv_bytes = totals.kv_bytes.max(caches.iter().map(|c| c.size_bytes()).sum());
    }
    let mib = |bytes: usize| bytes as f64 / (1 << 20) as f64;
    let per_token = |d: Duration| d.as_secs_f64() * 1e3 / totals.new_tokens.max(1) as f64;
    let mut report = json!({
        "impl": "entmin",
        "model": s.label,
        "dtype": s.model.weight_types(),
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
        "prefill_tok_s": totals.prompt_tokens as f64 / totals.prefill.as_secs_f64(),
        "decode_tok_s": totals.new_tokens as f64 / totals.decode.as_secs_f64(),
        "decode_ms_per_step": totals.decode.as_secs_f64() * 1e3 / totals.steps.max(1) as f64,
        "pick_ms_per_token": per_token(totals.pick),
        "mean_entropy": totals.entropy_sum / totals.new_tokens.max(1) as f64,
        "weights_mb": mib(s.model.size_bytes()),
        "kv_cache_mb": mib(totals.kv_bytes),
        "peak_rss_mb": peak_rss_mib(),
    });
    if let Some(e) = &em_inf {
        report["em_inf_optimised_share"] = json!(e.optimised_positions as f64 / e.positions.max(1) as f64);
        report["em_inf_adam_steps_per_token"] = json!(e.steps as f64 / e.positions.max(1) as f64);
    }
    if a.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
