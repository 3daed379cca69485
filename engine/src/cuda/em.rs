//! The entropy-minimisation ops on CUDA: softmax-entropy, its gradient, the fused
//! EM-INF loop and sampling, one block per row (elementwise for the gradient).
//! Only per-row results (statistics, sampled tokens) come back to the host.

use super::device::launch;
use super::{buf, dims2, require_f32, u32_of, CudaBackend, CudaTensor};
use crate::kernel::Kernel;
use crate::sampling::OUTCOME_WORDS;
use crate::{DType, EmInfParams, EmInfRowStats, EngineError, Result, Rng, SampleOutcome, SamplingParams};

const WG: u32 = 256;
const ROW_WG: u32 = 1024;

pub fn mask_columns(b: &CudaBackend, x: &mut CudaTensor, ids: &[u32]) -> Result<()> {
    let (rows, cols) = dims2("mask_columns", x)?;
    require_f32("mask_columns", x)?;
    if let Some(&bad) = ids.iter().find(|&&i| i as usize >= cols) {
        return Err(EngineError::invalid("mask_columns", format!("column {bad} of {cols}")));
    }
    if ids.is_empty() || rows == 0 {
        return Ok(());
    }
    let id_buf = b.dev.upload(bytemuck::cast_slice(ids))?;
    let total = rows * ids.len();
    let (r, c, n) = (u32_of("mask_columns", rows)?, u32_of("mask_columns", cols)?, u32_of("mask_columns", ids.len())?);
    u32_of("mask_columns", total)?;
    launch!(b.dev, Kernel::MaskColumns, DType::F32, (total.div_ceil(WG as usize), 1), WG, [buf(x), &id_buf, &r, &c, &n])
}

/// (lse, entropy, self-certainty) per row: the one kernel behind `softmax_entropy` (which
/// drops the third) and `softmax_entropy_certainty`.
pub fn softmax_entropy_certainty(
    b: &CudaBackend,
    logits: &CudaTensor,
    inv_t: f32,
) -> Result<(CudaTensor, CudaTensor, CudaTensor)> {
    let (rows, cols) = dims2("softmax_entropy", logits)?;
    let lse = b.empty(&[rows], DType::F32)?;
    let ent = b.empty(&[rows], DType::F32)?;
    let certainty = b.empty(&[rows], DType::F32)?;
    if rows > 0 {
        let (r, c) = (u32_of("softmax_entropy", rows)?, u32_of("softmax_entropy", cols)?);
        launch!(
            b.dev,
            Kernel::SoftmaxEntropy,
            logits.dtype(),
            (rows, 1),
            ROW_WG,
            [buf(logits), buf(&lse), buf(&ent), buf(&certainty), &r, &c, &inv_t]
        )?;
    }
    Ok((lse, ent, certainty))
}

pub fn entropy_grad(
    b: &CudaBackend,
    logits: &CudaTensor,
    lse: &CudaTensor,
    entropy: &CudaTensor,
    upstream: &CudaTensor,
    inv_t: f32,
) -> Result<CudaTensor> {
    let (rows, _) = dims2("entropy_grad", logits)?;
    crate::checks::entropy_grad(rows, lse.len(), entropy.len(), upstream.len())?;
    grad(b, logits, lse, entropy, upstream, None, inv_t)
}

#[allow(clippy::too_many_arguments)]
pub fn policy_grad(
    b: &CudaBackend,
    logits: &CudaTensor,
    lse: &CudaTensor,
    entropy: &CudaTensor,
    targets: &[u32],
    d_logp: &CudaTensor,
    d_entropy: &CudaTensor,
    inv_t: f32,
) -> Result<CudaTensor> {
    let (rows, cols) = dims2("policy_grad", logits)?;
    crate::checks::policy_grad(rows, cols, targets, [lse.len(), entropy.len(), d_logp.len(), d_entropy.len()])?;
    require_f32("policy_grad", d_logp)?;
    grad(b, logits, lse, entropy, d_entropy, Some((targets, d_logp)), inv_t)
}

/// The entropy gradient scaled by `upstream`, plus the log-prob term of
/// [`crate::Backend::policy_grad`] when `log_prob` gives the targets and d_logp.
fn grad(
    b: &CudaBackend,
    logits: &CudaTensor,
    lse: &CudaTensor,
    entropy: &CudaTensor,
    upstream: &CudaTensor,
    log_prob: Option<(&[u32], &CudaTensor)>,
    inv_t: f32,
) -> Result<CudaTensor> {
    let (rows, cols) = dims2("entropy_grad", logits)?;
    for t in [lse, entropy, upstream] {
        require_f32("entropy_grad", t)?;
    }
    let grad = b.empty(&[rows, cols], DType::F32)?;
    let total = rows * cols;
    if total == 0 {
        return Ok(grad);
    }
    let (r, c) = (u32_of("entropy_grad", rows)?, u32_of("entropy_grad", cols)?);
    u32_of("entropy_grad", total)?;
    // Without the log-prob term the kernel reads neither targets nor d_logp; any valid
    // address does, so nothing is uploaded.
    let targets = log_prob.map(|(t, _)| b.dev.upload(bytemuck::cast_slice(t))).transpose()?;
    let target_ptr = targets.as_ref().unwrap_or(buf(lse));
    let d_logp = log_prob.map_or(buf(upstream), |(_, d)| buf(d));
    let has_logp = log_prob.is_some() as u32;
    launch!(
        b.dev,
        Kernel::EntropyGrad,
        logits.dtype(),
        (total.div_ceil(WG as usize), 1),
        WG,
        [buf(logits), buf(lse), buf(entropy), buf(upstream), target_ptr, d_logp, buf(&grad), &r, &c, &inv_t, &has_logp]
    )?;
    Ok(grad)
}

pub fn token_logprobs(
    b: &CudaBackend,
    logits: &CudaTensor,
    lse: &CudaTensor,
    targets: &[u32],
    inv_t: f32,
) -> Result<CudaTensor> {
    let (rows, cols) = dims2("token_logprobs", logits)?;
    crate::checks::token_targets("token_logprobs", rows, cols, targets, &[("lse", lse.len())])?;
    require_f32("token_logprobs", lse)?;
    let out = b.empty(&[rows], DType::F32)?;
    if rows == 0 {
        return Ok(out);
    }
    let (r, c) = (u32_of("token_logprobs", rows)?, u32_of("token_logprobs", cols)?);
    let target_buf = b.dev.upload(bytemuck::cast_slice(targets))?;
    launch!(
        b.dev,
        Kernel::TokenLogprobs,
        logits.dtype(),
        (rows.div_ceil(WG as usize), 1),
        WG,
        [buf(logits), buf(lse), &target_buf, buf(&out), &r, &c, &inv_t]
    )?;
    Ok(out)
}

pub fn em_inf(b: &CudaBackend, logits: &CudaTensor, p: &EmInfParams) -> Result<(CudaTensor, Vec<EmInfRowStats>)> {
    p.validate()?;
    let (rows, cols) = dims2("em_inf", logits)?;
    let z = b.empty(&[rows, cols], DType::F32)?;
    if rows == 0 {
        return Ok((z, Vec::new()));
    }
    let stats = b.empty(&[rows, 3], DType::F32)?;
    // The Adam moments: a scratch the blocks own for the call, m then v per row.
    let moments = b.dev.alloc(rows * 2 * cols * 4)?;
    u32_of("em_inf", rows * 2 * cols)?;
    let (r, c) = (u32_of("em_inf", rows)?, u32_of("em_inf", cols)?);
    launch!(
        b.dev,
        Kernel::EmInf,
        logits.dtype(),
        (rows, 1),
        ROW_WG,
        [
            buf(logits),
            buf(&z),
            &moments,
            buf(&stats),
            &r,
            &c,
            &p.threshold,
            &p.lr,
            &p.max_steps,
            &p.kl_weight,
            &p.beta1,
            &p.beta2,
            &p.eps
        ]
    )?;
    let raw: Vec<f32> = bytemuck::pod_collect_to_vec(&b.dev.read(buf(&stats), rows * 12)?);
    Ok((z, crate::em_params::stats_from_device(&raw)?))
}

/// One uniform number per row from the row's generator (none for greedy decoding, like
/// the other backends, so a seed reproduces a generation everywhere), the filters as
/// kernel arguments, and only (status, token, log-prob) per row read back.
pub fn sample(
    b: &CudaBackend,
    logits: &CudaTensor,
    params: &SamplingParams,
    rngs: &mut [Rng],
) -> Result<Vec<SampleOutcome>> {
    let (rows, cols) = dims2("sample", logits)?;
    let draw = crate::sampling::device_draw(params, rows, cols, rngs)?;
    if rows == 0 {
        return Ok(Vec::new());
    }
    let uniform_buf = b.dev.upload(bytemuck::cast_slice(&draw.uniforms))?;
    let banned_buf = b.dev.upload(bytemuck::cast_slice(&crate::sampling::banned_bits(&params.banned, cols)))?;
    let out = b.dev.alloc(rows * OUTCOME_WORDS * 4)?;
    let (r, c) = (u32_of("sample", rows)?, u32_of("sample", cols)?);
    let (greedy, has_banned) = (draw.greedy as u32, !params.banned.is_empty() as u32);
    launch!(
        b.dev,
        Kernel::Sample,
        logits.dtype(),
        (rows, 1),
        ROW_WG,
        [
            buf(logits),
            &banned_buf,
            &uniform_buf,
            &out,
            &r,
            &c,
            &draw.inv_t,
            &greedy,
            &draw.top_k,
            &params.top_p,
            &params.min_p,
            &has_banned
        ]
    )?;
    let raw: Vec<u32> = bytemuck::pod_collect_to_vec(&b.dev.read(&out, rows * OUTCOME_WORDS * 4)?);
    crate::sampling::outcomes_from_device(&raw)
}
