use std::time::Instant;

use anyhow::{bail, Result};
use entmin::engine::{Backend, Rng, SamplingParams};
use entmin::models::generate::row_entropies;
use entmin::models::{BatchItem, KvCache, Logits};
use serde_json::json;

use super::{on_device, ModelArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt length for the prefill measurement.
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Tokens decoded one at a time for the decode measurement.
    #[arg(long, default_value_t = 64)]
    pub new_tokens: usize,
    /// Sequences decoded together (each gets the same prompt).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Decoding method of the decode measurement (plain = greedy; em-inf with its defaults).
    #[arg(long, default_value = "plain")]
    pub method: String,
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

fn run_on<B: Backend>(b: &B, a: Args) -> Result<()> {
    let t0 = Instant::now();
    let lm = a.model.load(b, !a.json)?;
    let load_s = t0.elapsed().as_secs_f64();
    let c = &lm.model.config;
    if a.prompt_tokens == 0 || a.prompt_tokens + a.new_tokens > c.context_length {
        bail!("prompt {} + new {} tokens must fit the context {}", a.prompt_tokens, a.new_tokens, c.context_length);
    }
    let sentence =
        lm.tokenizer.encode("The quick brown fox jumps over the lazy dog while the sun sets slowly. ", false)?;
    let prompt: Vec<u32> = sentence.iter().copied().cycle().take(a.prompt_tokens).collect();
    let method = super::method_args::parse_method(&a.method)?;
    let mut config = entmin::methods::MethodConfig::new(method);
    config.sampling = SamplingParams { banned: lm.banned_ids.clone(), ..SamplingParams::greedy() };
    let mut picker = config.picker::<B>();
    let batch = a.batch.max(1);
    let mut rngs: Vec<Rng> = (0..batch as u64).map(Rng::new).collect();

    // Warm up caches, thread pool and page faults.
    let mut cache = KvCache::new(b, c, 8)?;
    lm.model.forward(b, &prompt[..4], &mut cache, Logits::Last)?;
    lm.model.forward(b, &prompt[4..5], &mut cache, Logits::Last)?;

    let mut caches: Vec<KvCache<B>> =
        (0..batch).map(|_| KvCache::new(b, c, a.prompt_tokens + a.new_tokens)).collect::<Result<_, _>>()?;
    let t = Instant::now();
    let mut items: Vec<BatchItem<'_, B>> = caches.iter_mut().map(|cache| BatchItem { ids: &prompt, cache }).collect();
    let mut logits = lm.model.forward_batch(b, &mut items, Logits::Last)?;
    drop(items);
    b.synchronize()?;
    let prefill_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..a.new_tokens {
        b.mask_columns(&mut logits, &lm.banned_ids)?;
        row_entropies(b, &logits)?;
        let toks: Vec<[u32; 1]> = picker.pick(b, &logits, &mut rngs)?.iter().map(|p| [p.token]).collect();
        let mut items: Vec<BatchItem<'_, B>> =
            caches.iter_mut().zip(&toks).map(|(cache, t)| BatchItem { ids: t, cache }).collect();
        logits = lm.model.forward_batch(b, &mut items, Logits::Last)?;
    }
    let decode_s = t.elapsed().as_secs_f64();
    let mib = |bytes: usize| bytes as f64 / (1 << 20) as f64;
    let report = json!({
        "impl": "entmin",
        "model": a.model.model,
        "dtype": lm.model.weight_dtype.name(),
        "device": b.name(),
        "threads": rayon::current_num_threads(),
        "prompt_tokens": a.prompt_tokens,
        "new_tokens": a.new_tokens,
        "load_s": load_s,
        "batch": batch,
        "method": method.name(),
        "prefill_tok_s": (batch * a.prompt_tokens) as f64 / prefill_s,
        "decode_tok_s": (batch * a.new_tokens) as f64 / decode_s,
        "weights_mb": mib(lm.model.size_bytes()),
        "kv_cache_mb": mib(caches.iter().map(|c| c.size_bytes()).sum()),
        "peak_rss_mb": peak_rss_mib(),
    });
    if a.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
