use anyhow::Result;
use entmin::engine::Backend;
use entmin::models::generate::row_entropies;
use entmin::models::{KvCache, LoadedModel, Logits};
use serde_json::json;

use super::{model_task, ModelArgs, PromptFormat};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub prompt: String,
    #[command(flatten)]
    pub format: PromptFormat,
    /// How many (id, logit) pairs per position.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Print JSON: {"tokens":[…], "positions":[{"token":id,"entropy":h,"top":[[id,logit],…]}]}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let engine = a.model.engine(!a.json)?;
    model_task!(ShowLogits(Args) => run_on);
    engine.run(ShowLogits(a))
}

fn run_on<B: Backend>(backend: &B, lm: &LoadedModel<B>, a: Args) -> Result<()> {
    let ids = entmin::runtime::encode(lm, &a.format.prompt(&a.prompt, None))?;
    let mut cache = KvCache::new(backend, &lm.model.config, ids.len())?;
    if ids.len() > lm.model.config.context_length {
        anyhow::bail!("prompt of {} tokens exceeds the context length {}", ids.len(), lm.model.config.context_length);
    }
    let logits = lm.model.forward(backend, &ids, &mut cache, Logits::All)?;
    let entropies = row_entropies(backend, &logits)?;
    let host = backend.to_host_f32(&logits)?;
    let vocab = lm.model.config.vocab_size;
    let mut positions = Vec::with_capacity(ids.len());
    for (p, &token) in ids.iter().enumerate() {
        let row = &host[p * vocab..(p + 1) * vocab];
        let mut order: Vec<u32> = (0..vocab as u32).collect();
        let k = a.top.min(vocab);
        let cmp = |x: &u32, y: &u32| row[*y as usize].total_cmp(&row[*x as usize]).then(x.cmp(y));
        if k < vocab {
            order.select_nth_unstable_by(k, cmp);
            order.truncate(k);
        }
        order.sort_unstable_by(cmp);
        let top: Vec<(u32, f32)> = order.iter().map(|&i| (i, row[i as usize])).collect();
        positions.push((token, entropies[p], top));
    }
    if a.json {
        let out = json!({
            "tokens": ids,
            "positions": positions.iter().map(|(t, h, top)| json!({"token": t, "entropy": h, "top": top})).collect::<Vec<_>>(),
        });
        println!("{out}");
    } else {
        println!("{:>5} {:>8} {:>24} {:>9}  top next tokens", "pos", "id", "token", "entropy");
        for (p, (t, h, top)) in positions.iter().enumerate() {
            let show = |id: u32| format!("{:?}", lm.tokenizer.decode(&[id], false).unwrap_or_default());
            let tops: Vec<String> = top.iter().take(3).map(|(i, l)| format!("{} {l:.2}", show(*i))).collect();
            println!("{p:>5} {t:>8} {:>24} {h:>9.4}  {}", show(*t), tops.join(", "));
        }
    }
    Ok(())
}
