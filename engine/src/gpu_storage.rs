//! What the GPU backends' storage shares: the bytes an upload keeps on the device
//! (f32 as is, f16 / bf16 as 16-bit words, [`GPU_BLOCK_FORMATS`] blocks exactly as a
//! GGUF file stores them) and how they read back as f32.

use half::{bf16, f16};

use crate::kernel::GPU_BLOCK_FORMATS;
use crate::{DType, EngineError, HostData, Result};

/// The bytes of `data` a GPU upload of `shape` stores, after checking that they fill
/// the shape and that the weight kernels can decode their format.
pub fn upload_bytes<'a>(data: &HostData<'a>, shape: &[usize]) -> Result<&'a [u8]> {
    let n: usize = shape.iter().product();
    if n != data.len() {
        return Err(EngineError::shape("upload", format!("{} elements for shape {shape:?} ({n})", data.len())));
    }
    Ok(match *data {
        HostData::F32(d) => bytemuck::cast_slice(d),
        HostData::F16(d) => bytemuck::cast_slice(d),
        HostData::BF16(d) => bytemuck::cast_slice(d),
        // Blocks stay blocks: the weight-reading kernels decode them in registers.
        HostData::Blocks { dtype, bytes, .. } if GPU_BLOCK_FORMATS.contains(&dtype) => bytes,
        HostData::Blocks { dtype, .. } => return Err(EngineError::DType { op: "upload", dtype }),
    })
}

/// `len` elements of `dtype` read back from the device as f32 (blocks through the
/// reference dequantiser).
pub fn to_f32(dtype: DType, bytes: &[u8], len: usize) -> Result<Vec<f32>> {
    Ok(match dtype {
        DType::F32 => bytemuck::pod_collect_to_vec(bytes),
        DType::F16 => bytemuck::pod_collect_to_vec::<u8, f16>(bytes).iter().map(|x| x.to_f32()).collect(),
        DType::BF16 => bytemuck::pod_collect_to_vec::<u8, bf16>(bytes).iter().map(|x| x.to_f32()).collect(),
        blocks => {
            let mut out = vec![0f32; len];
            crate::quant::dequantize(blocks, bytes, &mut out)
                .map_err(|e| EngineError::invalid("to_host_f32", e.to_string()))?;
            out
        }
    })
}
