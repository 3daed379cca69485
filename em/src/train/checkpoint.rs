//! Checkpoints that survive a kill or a power loss at any moment. Each one is a Hugging
//! Face folder `OUT/step-NNNNNN/` (written beside its place, synced and renamed in, by
//! `save_hf_folder`) plus the optimiser state `OUT/step-NNNNNN.optim.safetensors` (temp
//! file, fsync, rename, fsync of OUT); only then is `OUT/latest.json` replaced the same
//! way to point at them. A kill before that last rename leaves the previous checkpoint in
//! charge; the fsyncs make sure what latest.json names is on the disk before it does
//! (`entmin_models::durable`; the order is tested).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::engine::{Backend, DType};
use crate::error::{Error, Result};
use crate::models::export::save_hf_folder;
use crate::models::LoadedModel;
use safetensors::tensor::TensorView;
use serde::{Deserialize, Serialize};

use super::optim::{AdamW, AdamWConfig};

/// The contents of `OUT/latest.json`: which checkpoint is the latest, and the run's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Latest {
    /// Steps completed.
    pub step: u64,
    /// The checkpoint folder, relative to OUT.
    pub folder: String,
    /// The run's settings, so that `--resume` can refuse a different run.
    pub settings: serde_json::Value,
}

/// Replace `path` with `bytes` so that a kill leaves either the old or the new contents
/// (temp file, fsync, rename, fsync of the folder).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::models::durable::replace_with_bytes(path, bytes).map_err(|e| Error::io("writing", path, e))
}

fn folder_name(step: u64) -> String {
    format!("step-{step:06}")
}

/// Write the checkpoint after `step` training steps (`opt.step` optimiser updates: more
/// than one per step in EM-RL) and make it the latest; older ones are removed.
pub fn save<B: Backend>(
    backend: &B,
    lm: &LoadedModel<B>,
    opt: &AdamW,
    step: u64,
    out: &Path,
    settings: &serde_json::Value,
) -> Result<PathBuf> {
    let folder = folder_name(step);
    let dir = out.join(&folder);
    save_hf_folder(backend, lm, &dir, DType::F32)?;
    let names: Vec<String> = lm.model.named_parameters().into_iter().map(|(n, _)| n).collect();
    // Views of the moments in place: a copy would add 8 bytes per parameter to the run's
    // peak memory (4.9 GB on Qwen2.5-0.5B) at every checkpoint.
    let views: Vec<(String, TensorView<'_>)> = names
        .iter()
        .zip(opt.m.iter().zip(&opt.v))
        .flat_map(|(n, (m, v))| [(format!("m.{n}"), m), (format!("v.{n}"), v)])
        .map(|(name, x)| Ok((name, TensorView::new(safetensors::Dtype::F32, vec![x.len()], bytemuck::cast_slice(x))?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()
        .map_err(|e| Error::training(format!("packing the optimizer state: {e}")))?;
    let meta = HashMap::from([
        ("step".to_string(), step.to_string()),
        ("updates".to_string(), opt.step.to_string()),
        ("config".to_string(), serde_json::to_string(&opt.config).expect("the optimizer config serialises")),
    ]);
    let optim_path = out.join(format!("{folder}.optim.safetensors"));
    // Streamed to the file: a serialised copy in memory would be the moments' size again.
    crate::models::durable::replace_via_path(&optim_path, |tmp| {
        safetensors::serialize_to_file(views, Some(meta), tmp).map_err(std::io::Error::other)
    })
    .map_err(|e| Error::io("writing", &optim_path, e))?;
    let latest = Latest { step, folder: folder.clone(), settings: settings.clone() };
    write_atomically(
        &out.join("latest.json"),
        serde_json::to_string_pretty(&latest).expect("JSON serialises").as_bytes(),
    )?;
    for entry in std::fs::read_dir(out).map_err(|e| Error::io("reading", out, e))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("step-") && !name.starts_with(&folder) {
            let p = entry.path();
            let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        }
    }
    Ok(dir)
}

/// The latest checkpoint of OUT, if any.
pub fn latest(out: &Path) -> Result<Option<Latest>> {
    let path = out.join("latest.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(
            serde_json::from_str(&text).map_err(|e| Error::corrupt(&path, format!("not a checkpoint record: {e}")))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading", &path, e)),
    }
}

/// The optimiser state saved with `latest`, checked against the model's parameters.
pub fn load_optimizer(out: &Path, latest: &Latest, sizes: &[(String, usize)]) -> Result<AdamW> {
    let path = out.join(format!("{}.optim.safetensors", latest.folder));
    let bytes = std::fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| Error::corrupt(&path, e.to_string()))?;
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| Error::corrupt(&path, e.to_string()))?;
    let info = meta.metadata().clone().unwrap_or_default();
    let step: u64 = info
        .get("step")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::corrupt(&path, "optimizer state without a step"))?;
    if step != latest.step {
        return Err(Error::corrupt(
            &path,
            format!("optimizer state is for step {step}, latest.json says {}", latest.step),
        ));
    }
    let config = info.get("config").ok_or_else(|| Error::corrupt(&path, "optimizer state without its config"))?;
    let config: AdamWConfig =
        serde_json::from_str(config).map_err(|e| Error::corrupt(&path, format!("optimizer config: {e}")))?;
    let read = |name: &str, n: usize| -> Result<Vec<f32>> {
        let t = st.tensor(name).map_err(|_| Error::corrupt(&path, format!("missing {name}")))?;
        // [0]: a frozen parameter (no moments).
        if t.dtype() != safetensors::Dtype::F32 || (t.shape() != [n] && t.shape() != [0]) {
            return Err(Error::corrupt(
                &path,
                format!("{name} has shape {:?}, the model needs [{n}] (or [0] if frozen)", t.shape()),
            ));
        }
        Ok(bytemuck::pod_collect_to_vec(t.data()))
    };
    let mut opt = AdamW::new(config, &sizes.iter().map(|(_, n)| *n).collect::<Vec<_>>());
    opt.step = match info.get("updates") {
        Some(u) => u.parse().map_err(|_| Error::corrupt(&path, format!("bad update count {u:?}")))?,
        None => step,
    };
    for (i, (name, n)) in sizes.iter().enumerate() {
        opt.m[i] = read(&format!("m.{name}"), *n)?;
        opt.v[i] = read(&format!("v.{name}"), *n)?;
    }
    Ok(opt)
}
