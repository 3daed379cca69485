//! The training backward pass on a real model against an independent implementation:
//! PyTorch autograd (transformers, float64) on SmolLM2-135M's weights, for the EM-FT loss
//! Σ_p w_p·H_p over fixed token ids; recorded once by tests/reference/grad_reference.py.

use entmin::engine::cpu::CpuBackend;
use entmin::engine::{Backend, DType};
use entmin_tests::{cached_model, reference_path};
use serde_json::Value;

#[test]
fn smollm2_gradients_match_pytorch_autograd() {
    let Some(path) = cached_model("smollm2-135m-instruct") else { return };
    let want: Value =
        serde_json::from_str(&std::fs::read_to_string(reference_path("grad/smollm2-135m-instruct.json")).unwrap())
            .unwrap();
    let ids: Vec<u32> = want["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let weights: Vec<f32> = want["weights"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let lm = entmin::models::load(&CpuBackend, &path, DType::F32).unwrap();
    let model = &lm.model;
    let acts = model.forward_train(&CpuBackend, &ids, false).unwrap();
    // The reference takes H over the whole vocabulary: no rows masked.
    let mut grads = model.zero_gradients(&CpuBackend).unwrap();
    let head =
        model.entropy_head(&CpuBackend, &acts, &weights, &[], 7, model.head_gradient(&mut grads).unwrap()).unwrap();
    let want_loss = want["loss"].as_f64().unwrap();
    assert!((head.loss - want_loss).abs() < 1e-4 * want_loss, "loss {} vs PyTorch {want_loss}", head.loss);
    model.backward(&CpuBackend, &acts, &head.d_hidden, &mut grads).unwrap();
    let names: Vec<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();
    let (mut worst_norm, mut worst_entry) = (0f64, 0f64);
    for (name, rec) in want["tensors"].as_object().unwrap() {
        let i = names.iter().position(|n| n == name).unwrap_or_else(|| panic!("no parameter {name}"));
        let got = CpuBackend.to_host_f32(&grads.tensors[i]).unwrap();
        let norm = got.iter().map(|&g| g as f64 * g as f64).sum::<f64>().sqrt();
        let want_norm = rec["norm"].as_f64().unwrap();
        worst_norm = worst_norm.max((norm - want_norm).abs() / want_norm);
        assert!((norm - want_norm).abs() < 1e-4 * want_norm, "{name}: gradient norm {norm} vs PyTorch {want_norm}");
        // Entries against the tensor's typical magnitude (norm / √size): f32 against f64.
        let typical = want_norm / (got.len() as f64).sqrt();
        for (idx, v) in rec["indices"].as_array().unwrap().iter().zip(rec["values"].as_array().unwrap()) {
            let (idx, v) = (idx.as_u64().unwrap() as usize, v.as_f64().unwrap());
            let err = (got[idx] as f64 - v).abs();
            worst_entry = worst_entry.max(err / typical);
            assert!(err < 1e-2 * typical + 1e-3 * v.abs(), "{name}[{idx}]: {} vs PyTorch {v}", got[idx]);
        }
    }
    eprintln!("worst relative norm error {worst_norm:.1e}, worst entry error {worst_entry:.1e} × typical magnitude");
}
