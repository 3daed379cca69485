//! Real models against the independent NumPy float64 forward pass
//! (tests/reference/reference.py → tests/reference/golden/*.json): token ids,
//! top-20 logits and full-vocabulary entropies at every prompt position, and
//! greedy continuations, with f32 weights.

use entmin_engine::cpu::CpuBackend;
use entmin_engine::{Backend, DType, Rng, SamplingParams};
use entmin_models::export::save_hf_folder;
use entmin_models::generate::row_entropies;
use entmin_models::{load, KvCache, Logits};
use entmin_tests::{cached_model, reference_path, scratch_dir};
use serde_json::Value;

/// Relative logit error allowed (issue: ≤ 1e-3 with f32 weights).
const LOGIT_TOL: f64 = 1e-3;
/// Greedy steps are compared until the reference's top-2 gap falls below this.
const NEAR_TIE: f64 = 0.05;

/// Check the model at `path` against the golden file of catalog model `name`.
fn check_model(name: &str, path: &std::path::Path) {
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(reference_path(&format!("golden/{name}.json"))).unwrap())
            .unwrap();
    let b = CpuBackend;
    let lm = load(&b, path, DType::F32).unwrap();
    let vocab = lm.model.config.vocab_size;
    let mut worst_logit = 0f64;
    let mut worst_entropy = 0f64;
    for prompt in golden["prompts"].as_array().unwrap() {
        let text = prompt["text"].as_str().unwrap();
        let want_ids: Vec<u32> = prompt["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let ids = lm.tokenizer.encode(text, true).unwrap();
        assert_eq!(ids, want_ids, "{name}: token ids of {text:?}");

        let mut cache = KvCache::new(&b, &lm.model.config, ids.len() + 16).unwrap();
        let logits = lm.model.forward(&b, &ids, &mut cache, Logits::All).unwrap();
        let entropies = row_entropies(&b, &logits).unwrap();
        let host = b.to_host_f32(&logits).unwrap();
        for (p, pos) in prompt["positions"].as_array().unwrap().iter().enumerate() {
            let row = &host[p * vocab..(p + 1) * vocab];
            let top = pos["top"].as_array().unwrap();
            let scale = top.iter().map(|e| e[1].as_f64().unwrap().abs()).fold(1.0, f64::max);
            for e in top {
                let (id, want) = (e[0].as_u64().unwrap() as usize, e[1].as_f64().unwrap());
                let err = (row[id] as f64 - want).abs() / scale;
                worst_logit = worst_logit.max(err);
                assert!(err <= LOGIT_TOL, "{name} {text:?} position {p} token {id}: logit {} vs {want}", row[id]);
            }
            let want_h = pos["entropy"].as_f64().unwrap();
            let err = (entropies[p] as f64 - want_h).abs() / want_h.max(0.1);
            worst_entropy = worst_entropy.max(err);
            assert!(err <= 1e-3, "{name} {text:?} position {p}: entropy {} vs {want_h}", entropies[p]);
        }

        // Greedy continuation through the KV cache, from the prefill's last row.
        let greedy: Vec<u32> =
            prompt["greedy"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let gaps: Vec<f64> = prompt["greedy_gap"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let mut last = b.slice_rows(&logits, ids.len() - 1, ids.len()).unwrap();
        for (step, (&want, &gap)) in greedy.iter().zip(&gaps).enumerate() {
            let got = b.sample(&last, &SamplingParams::greedy(), &mut [Rng::new(0)]).unwrap()[0].token;
            if gap < NEAR_TIE {
                eprintln!("{name}: {text:?} greedy compared for {step} steps (near-tie gap {gap:.3} next)");
                break;
            }
            assert_eq!(got, want, "{name} {text:?}: greedy step {step}");
            last = lm.model.forward(&b, &[got], &mut cache, Logits::Last).unwrap();
        }
    }
    eprintln!("{name}: worst relative logit error {worst_logit:.2e}, worst relative entropy error {worst_entropy:.2e}");
}

#[test]
fn smollm2_matches_numpy_reference() {
    let name = "smollm2-135m-instruct";
    if let Some(path) = cached_model(name) {
        check_model(name, &path);
    }
}

#[test]
fn qwen2_matches_numpy_reference() {
    let name = "qwen2.5-coder-0.5b-instruct";
    if let Some(path) = cached_model(name) {
        check_model(name, &path);
    }
}

/// The same model exported as a Hugging Face folder (safetensors in the Hugging
/// Face q/k layout, tokenizer.json) and loaded through the other loader.
#[test]
fn smollm2_hf_folder_matches_numpy_reference() {
    let name = "smollm2-135m-instruct";
    let Some(path) = cached_model(name) else { return };
    let lm = load(&CpuBackend, &path, DType::F32).unwrap();
    let dir = scratch_dir("golden-hf").join("smollm2");
    save_hf_folder(&CpuBackend, &lm, &dir, DType::F32).unwrap();
    drop(lm);
    for file in
        ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]
    {
        assert!(dir.join(file).exists(), "{file} missing from the exported folder");
    }
    check_model(name, &dir);
    std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
}
