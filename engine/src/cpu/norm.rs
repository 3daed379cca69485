//! RMSNorm: y = x / sqrt(mean(x²) + eps) · w, accumulated in f64 per row since
//! hidden sizes are small and the row is read once anyway.

use rayon::prelude::*;

use super::{dims2, f32_data, f32_data_mut, output, CpuTensor};
use crate::{Backend, EngineError, Result};

pub fn rms_norm(x: &CpuTensor, weight: &CpuTensor, eps: f32) -> Result<CpuTensor> {
    let (rows, dim) = dims2("rms_norm", x)?;
    if weight.len() != dim {
        return Err(EngineError::shape("rms_norm", format!("weight has {} elements, rows have {dim}", weight.len())));
    }
    let w = super::CpuBackend.to_host_f32(weight)?;
    let xs = f32_data("rms_norm", x)?;
    let mut out = vec![0f32; rows * dim];
    out.par_chunks_mut(dim.max(1)).zip(xs.par_chunks(dim.max(1))).for_each(|(o, x)| {
        let ss: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
        let inv = (1.0 / (ss / dim as f64 + eps as f64).sqrt()) as f32;
        for ((o, &x), &w) in o.iter_mut().zip(x).zip(&w) {
            *o = x * inv * w;
        }
    });
    Ok(output(out, &[rows, dim]))
}

/// With r = (mean(x²) + eps)^(−1/2) per row: dw_c += Σ_rows dy_c·x_c·r and
/// dx_c = r·w_c·dy_c − x_c·r³/D · Σ_j dy_j·w_j·x_j. Row sums in f64, as the forward.
pub fn rms_norm_backward(
    x: &CpuTensor,
    weight: &CpuTensor,
    dy: &CpuTensor,
    eps: f32,
    d_weight: &mut CpuTensor,
) -> Result<CpuTensor> {
    const OP: &str = "rms_norm_backward";
    let (rows, dim) = crate::checks::rms_norm_backward(x.shape(), weight.shape(), dy.shape(), d_weight.shape())?;
    let w = super::CpuBackend.to_host_f32(weight)?;
    let (xs, dys) = (f32_data(OP, x)?, f32_data(OP, dy)?);
    let mut dx = vec![0f32; rows * dim];
    let dw_rows: Vec<Vec<f64>> = dx
        .par_chunks_mut(dim.max(1))
        .zip(xs.par_chunks(dim.max(1)).zip(dys.par_chunks(dim.max(1))))
        .map(|(dx, (x, dy))| {
            let ss: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
            let r = 1.0 / (ss / dim as f64 + eps as f64).sqrt();
            let dot: f64 = x.iter().zip(dy).zip(&w).map(|((&x, &dy), &w)| x as f64 * dy as f64 * w as f64).sum();
            let c = r * r * r * dot / dim as f64;
            for (((dx, &x), &dy), &w) in dx.iter_mut().zip(x).zip(dy).zip(&w) {
                *dx = (r * w as f64 * dy as f64 - x as f64 * c) as f32;
            }
            x.iter().zip(dy).map(|(&x, &dy)| dy as f64 * x as f64 * r).collect()
        })
        .collect();
    let mut dw = vec![0f64; dim];
    for row in &dw_rows {
        dw.iter_mut().zip(row).for_each(|(a, b)| *a += b);
    }
    f32_data_mut(OP, d_weight)?.iter_mut().zip(&dw).for_each(|(a, &b)| *a += b as f32);
    Ok(output(dx, &[rows, dim]))
}
