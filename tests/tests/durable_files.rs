//! Files that must survive a power loss are synced before they are renamed into place,
//! and their folder after: the order of operations of a checkpoint, checked on the trace
//! `entmin_models::durable` records (an fsync cannot be observed otherwise).

use std::path::{Path, PathBuf};

use entmin::engine::cpu::CpuBackend;
use entmin::engine::DType;
use entmin::models::durable::{trace, Op};
use entmin::models::{load, Architecture};
use entmin::train::checkpoint;
use entmin::train::new_optimizer;
use entmin::train::optim::{AdamWConfig, Schedule};
use entmin_tests::gguf_writer::tiny_model_gguf;
use entmin_tests::scratch_dir;
use entmin_tests::tiny::{config, random_weights};

fn parent(p: &Path) -> PathBuf {
    p.parent().unwrap().to_path_buf()
}

#[test]
fn a_checkpoint_is_on_disk_before_latest_json_names_it() {
    let dir = scratch_dir("durable-checkpoint");
    let c = config(Architecture::Qwen2, false);
    let path = dir.join("tiny.gguf");
    std::fs::write(&path, tiny_model_gguf(&c, &random_weights(&c, 8)).build()).unwrap();
    let lm = load(&CpuBackend, &path, DType::F32).unwrap();
    let cfg = AdamWConfig {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        grad_clip: 1.0,
        schedule: Schedule::Constant,
        warmup_steps: 0,
        total_steps: 1,
    };
    let opt = new_optimizer(&lm, cfg, &[]).unwrap();
    let out = dir.join("run");
    let (saved, ops) = trace(|| checkpoint::save(&CpuBackend, &lm, &opt, 1, &out, &serde_json::json!({})));
    saved.unwrap();

    let renames: Vec<(usize, &PathBuf, &PathBuf)> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match op {
            Op::Rename { from, to } => Some((i, from, to)),
            _ => None,
        })
        .collect();
    let names: Vec<String> =
        renames.iter().map(|(_, _, to)| to.file_name().unwrap().to_string_lossy().into()).collect();
    assert_eq!(names, ["step-000001", "step-000001.optim.safetensors", "latest.json"], "{ops:#?}");
    for &(i, from, to) in &renames {
        // What is renamed was synced before: the file itself, or the folder and its files.
        let synced = ops[..i].iter().any(|op| match op {
            Op::SyncFile(p) => p == from,
            Op::SyncDir(p) => p == from,
            _ => false,
        });
        assert!(synced, "{} renamed before it was synced: {ops:#?}", from.display());
        if from.is_dir() || to.is_dir() {
            let files_synced = std::fs::read_dir(to).unwrap().all(|e| {
                let name = e.unwrap().file_name();
                ops[..i].iter().any(|op| matches!(op, Op::SyncFile(p) if p.file_name() == Some(&name)))
            });
            assert!(files_synced, "every file of {} synced before the rename", to.display());
        }
        // The new name is made durable right after.
        assert_eq!(
            ops.get(i + 1),
            Some(&Op::SyncDir(parent(to))),
            "folder of {} synced after the rename",
            to.display()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
