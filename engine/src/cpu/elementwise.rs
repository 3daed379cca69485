//! Embedding gather, SiLU·mul and residual add.

use rayon::prelude::*;

use super::simd::Element;
use super::{dims2, f32_data, f32_data_mut, output, CpuStorage, CpuTensor};
use crate::{EngineError, Result};

const PAR_MIN: usize = 1 << 15;

pub fn embedding(table: &CpuTensor, ids: &[u32]) -> Result<CpuTensor> {
    let (vocab, dim) = dims2("embedding", table)?;
    if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(EngineError::invalid("embedding", format!("token id {bad} ≥ vocabulary size {vocab}")));
    }
    fn gather<E: Element>(t: &[E], ids: &[u32], dim: usize) -> Vec<f32> {
        let mut out = vec![0f32; ids.len() * dim];
        for (row, &id) in out.chunks_mut(dim).zip(ids) {
            let src = &t[id as usize * dim..(id as usize + 1) * dim];
            for (o, s) in row.iter_mut().zip(src) {
                *o = s.to_f32();
            }
        }
        out
    }
    let data = match table.storage() {
        CpuStorage::F32(t) => gather(t, ids, dim),
        CpuStorage::F16(t) => gather(t, ids, dim),
        CpuStorage::BF16(t) => gather(t, ids, dim),
        CpuStorage::Blocks(bytes) => return super::quant_linear::embedding(table, bytes, ids),
    };
    Ok(output(data, &[ids.len(), dim]))
}

fn same_shape(op: &'static str, a: &CpuTensor, b: &CpuTensor) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(EngineError::shape(op, format!("{:?} vs {:?}", a.shape(), b.shape())));
    }
    Ok(())
}

pub fn silu_mul(gate: &CpuTensor, up: &CpuTensor) -> Result<CpuTensor> {
    same_shape("silu_mul", gate, up)?;
    let g = f32_data("silu_mul", gate)?;
    let u = f32_data("silu_mul", up)?;
    let mut out = vec![0f32; g.len()];
    let f = |(o, (g, u)): (&mut f32, (&f32, &f32))| *o = g / (1.0 + (-g).exp()) * u;
    if out.len() >= PAR_MIN {
        out.par_iter_mut().zip(g.par_iter().zip(u.par_iter())).for_each(f);
    } else {
        out.iter_mut().zip(g.iter().zip(u.iter())).for_each(f);
    }
    Ok(output(out, gate.shape()))
}

pub fn add_assign(x: &mut CpuTensor, y: &CpuTensor) -> Result<()> {
    same_shape("add_assign", x, y)?;
    let y = f32_data("add_assign", y)?;
    let x = f32_data_mut("add_assign", x)?;
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
    Ok(())
}

/// Rows of `dy` added into the rows `ids` of `d_table [vocab, dim]` (repeats accumulate).
pub fn embedding_backward(ids: &[u32], dy: &CpuTensor, d_table: &mut CpuTensor) -> Result<()> {
    const OP: &str = "embedding_backward";
    let (_, dim) = crate::checks::embedding_backward(ids, dy.shape(), d_table.shape())?;
    let dys = f32_data(OP, dy)?;
    let table = f32_data_mut(OP, d_table)?;
    for (row, &id) in dys.chunks(dim.max(1)).zip(ids) {
        table[id as usize * dim..][..dim].iter_mut().zip(row).for_each(|(t, d)| *t += d);
    }
    Ok(())
}

/// out = silu(g)·u with silu(g) = g·σ(g): dgate = dy·u·σ(g)·(1 + g·(1 − σ(g))), dup = dy·silu(g).
pub fn silu_mul_backward(gate: &CpuTensor, up: &CpuTensor, dy: &CpuTensor) -> Result<(CpuTensor, CpuTensor)> {
    same_shape("silu_mul_backward", gate, up)?;
    same_shape("silu_mul_backward", gate, dy)?;
    let (g, u, d) =
        (f32_data("silu_mul_backward", gate)?, f32_data("silu_mul_backward", up)?, f32_data("silu_mul_backward", dy)?);
    let (dgate, dup): (Vec<f32>, Vec<f32>) = g
        .par_iter()
        .zip(u.par_iter().zip(d.par_iter()))
        .map(|(&g, (&u, &d))| {
            let s = 1.0 / (1.0 + (-g).exp());
            (d * u * s * (1.0 + g * (1.0 - s)), d * g * s)
        })
        .unzip();
    Ok((output(dgate, gate.shape()), output(dup, gate.shape())))
}
