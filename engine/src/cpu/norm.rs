//! RMSNorm: y = x / sqrt(mean(x²) + eps) · w, accumulated in f64 per row since
//! hidden sizes are small and the row is read once anyway.

use rayon::prelude::*;

use super::{dims2, f32_data, output, CpuTensor};
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
