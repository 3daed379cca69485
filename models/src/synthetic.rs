//! Models with random weights in the shapes and storage formats of a real one.
//!
//! Speed depends on shapes and formats, not on the values, so a synthetic model measures
//! what the real one would where the real file cannot go (the GPU machine takes 64 MiB of
//! luggage; a GGUF alone is 98 MB to 1.1 GB: docs/gpu.md). Each tensor is made of random
//! blocks of its file format — random quants, scales drawn in a range that gives weights
//! of a trained model's size — and goes through the same dequantisation as a tensor read
//! from a file. Norm weights are near 1. The values depend only on the seed and the
//! tensor's name, so every backend loading the same synthetic model gets the same weights
//! (CPU-vs-GPU parity on real shapes without the file).

use entmin_engine::{DType, HostVec, Rng};
use half::f16;

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::gguf::GgmlType;
use crate::weights::{gguf_name, HostTensor, TensorSource};

/// Where a tensor's storage format comes from: the GGUF tensor name (`blk.3.ffn_down.weight`)
/// → its format. The catalog writes one per model, read off the real file.
pub type FormatOf = fn(gguf_name: &str, layer: Option<usize>) -> GgmlType;

/// A model's shapes and formats; hands out random tensors by Hugging Face name.
pub struct SyntheticSource {
    pub config: ModelConfig,
    pub format_of: FormatOf,
    pub seed: u64,
}

impl SyntheticSource {
    /// Every tensor the decoder reads, as (Hugging Face name, row-major shape).
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.config.tensor_shapes()
    }

    /// The storage format of the tensor with this Hugging Face name.
    pub fn format(&self, hf_name: &str) -> Option<GgmlType> {
        let g = gguf_name(hf_name)?;
        let layer = g.strip_prefix("blk.").and_then(|r| r.split('.').next()).and_then(|n| n.parse().ok());
        Some((self.format_of)(&g, layer))
    }
}

/// An f16's bytes for a random value in [0.5, 1] × `nominal`.
fn scale(rng: &mut Rng, nominal: f32) -> [u8; 2] {
    f16::from_f32(nominal * (0.5 + 0.5 * rng.next_f64() as f32)).to_le_bytes()
}

/// One block of `ty` with random quants and its f16 scales (at the offsets of ggml's
/// block structs) set to sizes that give |w| of a few hundredths, as in trained models.
fn random_block(ty: GgmlType, rng: &mut Rng, out: &mut [u8]) -> std::result::Result<(), String> {
    for chunk in out.chunks_mut(8) {
        let r = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&r[..chunk.len()]);
    }
    // (byte offset, nominal value) of each f16 scale. Q4_1/Q5_1 add their min (negative
    // here, to centre the weights); the K-quants subtract theirs (positive).
    let scales: &[(usize, f32)] = match ty {
        GgmlType::Q4_0 => &[(0, 0.008)],
        GgmlType::IQ4_NL => &[(0, 0.0004)],
        GgmlType::Q4_1 => &[(0, 0.005), (2, -0.04)],
        GgmlType::Q5_0 => &[(0, 0.004)],
        GgmlType::Q5_1 => &[(0, 0.0025), (2, -0.04)],
        GgmlType::Q8_0 => &[(0, 0.0004)],
        GgmlType::Q2K => &[(80, 0.002), (82, 0.001)],
        GgmlType::Q3K => &[(108, 0.0005)],
        GgmlType::Q4K | GgmlType::Q5K => &[(0, 0.0001), (2, 0.0001)],
        GgmlType::Q6K => &[(208, 0.00001)],
        GgmlType::IQ4_XS => &[(0, 0.00003)],
        other => return Err(format!("no synthetic blocks for {other}")),
    };
    for &(at, nominal) in scales {
        out[at..at + 2].copy_from_slice(&scale(rng, nominal));
    }
    Ok(())
}

/// A seed per tensor from the model seed and the name (FNV-1a), so that the order in
/// which tensors are loaded does not change them.
fn tensor_seed(seed: u64, name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64 ^ seed, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Blocks generated per task: each chunk has its own generator (seeded by the tensor and
/// the chunk index), so the values do not depend on the number of threads.
const CHUNK_ELEMENTS: usize = 1 << 16;

/// `n` random values of a tensor stored as `ty`: dense values for the dense types,
/// the blocks themselves for block formats.
pub fn random_tensor(ty: GgmlType, n: usize, name: &str, seed: u64) -> std::result::Result<HostVec, String> {
    use rayon::prelude::*;
    let base = tensor_seed(seed, name);
    let chunk_rng = |i: usize| Rng::new(base ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let dtype = ty.dtype().ok_or_else(|| format!("{ty} cannot be read"))?;
    match dtype.block() {
        None => {
            let (centre, spread) = if name.ends_with("norm.weight") { (1.0, 0.1) } else { (0.0, 0.03) };
            let mut out = vec![0f32; n];
            out.par_chunks_mut(CHUNK_ELEMENTS).enumerate().for_each(|(i, chunk)| {
                let mut rng = chunk_rng(i);
                chunk.iter_mut().for_each(|x| *x = centre + spread * (2.0 * rng.next_f64() as f32 - 1.0));
            });
            Ok(HostVec::F32(out))
        }
        Some(block) => {
            if !n.is_multiple_of(block.elements) {
                return Err(format!("{n} values are not whole {ty} blocks of {}", block.elements));
            }
            let blocks_per_chunk = (CHUNK_ELEMENTS / block.elements).max(1);
            let mut bytes = vec![0u8; n / block.elements * block.bytes];
            bytes.par_chunks_mut(blocks_per_chunk * block.bytes).enumerate().try_for_each(|(i, chunk)| {
                let mut rng = chunk_rng(i);
                chunk.chunks_mut(block.bytes).try_for_each(|b| random_block(ty, &mut rng, b))
            })?;
            HostVec::blocks(dtype, bytes, n)
        }
    }
}

/// `n` random f32 values of a tensor stored as `ty` (its blocks, dequantised).
pub fn random_values(ty: GgmlType, n: usize, name: &str, seed: u64) -> std::result::Result<Vec<f32>, String> {
    match random_tensor(ty, n, name, seed)?.to_dense(DType::F32)? {
        HostVec::F32(v) => Ok(v),
        _ => unreachable!("to_dense returns the dtype it is asked for"),
    }
}

impl TensorSource for SyntheticSource {
    fn path_of(&self, _name: &str) -> std::path::PathBuf {
        std::path::PathBuf::from("<synthetic>")
    }

    fn load(&self, name: &str, dtype: DType) -> Result<Option<HostTensor>> {
        let Some(t) = self.load_stored(name)? else { return Ok(None) };
        let data = t.data.to_dense(dtype).map_err(|e| ModelError::Invalid(format!("synthetic tensor {name}: {e}")))?;
        Ok(Some(HostTensor { data, shape: t.shape }))
    }

    fn load_stored(&self, name: &str) -> Result<Option<HostTensor>> {
        let Some((_, shape)) = self.tensor_shapes().into_iter().find(|(n, _)| n == name) else { return Ok(None) };
        let ty =
            self.format(name).ok_or_else(|| ModelError::Invalid(format!("synthetic model: no format for {name}")))?;
        let data = random_tensor(ty, shape.iter().product(), name, self.seed)
            .map_err(|e| ModelError::Invalid(format!("synthetic model, tensor {name}: {e}")))?;
        Ok(Some(HostTensor { data, shape }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every format a catalog model uses gives finite, non-zero weights of a trained
    /// model's size, the same for the same name and seed and different for another name.
    #[test]
    fn random_blocks_give_sane_weights() {
        use GgmlType::*;
        for ty in [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2K, Q3K, Q4K, Q5K, Q6K, IQ4_NL, IQ4_XS, F32, F16, BF16] {
            let n = 4096;
            let w = random_values(ty, n, "blk.0.ffn_up.weight", 7).unwrap();
            assert!(w.iter().all(|x| x.is_finite()), "{ty}: non-finite weight");
            let rms = (w.iter().map(|x| (x * x) as f64).sum::<f64>() / n as f64).sqrt();
            assert!((0.003..0.3).contains(&rms), "{ty}: rms {rms}");
            assert!(w.iter().filter(|x| **x == 0.0).count() < n / 4, "{ty}: too many zeros");
            assert_eq!(w, random_values(ty, n, "blk.0.ffn_up.weight", 7).unwrap(), "{ty}: not reproducible");
            assert_ne!(w, random_values(ty, n, "blk.1.ffn_up.weight", 7).unwrap(), "{ty}: same for two names");
        }
        let norm = random_values(F32, 64, "blk.0.attn_norm.weight", 1).unwrap();
        assert!(norm.iter().all(|x| (0.89..1.11).contains(x)));
        assert!(random_values(Q4K, 100, "x", 1).is_err(), "a partial block is an error");
    }
}
