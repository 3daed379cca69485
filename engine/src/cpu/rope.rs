//! Rotary position embedding, Hugging Face rotate-half layout: within each head,
//! element i pairs with element i + head_dim/2. Angles are computed in f64 so
//! long positions keep their precision.

use rayon::prelude::*;

use super::{dims2, f32_data_mut, CpuTensor};
use crate::{EngineError, Result};

pub fn rope(x: &mut CpuTensor, head_dim: usize, positions: &[u32], theta: f32) -> Result<()> {
    let (rows, cols) = dims2("rope", x)?;
    if head_dim == 0 || !head_dim.is_multiple_of(2) || cols % head_dim != 0 {
        return Err(EngineError::shape("rope", format!("head_dim {head_dim} must be even and divide {cols}")));
    }
    if positions.len() != rows {
        return Err(EngineError::shape("rope", format!("{} positions for {rows} rows", positions.len())));
    }
    let half = head_dim / 2;
    let inv_freq: Vec<f64> = (0..half).map(|i| 1.0 / (theta as f64).powf(2.0 * i as f64 / head_dim as f64)).collect();
    let data = f32_data_mut("rope", x)?;
    data.par_chunks_mut(cols).zip(positions.par_iter()).for_each(|(row, &pos)| {
        let (cos, sin): (Vec<f32>, Vec<f32>) = inv_freq
            .iter()
            .map(|f| {
                let a = pos as f64 * f;
                (a.cos() as f32, a.sin() as f32)
            })
            .unzip();
        for head in row.chunks_mut(head_dim) {
            let (lo, hi) = head.split_at_mut(half);
            for i in 0..half {
                let (a, b) = (lo[i], hi[i]);
                lo[i] = a * cos[i] - b * sin[i];
                hi[i] = b * cos[i] + a * sin[i];
            }
        }
    });
    Ok(())
}
