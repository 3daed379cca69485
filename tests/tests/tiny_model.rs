//! Whole-model checks on tiny random Llama and Qwen2 configs: the forward pass
//! against an f64 composition of reference ops, the KV cache against a full
//! recompute, and clear errors for broken weights.

use entmin_engine::cpu::CpuBackend;
use entmin_engine::{Backend, DType};
use entmin_models::{Architecture, KvCache, Logits, Model, ModelError};
use entmin_tests::assert_close;
use entmin_tests::tiny::{config, random_weights, reference_forward, F32Tensor};

const IDS: [u32; 9] = [5, 17, 96, 0, 42, 42, 7, 63, 1];

#[test]
fn forward_matches_the_f64_reference() {
    for (arch, tie) in [
        (Architecture::Llama, true),
        (Architecture::Llama, false),
        (Architecture::Qwen2, false),
        (Architecture::Qwen2, true),
    ] {
        let c = config(arch, tie);
        let w = random_weights(&c, 11);
        let want = reference_forward(&c, &w, &IDS);
        for dtype in [DType::F32, DType::BF16] {
            let model = Model::load(&CpuBackend, c.clone(), &w, dtype).unwrap();
            if dtype == DType::BF16 {
                // bf16 weights are a different model; only check that it runs and is close-ish.
                let mut cache = KvCache::new(&CpuBackend, &c, IDS.len()).unwrap();
                let got = CpuBackend
                    .to_host_f32(&model.forward(&CpuBackend, &IDS, &mut cache, Logits::All).unwrap())
                    .unwrap();
                assert_close(&format!("{arch:?} tie={tie} bf16"), &got, &want, 0.1);
                continue;
            }
            let mut cache = KvCache::new(&CpuBackend, &c, IDS.len()).unwrap();
            let got =
                CpuBackend.to_host_f32(&model.forward(&CpuBackend, &IDS, &mut cache, Logits::All).unwrap()).unwrap();
            assert_close(&format!("{arch:?} tie={tie}"), &got, &want, 1e-4);
        }
    }
}

#[test]
fn incremental_decoding_equals_full_prefill() {
    let c = config(Architecture::Qwen2, false);
    let model = Model::load(&CpuBackend, c.clone(), &random_weights(&c, 12), DType::F32).unwrap();
    let want = reference_forward(&c, &random_weights(&c, 12), &IDS);
    let mut cache = KvCache::new(&CpuBackend, &c, IDS.len()).unwrap();
    // Prefill 4 tokens, then one at a time; each step's last-position logits must match.
    let first = model.forward(&CpuBackend, &IDS[..4], &mut cache, Logits::Last).unwrap();
    let v = c.vocab_size;
    assert_close("prefill last", &CpuBackend.to_host_f32(&first).unwrap(), &want[3 * v..4 * v], 1e-4);
    for i in 4..IDS.len() {
        let got = model.forward(&CpuBackend, &IDS[i..i + 1], &mut cache, Logits::Last).unwrap();
        assert_close(
            &format!("decode step {i}"),
            &CpuBackend.to_host_f32(&got).unwrap(),
            &want[i * v..(i + 1) * v],
            1e-4,
        );
    }
    assert_eq!(cache.len, IDS.len());
    let err = model.forward(&CpuBackend, &[1], &mut cache, Logits::Last).unwrap_err();
    assert!(matches!(err, ModelError::ContextOverflow { .. }), "{err}");
}

#[test]
fn broken_weights_are_clear_errors() {
    let c = config(Architecture::Llama, false);
    let mut w = random_weights(&c, 13);
    w.0.remove("model.layers.1.mlp.up_proj.weight");
    let err = Model::load(&CpuBackend, c.clone(), &w, DType::F32).err().expect("missing tensor").to_string();
    assert!(err.contains("missing tensor model.layers.1.mlp.up_proj.weight"), "{err}");

    let mut w = random_weights(&c, 13);
    w.0.insert(
        "model.layers.0.self_attn.k_proj.weight".into(),
        F32Tensor { data: vec![0.0; 48 * 17], shape: vec![17, 48] },
    );
    let err = Model::load(&CpuBackend, c.clone(), &w, DType::F32).err().expect("bad shape").to_string();
    assert!(err.contains("k_proj.weight") && err.contains("[16, 48]") && err.contains("[17, 48]"), "{err}");

    let mut w = random_weights(&c, 13);
    w.0.get_mut("model.norm.weight").unwrap().data[5] = f32::NAN;
    let err = Model::load(&CpuBackend, c.clone(), &w, DType::F32).err().expect("NaN").to_string();
    assert!(err.contains("model.norm.weight") && err.contains("non-finite") && err.contains("index 5"), "{err}");
}

#[test]
fn batched_generation_equals_one_at_a_time() {
    use entmin_models::generate::{generate_batch, GenerationParams, Sampler};
    use entmin_tests::gguf_writer::tiny_model_gguf;
    let c = config(Architecture::Llama, true);
    let w = random_weights(&c, 14);
    let dir = entmin_tests::scratch_dir("batch-gen");
    let path = dir.join("tiny.gguf");
    std::fs::write(&path, tiny_model_gguf(&c, &w).build()).unwrap();
    let lm = entmin_models::load(&CpuBackend, &path, DType::F32).unwrap();
    let prompts = vec![vec![5u32, 17, 96], vec![42u32], vec![7u32, 7, 7, 7, 7, 1], vec![3u32, 9]];
    let params = GenerationParams { max_new_tokens: 12, ..GenerationParams::default() };
    let seeds = [11u64, 12, 13, 14];
    // Greedy and sampled: each sequence's tokens must not depend on its batch mates.
    for sampling in [entmin_engine::SamplingParams::greedy(), entmin_engine::SamplingParams::default()] {
        let mut picker = Sampler(sampling.clone());
        let together = generate_batch(&CpuBackend, &lm, &prompts, &params, &mut picker, &seeds, |_| ()).unwrap();
        for (i, p) in prompts.iter().enumerate() {
            let alone =
                generate_batch(&CpuBackend, &lm, std::slice::from_ref(p), &params, &mut picker, &[seeds[i]], |_| ())
                    .unwrap();
            assert_eq!(together[i].tokens, alone[0].tokens, "sequence {i} ({sampling:?})");
            assert_eq!(together[i].tokens.len(), 12, "no stop token in a byte vocabulary");
        }
    }
}

#[test]
fn sequences_joining_a_running_batch_match_their_runs_alone() {
    use entmin_models::generate::{generate_batch, GenerationParams, Sampler, TokenPicker};
    use entmin_models::{DecodeBatch, Flow, NewSequence};
    use entmin_tests::gguf_writer::tiny_model_gguf;
    let c = config(Architecture::Qwen2, false);
    let w = random_weights(&c, 15);
    let dir = entmin_tests::scratch_dir("join-batch");
    let path = dir.join("tiny.gguf");
    std::fs::write(&path, tiny_model_gguf(&c, &w).build()).unwrap();
    let lm = entmin_models::load(&CpuBackend, &path, DType::F32).unwrap();
    let prompts = [vec![5u32, 17, 96], vec![42u32], vec![7u32; 20], vec![3u32, 9]];
    let params = GenerationParams { max_new_tokens: 10, ..GenerationParams::default() };
    let sampling = entmin_engine::SamplingParams::default();
    let mut picker = Sampler(sampling.clone());
    let alone: Vec<_> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let g =
                generate_batch(&CpuBackend, &lm, std::slice::from_ref(p), &params, &mut picker, &[i as u64], |_| ());
            g.unwrap().pop().unwrap()
        })
        .collect();
    // Sequence 0 starts alone; 1 joins after two steps, 2 and 3 after four.
    let mut batch = DecodeBatch::with_separate_prefills(&lm);
    let add = |batch: &mut DecodeBatch<'_, CpuBackend>, i: usize| {
        let seq = NewSequence { prompt: prompts[i].clone(), params: params.clone(), seed: i as u64, group: i as u64 };
        assert_eq!(batch.add(&CpuBackend, seq).unwrap(), i);
    };
    add(&mut batch, 0);
    let mut done = vec![None, None, None, None];
    let mut steps = 0;
    while !batch.is_empty() || steps < 5 {
        if steps == 2 {
            add(&mut batch, 1);
        }
        if steps == 4 {
            add(&mut batch, 2);
            add(&mut batch, 3);
        }
        let finished = batch
            .step(&CpuBackend, &mut |_, _, logits, rngs| picker.pick(&CpuBackend, logits, rngs), &mut |_| {
                Flow::Continue
            })
            .unwrap();
        for (id, g) in finished {
            done[id] = Some(g);
        }
        steps += 1;
    }
    for (i, g) in done.into_iter().enumerate() {
        let g = g.expect("finished");
        assert_eq!(g.tokens, alone[i].tokens, "sequence {i}");
        assert_eq!(g.logprobs, alone[i].logprobs, "sequence {i}: log-probs bit for bit");
        assert_eq!(g.entropies, alone[i].entropies, "sequence {i}");
    }
}
