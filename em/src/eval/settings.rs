//! What a method's results depend on, recorded beside them as `METHOD.settings.json`,
//! and the check that refuses to extend results made with other settings.

use std::path::Path;

use entmin_engine::Backend;
use entmin_models::LoadedModel;

use super::code::code_prompt_ids;
use super::results::ProblemResult;
use super::{prompt_ids, EvalOptions};
use crate::error::{Error, Result};
use crate::methods::{Method, MethodConfig};
use crate::progress::Progress;

/// What a method's results depend on, as recorded beside them.
pub(super) fn run_settings<B: Backend>(
    lm: &LoadedModel<B>,
    config: &MethodConfig,
    opts: &EvalOptions,
    code: bool,
) -> Result<serde_json::Value> {
    let mut sampling = config.sampling.clone();
    sampling.banned.clear(); // the model's, recorded through it
    let mut s = serde_json::json!({
        "run": opts.run_identity,
        "method": config.method.name(),
        "sampling": format!("{sampling:?}"),
        "max_new_tokens": opts.max_new_tokens,
        "seed": opts.seed,
        // The prompt format (template, system message, instruction) on a placeholder.
        "prompt": lm.tokenizer.decode(&prompt_ids(lm, "{question}", opts.system.as_deref())?, false)?,
    });
    if code {
        let ids = code_prompt_ids(lm, "{prompt}", opts.system.as_deref(), opts.code.raw)?;
        s["prompt"] = lm.tokenizer.decode(&ids, false)?.into();
        s["samples"] = opts.samples.into();
        s["sandbox_limits"] = serde_json::to_value(&opts.code.limits).expect("limits serialise");
    }
    match config.method {
        Method::EmInf => s["em_inf"] = format!("{:?}", config.em_inf).into(),
        Method::AdaptiveTemp => s["adaptive"] = format!("{:?}", config.adaptive).into(),
        Method::SelfConsistency => s["votes"] = config.votes.into(),
        Method::Plain => {}
    }
    Ok(s)
}

/// Record `settings` beside a method's results, or refuse to extend results made with
/// other ones (naming what differs). Results from before settings were recorded are
/// adopted with a warning.
pub(super) fn check_settings(
    path: &Path,
    results: &[ProblemResult],
    settings: &serde_json::Value,
    progress: &dyn Progress,
) -> Result<()> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let old: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::corrupt(path, format!("not JSON: {e}")))?;
            if results.is_empty() || old == *settings {
                return write_settings(path, settings);
            }
            let keys = |v: &serde_json::Value| {
                v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default()
            };
            let mut all = keys(&old);
            all.extend(keys(settings));
            all.sort();
            all.dedup();
            let differ: Vec<String> = all
                .into_iter()
                .filter(|k| old.get(k) != settings.get(k))
                .map(|k| {
                    format!(
                        "{k}: {} before, {} now",
                        old.get(&k).unwrap_or(&serde_json::Value::Null),
                        settings.get(&k).unwrap_or(&serde_json::Value::Null)
                    )
                })
                .collect();
            Err(Error::invalid(format!(
                "{} holds {} results made with other settings; resuming would mix two runs. Use another --out, or \
                 delete the folder. Differences:\n  {}",
                path.parent().unwrap_or(Path::new(".")).display(),
                results.len(),
                differ.join("\n  ")
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !results.is_empty() {
                progress.note(&format!(
                    "{} results in {} have no recorded settings; assuming they match this run",
                    results.len(),
                    path.parent().unwrap_or(Path::new(".")).display()
                ));
            }
            write_settings(path, settings)
        }
        Err(e) => Err(Error::io("reading", path, e)),
    }
}

fn write_settings(path: &Path, settings: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(settings).expect("JSON values serialise") + "\n";
    entmin_models::durable::replace_with_bytes(path, text.as_bytes()).map_err(|e| Error::io("writing", path, e))
}
