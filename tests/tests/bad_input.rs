//! Broken files and contradictory configs give clear errors naming the file and
//! the problem, never a panic; a well-formed tiny GGUF (written here in
//! llama.cpp's conventions) loads and matches the f64 reference.

use entmin_engine::cpu::CpuBackend;
use entmin_engine::{Backend, DType};
use entmin_models::export::save_hf_folder;
use entmin_models::{load, Architecture, KvCache, Logits};
use entmin_tests::gguf_writer::{tiny_model_gguf, Meta};
use entmin_tests::tiny::{config, random_weights, reference_forward};
use entmin_tests::{assert_close, scratch_dir};

fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Logits at every position of `ids`, from a fresh cache.
fn all_logits(m: &entmin_models::LoadedModel<CpuBackend>, ids: &[u32]) -> Vec<f32> {
    let mut cache = KvCache::new(&CpuBackend, &m.model.config, ids.len()).unwrap();
    CpuBackend.to_host_f32(&m.model.forward(&CpuBackend, ids, &mut cache, Logits::All).unwrap()).unwrap()
}

fn load_err(path: &std::path::Path) -> String {
    match load(&CpuBackend, path, DType::F32) {
        Ok(_) => panic!("{} loaded but should not", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn tiny_gguf_loads_and_matches_reference() {
    let dir = scratch_dir("tiny-gguf");
    for arch in [Architecture::Llama, Architecture::Qwen2] {
        let c = config(arch, arch == Architecture::Llama);
        let w = random_weights(&c, 21);
        let path = write(&dir, &format!("{}.gguf", arch.name()), &tiny_model_gguf(&c, &w).build());
        let lm = load(&CpuBackend, &path, DType::F32).unwrap();
        assert_eq!(lm.model.config, c, "config read back from GGUF metadata");
        let ids = [3u32, 9, 27, 81, 2];
        let mut cache = KvCache::new(&CpuBackend, &c, ids.len()).unwrap();
        let got = lm.model.forward(&CpuBackend, &ids, &mut cache, Logits::All).unwrap();
        assert_close(arch.name(), &CpuBackend.to_host_f32(&got).unwrap(), &reference_forward(&c, &w, &ids), 1e-4);
    }
}

#[test]
fn broken_gguf_files_are_named_errors() {
    let dir = scratch_dir("bad-gguf");
    let c = config(Architecture::Llama, true);
    let w = random_weights(&c, 22);
    let good = tiny_model_gguf(&c, &w);
    let bytes = good.build();

    let p = write(&dir, "truncated.gguf", &bytes[..bytes.len() - 100]);
    let e = load_err(&p);
    assert!(e.contains("truncated.gguf") && e.contains("beyond the end of the file"), "{e}");

    let p = write(&dir, "header.gguf", &bytes[..40]);
    let e = load_err(&p);
    assert!(e.contains("header.gguf") && e.contains("truncated"), "{e}");

    let mut bad_magic = bytes.clone();
    bad_magic[..4].copy_from_slice(b"GGML");
    let e = load_err(&write(&dir, "magic.gguf", &bad_magic));
    assert!(e.contains("magic.gguf") && e.contains("not a GGUF file"), "{e}");

    let e = load_err(&write(&dir, "empty.gguf", &[]));
    assert!(e.contains("empty.gguf"), "{e}");

    let mut g = tiny_model_gguf(&c, &w);
    g.meta("general.architecture", Meta::Str("mamba".into()));
    let e = load_err(&write(&dir, "arch.gguf", &g.build()));
    assert!(e.contains("arch.gguf") && e.contains("unknown architecture \"mamba\""), "{e}");

    // IQ2_XXS (ggml type 16): 256 elements in 66 bytes, a type entmin does not decode.
    let mut g = tiny_model_gguf(&c, &w);
    g.tensor_raw("output_norm.weight", &[256], 16, vec![0; 66]);
    let e = load_err(&write(&dir, "quant.gguf", &g.build()));
    assert!(e.contains("quant.gguf") && e.contains("output_norm.weight") && e.contains("not supported"), "{e}");

    let mut g = tiny_model_gguf(&c, &w);
    g.meta("llama.feed_forward_length", Meta::U32(64));
    let e = load_err(&write(&dir, "contradiction.gguf", &g.build()));
    assert!(e.contains("contradiction.gguf") && e.contains("expected shape [64, 48], found [80, 48]"), "{e}");

    let mut g = tiny_model_gguf(&c, &w);
    let mut norm = w.0["model.norm.weight"].data.clone();
    norm[7] = f32::NAN;
    g.tensor_f32("output_norm.weight", &[48], &norm);
    let e = load_err(&write(&dir, "nan.gguf", &g.build()));
    assert!(e.contains("nan.gguf") && e.contains("model.norm.weight") && e.contains("non-finite"), "{e}");

    let mut g = tiny_model_gguf(&c, &w);
    g.meta("llama.attention.head_count_kv", Meta::U32(4));
    let e = load_err(&write(&dir, "heads.gguf", &g.build()));
    assert!(e.contains("heads.gguf") && e.contains("not a multiple of 4 kv heads"), "{e}");

    let e = load_err(&dir.join("missing.gguf"));
    assert!(e.contains("missing.gguf") && e.contains("no such file"), "{e}");
}

/// Tensors the decoder does not read: an error where they change the maths, a notice
/// naming them where they cannot.
#[test]
fn unused_tensors_are_refused_or_named() {
    let dir = scratch_dir("unused-gguf");
    let c = config(Architecture::Llama, true);
    let w = random_weights(&c, 25);
    let clean = load(&CpuBackend, &write(&dir, "clean.gguf", &tiny_model_gguf(&c, &w).build()), DType::F32).unwrap();
    assert!(clean.notices.is_empty(), "{:?}", clean.notices);

    // Llama 3.1 stores its rope scaling as per-dimension frequency factors.
    let mut g = tiny_model_gguf(&c, &w);
    g.tensor_f32("rope_freqs.weight", &[4], &[1.0, 1.0, 2.0, 8.0]);
    let e = load_err(&write(&dir, "rope-freqs.gguf", &g.build()));
    assert!(e.contains("rope-freqs.gguf") && e.contains("rope_freqs.weight") && e.contains("not implement"), "{e}");

    // A q-norm (Qwen3, OLMo) would change every attention score.
    let mut g = tiny_model_gguf(&c, &w);
    g.tensor_f32("blk.1.attn_q_norm.weight", &[8], &[1.0; 8]);
    let e = load_err(&write(&dir, "q-norm.gguf", &g.build()));
    assert!(
        e.contains("q-norm.gguf") && e.contains("blk.1.attn_q_norm.weight") && e.contains("change its output"),
        "{e}"
    );

    // Outside the decoder, or recomputed by it: loaded, with a notice that names them.
    let mut g = tiny_model_gguf(&c, &w);
    g.tensor_f32("blk.0.attn_rot_embd", &[4], &[1.0; 4]);
    g.tensor_f32("mm.projector.weight", &[2, 2], &[0.5; 4]);
    let lm = load(&CpuBackend, &write(&dir, "extra.gguf", &g.build()), DType::F32).unwrap();
    assert_eq!(lm.notices.len(), 1, "{:?}", lm.notices);
    let n = &lm.notices[0];
    assert!(n.contains("extra.gguf") && n.contains("2 tensor(s)") && n.contains("mm.projector.weight"), "{n}");
    assert_eq!(all_logits(&lm, &[1, 2, 3]), all_logits(&clean, &[1, 2, 3]), "ignored tensors change nothing");
}

/// A generation the context cannot hold is capped, and says so in its stop reason.
#[test]
fn max_new_tokens_beyond_the_context_stop_with_context_full() {
    use entmin_models::{generate, GenerationParams, Sampler, StopReason};
    let dir = scratch_dir("context-full");
    let c = config(Architecture::Qwen2, false);
    let w = random_weights(&c, 26);
    let mut lm = load(&CpuBackend, &write(&dir, "tiny.gguf", &tiny_model_gguf(&c, &w).build()), DType::F32).unwrap();
    lm.stop_ids.clear(); // random weights could draw an end token first
    let prompt = vec![5u32; c.context_length - 6];
    let params = GenerationParams { max_new_tokens: 100, ..GenerationParams::default() };
    let mut picker = Sampler(entmin_engine::SamplingParams::greedy());
    let g = generate(&CpuBackend, &lm, &prompt, &params, &mut picker, 0, |_| {}).unwrap();
    assert_eq!((g.tokens.len(), g.stop), (6, StopReason::ContextFull));
    let params = GenerationParams { max_new_tokens: 3, ..GenerationParams::default() };
    let g = generate(&CpuBackend, &lm, &prompt, &params, &mut picker, 0, |_| {}).unwrap();
    assert_eq!((g.tokens.len(), g.stop), (3, StopReason::MaxTokens));
}

#[test]
fn broken_hf_folders_are_named_errors() {
    let dir = scratch_dir("bad-hf");
    let e = load_err(&dir);
    assert!(e.contains("config.json"), "{e}");
    std::fs::write(dir.join("config.json"), r#"{"model_type": "gpt2", "hidden_size": 8}"#).unwrap();
    let e = load_err(&dir);
    assert!(e.contains("config.json") && e.contains("unknown architecture \"gpt2\""), "{e}");
    std::fs::write(dir.join("config.json"), "{not json").unwrap();
    let e = load_err(&dir);
    assert!(e.contains("config.json") && e.contains("invalid JSON"), "{e}");
}

#[test]
fn hf_folder_round_trip_and_broken_safetensors() {
    let dir = scratch_dir("hf-tiny");
    let c = config(Architecture::Qwen2, false);
    let w = random_weights(&c, 23);
    let gguf = write(&dir, "tiny.gguf", &tiny_model_gguf(&c, &w).build());
    let lm = load(&CpuBackend, &gguf, DType::BF16).unwrap();
    let folder = dir.join("hf");
    save_hf_folder(&CpuBackend, &lm, &folder, DType::BF16).unwrap();
    let back = load(&CpuBackend, &folder, DType::BF16).unwrap();
    assert_eq!(back.model.config, c);
    let ids = [1u32, 50, 96];
    assert_eq!(
        all_logits(&lm, &ids),
        all_logits(&back, &ids),
        "bf16 weights survive the safetensors round trip exactly"
    );

    let st = folder.join("model.safetensors");
    let bytes = std::fs::read(&st).unwrap();
    std::fs::write(&st, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_err(&folder);
    assert!(e.contains("model.safetensors") && e.contains("invalid safetensors"), "{e}");
    std::fs::write(&st, &bytes).unwrap();

    let cfg_path = folder.join("config.json");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(&cfg_path, cfg.replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3")).unwrap();
    let e = load_err(&folder);
    assert!(e.contains("model.safetensors") && e.contains("missing tensor model.layers.2."), "{e}");

    // No max_position_embeddings: the default is taken and said.
    let mut v: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert!(v.as_object_mut().unwrap().remove("max_position_embeddings").is_some());
    std::fs::write(&cfg_path, v.to_string()).unwrap();
    let back = load(&CpuBackend, &folder, DType::BF16).unwrap();
    assert_eq!(back.model.config.context_length, entmin_models::config::DEFAULT_HF_CONTEXT);
    assert!(
        back.notices.iter().any(|n| n.contains("max_position_embeddings") && n.contains("2048")),
        "{:?}",
        back.notices
    );
}

#[test]
fn sharded_safetensors_folder_loads() {
    use safetensors::SafeTensors;
    let dir = scratch_dir("sharded");
    let c = config(Architecture::Llama, false);
    let w = random_weights(&c, 24);
    let gguf = write(&dir, "tiny.gguf", &tiny_model_gguf(&c, &w).build());
    let lm = load(&CpuBackend, &gguf, DType::F32).unwrap();
    let folder = dir.join("hf");
    save_hf_folder(&CpuBackend, &lm, &folder, DType::F32).unwrap();
    // Split model.safetensors into two shards named by model.safetensors.index.json.
    let single = std::fs::read(folder.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&single).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    let mut weight_map = serde_json::Map::new();
    for (shard, part) in names.chunks(names.len() / 2 + 1).enumerate() {
        let file = format!("model-{:05}-of-00002.safetensors", shard + 1);
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> =
            part.iter().map(|n| (n.clone(), st.tensor(n).unwrap())).collect();
        safetensors::serialize_to_file(views, None, &folder.join(&file)).unwrap();
        part.iter().for_each(|n| {
            weight_map.insert(n.clone(), serde_json::Value::String(file.clone()));
        });
    }
    std::fs::remove_file(folder.join("model.safetensors")).unwrap();
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(folder.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let sharded = load(&CpuBackend, &folder, DType::F32).unwrap();
    let ids = [4u32, 8, 15, 16, 23, 42];
    assert_eq!(all_logits(&lm, &ids), all_logits(&sharded, &ids), "two shards load to the same model");
}
