//! Rotary position embedding, Hugging Face rotate-half layout: within each head,
//! element i pairs with element i + head_dim/2. Angles are computed in f64 so
//! long positions keep their precision.

use rayon::prelude::*;

use super::{dims2, f32_data_mut, CpuTensor};
use crate::Result;

pub fn rope(x: &mut CpuTensor, head_dim: usize, positions: &[u32], theta: f32) -> Result<()> {
    rotate(x, head_dim, positions, theta, 1.0)
}

/// The backward of a rotation is the rotation by the opposite angle.
pub fn rope_backward(dy: &mut CpuTensor, head_dim: usize, positions: &[u32], theta: f32) -> Result<()> {
    rotate(dy, head_dim, positions, theta, -1.0)
}

/// Rotate every head pair by `direction` × the position's angle.
fn rotate(x: &mut CpuTensor, head_dim: usize, positions: &[u32], theta: f32, direction: f64) -> Result<()> {
    let (rows, cols) = dims2("rope", x)?;
    let inv_freq = crate::checks::rope(rows, cols, head_dim, positions.len(), theta)?;
    let half = head_dim / 2;
    let data = f32_data_mut("rope", x)?;
    data.par_chunks_mut(cols).zip(positions.par_iter()).for_each(|(row, &pos)| {
        let (cos, sin): (Vec<f32>, Vec<f32>) = inv_freq
            .iter()
            .map(|f| {
                let a = direction * pos as f64 * f;
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
