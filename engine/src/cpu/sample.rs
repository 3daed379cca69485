//! Token sampling on the host: banned ids, temperature, top-k, top-p, min-p, then
//! an inverse-CDF draw in f64. The log-sum-exp comes from the vectorised
//! softmax-entropy pass; plain sampling walks the row once; top-k / top-p never
//! sort the whole vocabulary: candidates are found by selection and only the
//! short head is sorted.

use std::borrow::Cow;

use rayon::prelude::*;

use super::entropy::softmax_entropy_row;
use super::{dims2, f32_data, CpuTensor};
use crate::Backend;
use crate::{EngineError, Result, Rng, SampleOutcome, SamplingParams};

pub fn sample(logits: &CpuTensor, params: &SamplingParams, rngs: &mut [Rng]) -> Result<Vec<SampleOutcome>> {
    params.validate()?;
    let (rows, cols) = dims2("sample", logits)?;
    if rngs.len() != rows {
        return Err(EngineError::shape("sample", format!("{} generators for {rows} rows", rngs.len())));
    }
    let widened;
    let data: &[f32] = match f32_data("sample", logits) {
        Ok(d) => d,
        Err(_) => {
            widened = super::CpuBackend.to_host_f32(logits)?;
            &widened
        }
    };
    rngs.par_iter_mut()
        .enumerate()
        .map(|(r, rng)| {
            sample_row(&data[r * cols..(r + 1) * cols], params, rng)
                .map_err(|what| EngineError::NonFinite { row: r, what })
        })
        .collect()
}

fn sample_row(row: &[f32], params: &SamplingParams, rng: &mut Rng) -> Result<SampleOutcome, &'static str> {
    let z: Cow<'_, [f32]> = if params.banned.is_empty() {
        Cow::Borrowed(row)
    } else {
        let mut z = row.to_vec();
        for &b in &params.banned {
            if let Some(v) = z.get_mut(b as usize) {
                *v = f32::NEG_INFINITY;
            }
        }
        Cow::Owned(z)
    };
    let z: &[f32] = &z;
    if z.is_empty() {
        return Err("an empty row");
    }
    let temperature = if params.temperature == 0.0 { 1.0 } else { params.temperature };
    // One vectorised pass: lse of z/T; NaN or +inf anywhere makes it NaN.
    let (lse32, h) = softmax_entropy_row(z, 1.0 / temperature);
    if lse32.is_nan() || h.is_nan() {
        return Err("NaN or +inf");
    }
    if lse32 == f32::NEG_INFINITY {
        return Err("every token masked or −inf");
    }
    let inv_t = 1.0 / temperature as f64;
    let lse = lse32 as f64;
    let logprob = |i: usize| (z[i] as f64 * inv_t - lse) as f32;
    let outcome = |i: usize| SampleOutcome { token: i as u32, logprob: logprob(i), entropy: h };
    if params.temperature == 0.0 {
        let best = argmax(z);
        return Ok(outcome(best));
    }
    if params.top_k == 0 && params.top_p >= 1.0 && params.min_p == 0.0 {
        // Inverse CDF over the whole row in id order, stopping at the drawn token.
        let u = rng.next_f64();
        let mut acc = 0.0f64;
        let mut last = 0;
        for (i, &x) in z.iter().enumerate() {
            if x == f32::NEG_INFINITY {
                continue;
            }
            acc += (x as f64 * inv_t - lse).exp();
            last = i;
            if u < acc {
                return Ok(outcome(i));
            }
        }
        // Rounding left u just above the total: the last finite token.
        return Ok(outcome(last));
    }
    let max = z[argmax(z)] as f64;
    let weight = |i: u32| ((z[i as usize] as f64 - max) * inv_t).exp();
    let by_logit = |a: &u32, b: &u32| z[*b as usize].total_cmp(&z[*a as usize]).then(a.cmp(b));
    let finite: Vec<u32> = (0..z.len() as u32).filter(|&i| z[i as usize] > f32::NEG_INFINITY).collect();
    // Candidates: the sorted top-k head; or, for top-p, a sorted head grown (×4) until it
    // holds top_p of the mass; or every finite token in id order.
    let cands: Vec<u32> = if params.top_k > 0 {
        top_sorted(finite, params.top_k, by_logit)
    } else if params.top_p < 1.0 {
        // Σ e^{(z−max)/T} = e^{lse − max/T}.
        let total = (lse - max * inv_t).exp();
        let mut want = 256;
        loop {
            let head = top_sorted(finite.clone(), want, by_logit);
            let head_mass: f64 = head.iter().map(|&i| weight(i)).sum();
            if head.len() == finite.len() || head_mass >= params.top_p as f64 * total {
                break head;
            }
            want *= 4;
        }
    } else {
        finite
    };
    let cand_mass: f64 = cands.iter().map(|&i| weight(i)).sum();
    let keep_mass = params.top_p as f64 * cand_mass;
    let mut kept = Vec::with_capacity(cands.len());
    let mut mass = 0.0;
    for &i in &cands {
        let w = weight(i);
        // Weights are relative to the best token, so min-p compares w with min_p directly.
        if w < params.min_p as f64 {
            continue;
        }
        kept.push((i, w));
        mass += w;
        if params.top_p < 1.0 && mass >= keep_mass {
            break;
        }
    }
    let mut u = rng.next_f64() * mass;
    for &(i, w) in &kept {
        if u < w {
            return Ok(outcome(i as usize));
        }
        u -= w;
    }
    let (last, _) = *kept.last().expect("kept holds at least the best token");
    Ok(outcome(last as usize))
}

/// The `k` largest entries of `ids` by `cmp`, sorted; selection first so only k are sorted.
fn top_sorted(mut ids: Vec<u32>, k: usize, cmp: impl Fn(&u32, &u32) -> std::cmp::Ordering) -> Vec<u32> {
    if k < ids.len() {
        ids.select_nth_unstable_by(k, &cmp);
        ids.truncate(k);
    }
    ids.sort_unstable_by(cmp);
    ids
}

/// Index of the largest logit (the first, on ties).
fn argmax(z: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in z.iter().enumerate() {
        if x > z[best] {
            best = i;
        }
    }
    best
}
