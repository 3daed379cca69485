//! The entropy-minimisation ops on wgpu: softmax-entropy, its gradient, the fused
//! EM-INF loop and sampling, each one workgroup per row (elementwise for the
//! gradient), with logits of any storage dtype bound in windows of rows.

use super::device::Binding;
use super::kernels::Kernel;
use super::{buf, dims2, require_f32, rows_of, whole, WgpuBackend, WgpuTensor};
use crate::sampling::OUTCOME_WORDS;
use crate::{DType, EmInfParams, EmInfRowStats, EngineError, Result, Rng, SampleOutcome, SamplingParams};

const WG: usize = 256;

pub fn mask_columns(b: &WgpuBackend, x: &mut WgpuTensor, ids: &[u32]) -> Result<()> {
    let (rows, cols) = dims2("mask_columns", x)?;
    require_f32("mask_columns", x)?;
    if let Some(&bad) = ids.iter().find(|&&i| i as usize >= cols) {
        return Err(EngineError::invalid("mask_columns", format!("column {bad} of {cols}")));
    }
    if ids.is_empty() || rows == 0 {
        return Ok(());
    }
    let id_buf = b.gpu.storage_buffer_with(bytemuck::cast_slice(ids))?;
    let params = [rows as u32, cols as u32, ids.len() as u32];
    b.gpu.dispatch(
        Kernel::MaskColumns,
        DType::F32,
        0,
        &[whole(x), Binding::whole(&id_buf)],
        &params,
        (rows * ids.len()).div_ceil(WG),
    )
}

/// (lse, entropy, self-certainty) per row: the one kernel behind `softmax_entropy` (which
/// drops the third) and `softmax_entropy_certainty`.
pub fn softmax_entropy_certainty(
    b: &WgpuBackend,
    logits: &WgpuTensor,
    inv_t: f32,
) -> Result<(WgpuTensor, WgpuTensor, WgpuTensor)> {
    let (rows, cols) = dims2("softmax_entropy", logits)?;
    let lse = b.empty(&[rows], DType::F32)?;
    let ent = b.empty(&[rows], DType::F32)?;
    let certainty = b.empty(&[rows], DType::F32)?;
    for w in b.gpu.row_windows("softmax_entropy", rows, &[(cols * logits.dtype().size_bytes()) as u64])? {
        let params = [(w.end - w.start) as u32, cols as u32, inv_t.to_bits(), w.start as u32];
        b.gpu.dispatch(
            Kernel::SoftmaxEntropy,
            logits.dtype(),
            0,
            &[rows_of(logits, cols, &w), whole(&lse), whole(&ent), whole(&certainty)],
            &params,
            w.end - w.start,
        )?;
    }
    Ok((lse, ent, certainty))
}

pub fn entropy_grad(
    b: &WgpuBackend,
    logits: &WgpuTensor,
    lse: &WgpuTensor,
    entropy: &WgpuTensor,
    upstream: &WgpuTensor,
    inv_t: f32,
) -> Result<WgpuTensor> {
    let (rows, _) = dims2("entropy_grad", logits)?;
    crate::checks::entropy_grad(rows, lse.len(), entropy.len(), upstream.len())?;
    grad(b, logits, lse, entropy, upstream, None, inv_t)
}

#[allow(clippy::too_many_arguments)]
pub fn policy_grad(
    b: &WgpuBackend,
    logits: &WgpuTensor,
    lse: &WgpuTensor,
    entropy: &WgpuTensor,
    targets: &[u32],
    d_logp: &WgpuTensor,
    d_entropy: &WgpuTensor,
    inv_t: f32,
) -> Result<WgpuTensor> {
    let (rows, cols) = dims2("policy_grad", logits)?;
    crate::checks::policy_grad(rows, cols, targets, [lse.len(), entropy.len(), d_logp.len(), d_entropy.len()])?;
    require_f32("policy_grad", d_logp)?;
    grad(b, logits, lse, entropy, d_entropy, Some((targets, d_logp)), inv_t)
}

/// The entropy gradient scaled by `upstream`, plus the log-prob term of
/// [`crate::Backend::policy_grad`] when `log_prob` gives the targets and d_logp.
fn grad(
    b: &WgpuBackend,
    logits: &WgpuTensor,
    lse: &WgpuTensor,
    entropy: &WgpuTensor,
    upstream: &WgpuTensor,
    log_prob: Option<(&[u32], &WgpuTensor)>,
    inv_t: f32,
) -> Result<WgpuTensor> {
    let (rows, cols) = dims2("entropy_grad", logits)?;
    for t in [lse, entropy, upstream] {
        require_f32("entropy_grad", t)?;
    }
    let grad = b.empty(&[rows, cols], DType::F32)?;
    let targets = match log_prob {
        Some((targets, _)) if !targets.is_empty() => Some(b.gpu.storage_buffer_with(bytemuck::cast_slice(targets))?),
        _ => None,
    };
    let dummy = Binding::whole(&b.gpu.dummy);
    let target_binding = targets.as_ref().map_or(dummy, Binding::whole);
    let d_logp_binding = log_prob.map_or(dummy, |(_, d)| whole(d));
    let row_bytes = [(cols * logits.dtype().size_bytes()) as u64, (cols * 4) as u64];
    for w in b.gpu.row_windows("entropy_grad", rows, &row_bytes)? {
        let n = w.end - w.start;
        let params = [n as u32, cols as u32, inv_t.to_bits(), w.start as u32, log_prob.is_some() as u32];
        b.gpu.dispatch(
            Kernel::EntropyGrad,
            logits.dtype(),
            0,
            &[
                rows_of(logits, cols, &w),
                whole(lse),
                whole(entropy),
                whole(upstream),
                target_binding,
                d_logp_binding,
                rows_of(&grad, cols, &w),
            ],
            &params,
            (n * cols).div_ceil(WG),
        )?;
    }
    Ok(grad)
}

pub fn token_logprobs(
    b: &WgpuBackend,
    logits: &WgpuTensor,
    lse: &WgpuTensor,
    targets: &[u32],
    inv_t: f32,
) -> Result<WgpuTensor> {
    let (rows, cols) = dims2("token_logprobs", logits)?;
    crate::checks::token_targets("token_logprobs", rows, cols, targets, &[("lse", lse.len())])?;
    require_f32("token_logprobs", lse)?;
    let out = b.empty(&[rows], DType::F32)?;
    if rows == 0 {
        return Ok(out);
    }
    let target_buf = b.gpu.storage_buffer_with(bytemuck::cast_slice(targets))?;
    for w in b.gpu.row_windows("token_logprobs", rows, &[(cols * logits.dtype().size_bytes()) as u64])? {
        let n = w.end - w.start;
        let params = [n as u32, cols as u32, inv_t.to_bits(), w.start as u32];
        b.gpu.dispatch(
            Kernel::TokenLogprobs,
            logits.dtype(),
            0,
            &[rows_of(logits, cols, &w), whole(lse), Binding::whole(&target_buf), whole(&out)],
            &params,
            n.div_ceil(WG),
        )?;
    }
    Ok(out)
}

pub fn em_inf(b: &WgpuBackend, logits: &WgpuTensor, p: &EmInfParams) -> Result<(WgpuTensor, Vec<EmInfRowStats>)> {
    p.validate()?;
    let (rows, cols) = dims2("em_inf", logits)?;
    let z = b.empty(&[rows, cols], DType::F32)?;
    let stats = b.empty(&[rows, 3], DType::F32)?;
    // The Adam moments: a scratch the workgroups own for the call, m then v per row.
    let moments = b.empty(&[rows, 2 * cols], DType::F32)?;
    let row_bytes = [(cols * logits.dtype().size_bytes()) as u64, (cols * 4) as u64, (2 * cols * 4) as u64];
    for w in b.gpu.row_windows("em_inf", rows, &row_bytes)? {
        let params = [
            (w.end - w.start) as u32,
            cols as u32,
            p.threshold.to_bits(),
            p.lr.to_bits(),
            p.max_steps,
            p.kl_weight.to_bits(),
            (p.beta1).to_bits(),
            (p.beta2).to_bits(),
            p.eps.to_bits(),
            w.start as u32,
        ];
        b.gpu.dispatch(
            Kernel::EmInf,
            logits.dtype(),
            0,
            &[rows_of(logits, cols, &w), rows_of(&z, cols, &w), rows_of(&moments, 2 * cols, &w), whole(&stats)],
            &params,
            w.end - w.start,
        )?;
    }
    let raw: Vec<f32> = bytemuck::pod_collect_to_vec(&b.gpu.read(buf(&stats), 0, (rows * 12) as u64)?);
    Ok((z, crate::em_params::stats_from_device(&raw)?))
}

/// One uniform number per row from the row's generator (none for greedy decoding,
/// like the CPU backend), the filters as kernel parameters, and only (status, token,
/// log-prob, entropy) per row read back.
pub fn sample(
    b: &WgpuBackend,
    logits: &WgpuTensor,
    params: &SamplingParams,
    rngs: &mut [Rng],
) -> Result<Vec<SampleOutcome>> {
    let (rows, cols) = dims2("sample", logits)?;
    let draw = crate::sampling::device_draw(params, rows, cols, rngs)?;
    if rows == 0 {
        return Ok(Vec::new());
    }
    let uniform_buf = b.gpu.storage_buffer_with(bytemuck::cast_slice(&draw.uniforms))?;
    let banned_buf = if params.banned.is_empty() {
        None
    } else {
        Some(b.gpu.storage_buffer_with(bytemuck::cast_slice(&crate::sampling::banned_bits(&params.banned, cols)))?)
    };
    let out = b.empty(&[rows, OUTCOME_WORDS], DType::F32)?;
    let outcome_bytes = (OUTCOME_WORDS * 4) as u64;
    for w in b.gpu.row_windows("sample", rows, &[(cols * logits.dtype().size_bytes()) as u64, 4, outcome_bytes])? {
        let n = w.end - w.start;
        let kernel_params = [
            n as u32,
            cols as u32,
            draw.inv_t.to_bits(),
            draw.greedy as u32,
            draw.top_k,
            params.top_p.to_bits(),
            params.min_p.to_bits(),
            banned_buf.is_some() as u32,
        ];
        b.gpu.dispatch(
            Kernel::Sample,
            logits.dtype(),
            0,
            &[
                rows_of(logits, cols, &w),
                Binding::whole(banned_buf.as_ref().unwrap_or(&b.gpu.dummy)),
                Binding::range(&uniform_buf, w.start as u64 * 4, n as u64 * 4),
                rows_of(&out, OUTCOME_WORDS, &w),
            ],
            &kernel_params,
            n,
        )?;
    }
    let raw: Vec<u32> = bytemuck::pod_collect_to_vec(&b.gpu.read(buf(&out), 0, rows as u64 * outcome_bytes)?);
    crate::sampling::outcomes_from_device(&raw)
}
