//! `entmin plot METRICS.jsonl`: the mean response entropy and the loss (EM-FT) or the
//! mean reward (EM-RL) of a training run against step, as a small self-contained SVG
//! (two panels, no plotting crate).

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::Value;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// metrics.jsonl of `entmin ft` or `entmin rl`.
    pub metrics: PathBuf,
    /// Output file (default: METRICS with .svg).
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
}

const W: f64 = 640.0;
const PANEL_H: f64 = 220.0;
const MARGIN: f64 = 50.0;

/// One panel: a polyline of (step, value) scaled into its box, with axis labels.
fn panel(svg: &mut String, top: f64, title: &str, points: &[(f64, f64)]) {
    let (x0, x1) = (points[0].0, points.last().map_or(1.0, |p| p.0).max(points[0].0 + 1.0));
    let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 0.5, hi + 0.5) };
    let (w, h) = (W - 2.0 * MARGIN, PANEL_H - 2.0 * MARGIN);
    let px = |x: f64| MARGIN + (x - x0) / (x1 - x0) * w;
    let py = |y: f64| top + MARGIN + (1.0 - (y - lo) / (hi - lo)) * h;
    let _ = write!(
        svg,
        r##"<rect x="{MARGIN}" y="{}" width="{w}" height="{h}" fill="none" stroke="#999"/><text x="{MARGIN}" y="{}" font-size="14">{title}</text><text x="4" y="{}" font-size="11">{hi:.3}</text><text x="4" y="{}" font-size="11">{lo:.3}</text><text x="{MARGIN}" y="{}" font-size="11">step {x0}</text><text x="{}" y="{}" font-size="11" text-anchor="end">step {x1}</text>"##,
        top + MARGIN,
        top + MARGIN - 8.0,
        top + MARGIN + 10.0,
        top + MARGIN + h,
        top + MARGIN + h + 16.0,
        MARGIN + w,
        top + MARGIN + h + 16.0,
    );
    let path: Vec<String> = points.iter().map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y))).collect();
    let _ = write!(svg, r##"<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{}"/>"##, path.join(" "));
}

pub fn run(a: Args) -> Result<()> {
    let text = std::fs::read_to_string(&a.metrics).with_context(|| format!("reading {}", a.metrics.display()))?;
    let metrics: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{} line {}", a.metrics.display(), i + 1)))
        .collect::<Result<_>>()?;
    if metrics.is_empty() {
        bail!("{}: no steps to plot", a.metrics.display());
    }
    let second = if metrics[0].get("loss").is_some() { "loss" } else { "mean_reward" };
    let series = |field: &str| -> Result<Vec<(f64, f64)>> {
        metrics
            .iter()
            .enumerate()
            .map(|(i, m)| match (m["step"].as_f64(), m[field].as_f64()) {
                (Some(step), Some(v)) => Ok((step, v)),
                _ => bail!("{} line {}: no numeric step and {field}", a.metrics.display(), i + 1),
            })
            .collect()
    };
    let (entropy, other) = (series("mean_entropy")?, series(second)?);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{}" font-family="sans-serif">"#,
        2.0 * PANEL_H
    );
    panel(&mut svg, 0.0, "mean response entropy (nats)", &entropy);
    panel(&mut svg, PANEL_H, &second.replace('_', " "), &other);
    svg.push_str("</svg>\n");
    let out = a.out.unwrap_or_else(|| a.metrics.with_extension("svg"));
    std::fs::write(&out, svg).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("{}", out.display());
    Ok(())
}
