use anyhow::Result;
use entmin::engine::Backend;
use entmin::models::LoadedModel;

use super::{model_task, ModelArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
}

pub fn run(a: Args) -> Result<()> {
    let engine = a.model.engine_on_cpu(false)?;
    model_task!(Info(Args) => show);
    engine.run(Info(a))
}

fn show<B: Backend>(_: &B, lm: &LoadedModel<B>, _: Args) -> Result<()> {
    let c = &lm.model.config;
    let gib = |b: usize| b as f64 / (1u64 << 30) as f64;
    let kv_per_token = 2 * c.n_layers * c.kv_dim() * 4;
    println!("model          {}", lm.path.display());
    println!("format         {:?} ({})", lm.format, lm.file_dtypes);
    println!("architecture   {}", c.arch.name());
    println!("parameters     {:.1} M", c.n_params() as f64 / 1e6);
    println!("layers         {}", c.n_layers);
    println!("hidden         {} (ffn {})", c.hidden_size, c.intermediate_size);
    println!("heads          {} query / {} kv, head_dim {}", c.n_heads, c.n_kv_heads, c.head_dim);
    println!(
        "vocabulary     {} rows ({} tokenizer ids, {} never sampled)",
        c.vocab_size,
        lm.tokenizer.vocab_size(),
        lm.banned_ids.len()
    );
    println!("context        {} tokens", c.context_length);
    println!("rope theta     {}", c.rope_theta);
    println!("rms eps        {:e}", c.rms_eps);
    println!("tied head      {}", c.tie_embeddings);
    println!("qkv bias       {}", c.qkv_bias);
    println!("weights        {:.3} GiB in memory: {}", gib(lm.model.size_bytes()), lm.model.weight_types());
    println!(
        "kv cache       {:.1} KiB per token (f32), {:.3} GiB at full context",
        kv_per_token as f64 / 1024.0,
        gib(kv_per_token * c.context_length)
    );
    println!("chat template  {}", if lm.chat.is_model_template() { "model's own (Jinja)" } else { "ChatML fallback" });
    let stops: Vec<String> =
        lm.stop_ids.iter().map(|&i| format!("{i} {:?}", lm.tokenizer.id_to_token(i).unwrap_or_default())).collect();
    println!("stop tokens    {}", stops.join(", "));
    println!("tensors        (name, file type, held as, resident bytes)");
    for (name, t) in lm.model.matrices() {
        let stored = lm.file_types.get(name.as_str()).map_or("?", String::as_str);
        println!("  {name:<40} {stored:<6} {:<6} {:>12}", t.dtype().name(), t.size_bytes());
    }
    Ok(())
}
