//! The library's entry point on a tiny GGUF model: what a token stream reports is checked
//! against independent f64 computations on a full forward pass, the callback and the
//! cancel handle stop what they should and nothing else, and errors are typed.

use std::path::PathBuf;
use std::sync::mpsc;

use entmin::engine::{reference, Backend, DType, EmInfParams};
use entmin::models::{Architecture, KvCache, LoadedModel, Logits, ModelError, WeightDtype};
use entmin::engine::cpu::CpuBackend;
use entmin::progress::Quiet;
use entmin::runtime::{ModelTask, ModelTaskMut};
use entmin::train::TrainSetup;
use entmin::{Cancel, DeviceKind, Engine, Error, Flow, Method, MethodConfig, Options, Request, StopReason};
use entmin_tests::gguf_writer::tiny_model_gguf;
use entmin_tests::scratch_dir;
use entmin_tests::tiny::{config, random_weights};

/// A tiny Qwen2 GGUF on the CPU, in f32, with no stop tokens (random weights could draw
/// one at any step, which would make token counts depend on the seed).
fn tiny_engine(tag: &str) -> Engine {
    let dir = scratch_dir(tag);
    let c = config(Architecture::Qwen2, false);
    let path: PathBuf = dir.join("tiny.gguf");
    std::fs::write(&path, tiny_model_gguf(&c, &random_weights(&c, 31)).build()).unwrap();
    let options = Options { device: DeviceKind::Cpu, dtype: WeightDtype::Convert(DType::F32), threads: None };
    let mut engine = Engine::load(path.to_str().unwrap(), options).unwrap();
    struct NoStops;
    impl ModelTaskMut for NoStops {
        type Output = ();
        fn run<B: Backend>(self, _: &B, lm: &mut LoadedModel<B>) {
            lm.stop_ids.clear();
        }
    }
    engine.run_mut(NoStops);
    engine
}

/// Logits at every position of `ids` from one forward pass (no cache reuse), with the
/// never-sampled ids at −inf as the generation loop masks them.
struct AllLogits(Vec<u32>);

impl ModelTask for AllLogits {
    type Output = (Vec<Vec<f32>>, Vec<u32>);
    fn run<B: Backend>(self, b: &B, lm: &LoadedModel<B>) -> Self::Output {
        let mut cache = KvCache::new(b, &lm.model.config, self.0.len()).unwrap();
        let logits = b.to_host_f32(&lm.model.forward(b, &self.0, &mut cache, Logits::All).unwrap()).unwrap();
        let vocab = lm.model.config.vocab_size;
        let rows = logits
            .chunks(vocab)
            .map(|row| {
                let mut row = row.to_vec();
                for &id in &lm.banned_ids {
                    row[id as usize] = f32::NEG_INFINITY;
                }
                row
            })
            .collect();
        (rows, lm.banned_ids.clone())
    }
}

#[derive(Clone, Debug)]
struct Seen {
    token: u32,
    text: String,
    entropy: f32,
    sampled_entropy: f32,
    logprob: f32,
    em_inf: Option<entmin::engine::EmInfRowStats>,
}

fn stream(engine: &Engine, request: &Request) -> (entmin::Completion, Vec<Seen>) {
    let mut seen = Vec::new();
    let answer = engine
        .generate(request, |s| {
            seen.push(Seen {
                token: s.token,
                text: s.text.to_string(),
                entropy: s.entropy,
                sampled_entropy: s.sampled_entropy,
                logprob: s.logprob,
                em_inf: s.em_inf,
            })
        })
        .unwrap();
    (answer, seen)
}

fn close(what: &str, got: f32, want: f64, tol: f64) {
    assert!((got as f64 - want).abs() <= tol * want.abs().max(1.0), "{what}: got {got}, want {want}");
}

fn method(m: Method, temperature: f32) -> MethodConfig {
    let mut c = MethodConfig::new(m);
    c.sampling.temperature = temperature;
    c
}

#[test]
fn streamed_tokens_carry_the_entropies_and_log_probs_of_an_independent_reference() {
    let engine = tiny_engine("api-stream");
    // 0.7 has the loop compute the model's entropy itself; at 1.0 and greedy (T = 1) it
    // comes from the sampler's own pass.
    for temperature in [0.7, 1.0, 0.0] {
        let request =
            Request::raw("hello").method_config(method(Method::Plain, temperature)).max_tokens(10).seed(3);
        let (answer, seen) = stream(&engine, &request);
        let g = answer.generation();
        assert_eq!((g.tokens.len(), g.stop), (10, StopReason::MaxTokens));
        assert_eq!(seen.iter().map(|s| s.token).collect::<Vec<_>>(), g.tokens);
        assert_eq!(seen.iter().map(|s| s.text.as_str()).collect::<String>(), answer.text, "pieces add up to the text");
        assert!(g.em_inf.is_empty() && seen.iter().all(|s| s.em_inf.is_none()), "plain sampling has no EM-INF stats");

        let prompt = engine.encode(&request.prompt).unwrap();
        let ids: Vec<u32> = prompt.iter().chain(&g.tokens).copied().collect();
        let (rows, _) = engine.run(AllLogits(ids));
        let inv_t = if temperature == 0.0 { 1.0 } else { 1.0 / temperature };
        for (k, s) in seen.iter().enumerate() {
            let at = format!("T = {temperature}, token {k}");
            let row = &rows[prompt.len() - 1 + k];
            close(&format!("{at}: model entropy"), s.entropy, reference::softmax_entropy(row, 1.0).1, 1e-4);
            if temperature == 0.0 {
                assert_eq!(s.sampled_entropy, 0.0, "{at}: greedy decoding draws from a point mass");
            } else {
                let sampled = reference::softmax_entropy(row, inv_t).1;
                close(&format!("{at}: sampled entropy"), s.sampled_entropy, sampled, 1e-4);
            }
            let logprob = reference::token_logprob(row, s.token as usize, inv_t);
            close(&format!("{at}: log-prob"), s.logprob, logprob, 1e-4);
            assert_eq!(
                (g.entropies[k], g.sampled_entropies[k], g.logprobs[k]),
                (s.entropy, s.sampled_entropy, s.logprob)
            );
        }
    }
}

#[test]
fn em_inf_statistics_match_the_f64_em_inf_reference() {
    let engine = tiny_engine("api-em-inf");
    // T = 1, so the sampled distribution is softmax(z′) itself; a low threshold so that
    // the loop takes steps on this model's high-entropy rows.
    let mut config = method(Method::EmInf, 1.0);
    config.em_inf = EmInfParams { threshold: 0.05, max_steps: 4, ..EmInfParams::default() };
    let request = Request::raw("hello").method_config(config.clone()).max_tokens(8).seed(1);
    let (answer, seen) = stream(&engine, &request);
    let g = answer.generation();
    assert_eq!(g.em_inf.len(), g.tokens.len());
    let prompt = engine.encode(&request.prompt).unwrap();
    let ids: Vec<u32> = prompt.iter().chain(&g.tokens).copied().collect();
    let (rows, _) = engine.run(AllLogits(ids));
    let mut optimised = 0;
    for (k, s) in seen.iter().enumerate() {
        let stats = s.em_inf.expect("EM-INF reports every token");
        let row = &rows[prompt.len() - 1 + k];
        let (_, steps, _, after) = reference::em_inf(row, &config.em_inf);
        assert_eq!(stats.steps, steps, "token {k}: Adam steps");
        close(
            &format!("token {k}: entropy before"),
            stats.entropy_before,
            reference::softmax_entropy(row, 1.0).1,
            1e-4,
        );
        close(&format!("token {k}: entropy after"), stats.entropy_after, after, 1e-3);
        close(&format!("token {k}: sampled = after at T = 1"), s.sampled_entropy, after, 1e-3);
        close(&format!("token {k}: model entropy = before"), s.entropy, stats.entropy_before as f64, 1e-5);
        optimised += (steps > 0) as usize;
    }
    assert!(optimised > 0, "the threshold is low enough that EM-INF works on some token");
    assert_eq!(g.em_inf_steps(), seen.iter().map(|s| s.em_inf.unwrap().steps as u64).sum::<u64>());
}

#[test]
fn a_callback_stop_ends_its_own_sequence_only() {
    let engine = tiny_engine("api-flow");
    let mut config = method(Method::SelfConsistency, 0.9);
    config.votes = 2;
    let request = Request::raw("hello").method_config(config).max_tokens(9).seed(7);
    let mut first = 0;
    let answer = engine
        .generate(&request, |s| {
            first += (s.seq == 0) as usize;
            if s.seq == 0 && first == 3 {
                Flow::Stop
            } else {
                Flow::Continue
            }
        })
        .unwrap();
    assert_eq!((answer.samples[0].tokens.len(), answer.samples[0].stop), (3, StopReason::Cancelled));
    assert_eq!((answer.samples[1].tokens.len(), answer.samples[1].stop), (9, StopReason::MaxTokens));
    // Sample 1 is plain sampling with seed + 1, whatever happened to sample 0.
    let alone = Request::raw("hello").method_config(method(Method::Plain, 0.9)).max_tokens(9).seed(8);
    let (alone, _) = stream(&engine, &alone);
    assert_eq!(answer.samples[1].tokens, alone.generation().tokens);
}

#[test]
fn a_cancel_from_another_thread_stops_before_the_next_token() {
    let engine = tiny_engine("api-cancel");
    let cancel = Cancel::new();
    let request = Request::raw("hello").method(Method::Plain).max_tokens(50).cancel(cancel.clone());
    let (ask, asked) = mpsc::channel::<()>();
    let (done, acknowledged) = mpsc::channel::<()>();
    let canceller = std::thread::spawn(move || {
        asked.recv().unwrap();
        cancel.cancel();
        done.send(()).unwrap();
    });
    let mut n = 0;
    let answer = engine
        .generate(&request, |_| {
            n += 1;
            if n == 2 {
                ask.send(()).unwrap();
                acknowledged.recv().unwrap();
            }
        })
        .unwrap();
    canceller.join().unwrap();
    let g = answer.generation();
    assert_eq!((g.tokens.len(), g.stop), (2, StopReason::Cancelled));

    let cancelled = Cancel::new();
    cancelled.cancel();
    let (answer, seen) = stream(&engine, &Request::raw("hello").max_tokens(5).cancel(cancelled));
    assert!(seen.is_empty() && answer.generation().tokens.is_empty());
    assert_eq!(answer.generation().stop, StopReason::Cancelled);
}

#[test]
fn errors_are_typed_and_name_their_cause() {
    match Engine::load("no-such-model-or-file", Options::default()) {
        Err(Error::ModelSpec { spec, msg }) => {
            assert_eq!(spec, "no-such-model-or-file");
            assert!(msg.contains("catalog"), "{msg}");
        }
        other => panic!("expected a model-spec error, got {:?}", other.err()),
    }
    let dir = scratch_dir("api-errors");
    let broken = dir.join("broken.gguf");
    std::fs::write(&broken, b"GGUF but not really").unwrap();
    match Engine::load(broken.to_str().unwrap(), Options { device: DeviceKind::Cpu, ..Options::default() }) {
        Err(e @ Error::Model(ModelError::Corrupt { .. })) => assert!(e.to_string().contains("broken.gguf"), "{e}"),
        other => panic!("expected a corrupt-file error, got {:?}", other.err()),
    }
    assert!(matches!("tpu".parse::<DeviceKind>(), Err(Error::Device { device, .. }) if device == "tpu"));
    assert_eq!("cuda".parse::<DeviceKind>().unwrap(), DeviceKind::Cuda);

    let engine = tiny_engine("api-errors-request");
    let vocab = engine.info().vocab_size as u32;
    let e = engine.generate(&Request::tokens(vec![1, vocab]), |_| ()).unwrap_err();
    assert!(matches!(e, Error::Invalid(_)) && e.to_string().contains(&vocab.to_string()), "{e}");
    let e = engine.generate(&Request::raw(""), |_| ()).unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");

    // A training run into a folder that holds one is refused before anything loads,
    // unless it is to be resumed.
    let out = dir.join("run");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("latest.json"), r#"{"step": 1, "folder": "step-000001", "settings": {}}"#).unwrap();
    let setup = TrainSetup::new("no-such-model", "no-such-prompts.jsonl", &out);
    match setup.prepare(&CpuBackend, serde_json::json!({}), 1, false, &Quiet) {
        Err(Error::RunExists { out: folder }) => assert_eq!(folder, out),
        other => panic!("expected a run-exists error, got {:?}", other.err()),
    }
    let resumed = TrainSetup { resume: true, ..setup };
    assert!(
        matches!(resumed.prepare(&CpuBackend, serde_json::json!({}), 1, false, &Quiet), Err(Error::ModelSpec { .. })),
        "with resume the setup goes on to resolve the model"
    );
}
