//! GGUF reader: header, metadata, tensor table, aligned data section.
//!
//! The file is memory-mapped; every read is bounds-checked so that a truncated
//! or corrupt file becomes a [`ModelError`] naming the file and what is wrong.

mod types;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use entmin_engine::{DType, HostVec};
use memmap2::{Mmap, UncheckedAdvice};

pub use types::GgmlType;

use crate::error::ModelError;

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;

/// One metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<GgufValue>),
}

impl GgufValue {
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v as u64),
            GgufValue::U16(v) => Some(v as u64),
            GgufValue::U32(v) => Some(v as u64),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            GgufValue::I8(v) => Some(v as i64),
            GgufValue::I16(v) => Some(v as i64),
            GgufValue::I32(v) => Some(v as i64),
            GgufValue::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v as f64),
            GgufValue::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            GgufValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// One entry of the tensor table.
#[derive(Clone, Debug)]
pub struct GgufTensorInfo {
    pub name: String,
    /// Row-major shape (GGUF lists dims fastest-first; this is reversed).
    pub shape: Vec<usize>,
    pub ggml_type: GgmlType,
    /// Byte offset of the tensor's data from the start of the file.
    pub file_offset: usize,
    pub byte_len: usize,
}

impl GgufTensorInfo {
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// An opened GGUF file.
pub struct GgufFile {
    path: PathBuf,
    mmap: Mmap,
    pub version: u32,
    pub metadata: BTreeMap<String, GgufValue>,
    pub tensors: Vec<GgufTensorInfo>,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn corrupt(&self, what: impl Into<String>) -> ModelError {
        ModelError::corrupt(self.path, format!("{} (at byte {})", what.into(), self.pos))
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ModelError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(self.corrupt(format!(
                "file is truncated while reading {what}: needs {n} bytes, {} left",
                self.bytes.len() - self.pos
            ))),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ModelError> {
        Ok(self.take(N, what)?.try_into().expect("take returned N bytes"))
    }

    fn u32(&mut self, what: &str) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, ModelError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A length that must fit in what is left of the file, `unit` bytes per item at least.
    fn len(&mut self, what: &str, unit: usize) -> Result<usize, ModelError> {
        let n = self.u64(what)?;
        let left = (self.bytes.len() - self.pos) as u64;
        if n.saturating_mul(unit as u64) > left {
            return Err(
                self.corrupt(format!("{what} = {n} does not fit in the rest of the file: truncated or corrupt"))
            );
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &str) -> Result<String, ModelError> {
        let n = self.len(what, 1)?;
        let raw = self.take(n, what)?;
        String::from_utf8(raw.to_vec()).map_err(|_| self.corrupt(format!("{what} is not valid UTF-8")))
    }

    fn value(&mut self, ty: u32, key: &str, depth: usize) -> Result<GgufValue, ModelError> {
        let what = format!("metadata value of {key}");
        Ok(match ty {
            0 => GgufValue::U8(self.array::<1>(&what)?[0]),
            1 => GgufValue::I8(self.array::<1>(&what)?[0] as i8),
            2 => GgufValue::U16(u16::from_le_bytes(self.array(&what)?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array(&what)?)),
            4 => GgufValue::U32(self.u32(&what)?),
            5 => GgufValue::I32(i32::from_le_bytes(self.array(&what)?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array(&what)?)),
            7 => GgufValue::Bool(self.array::<1>(&what)?[0] != 0),
            8 => GgufValue::String(self.string(&what)?),
            9 => {
                if depth > 4 {
                    return Err(self.corrupt(format!("{key}: arrays nested too deeply")));
                }
                let item_ty = self.u32(&what)?;
                let n = self.len(&format!("array length of {key}"), 1)?;
                let mut items = Vec::with_capacity(n.min(1 << 20));
                for _ in 0..n {
                    items.push(self.value(item_ty, key, depth + 1)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(self.u64(&what)?),
            11 => GgufValue::I64(i64::from_le_bytes(self.array(&what)?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array(&what)?)),
            other => return Err(self.corrupt(format!("{key}: unknown metadata value type {other}"))),
        })
    }
}

impl GgufFile {
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, ModelError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| ModelError::io(&path, e))?;
        // SAFETY: the map is read-only; entmin never writes to model files while they are open.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(&path, e))?;
        let (version, metadata, tensors) = Self::parse(&path, &mmap)?;
        Ok(GgufFile { path, mmap, version, metadata, tensors })
    }

    #[allow(clippy::type_complexity)]
    fn parse(path: &Path, bytes: &[u8]) -> Result<(u32, BTreeMap<String, GgufValue>, Vec<GgufTensorInfo>), ModelError> {
        let mut cur = Cursor { bytes, pos: 0, path };
        if cur.take(4, "magic")? != MAGIC {
            return Err(ModelError::corrupt(path, "not a GGUF file (bad magic)"));
        }
        let version = cur.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(ModelError::corrupt(path, format!("unsupported GGUF version {version} (2 and 3 are)")));
        }
        // A tensor entry takes at least 8 + 4 + 4 + 8 bytes, a metadata entry at least 12.
        let n_tensors = cur.len("tensor count", 24)?;
        let n_kv = cur.len("metadata count", 12)?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = cur.string("metadata key")?;
            let ty = cur.u32("metadata type")?;
            let value = cur.value(ty, &key, 0)?;
            metadata.insert(key, value);
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => v
                .as_u64()
                .filter(|a| a.is_power_of_two())
                .ok_or_else(|| ModelError::corrupt(path, format!("general.alignment {v:?} is not a power of two")))?,
        };
        let mut raw = Vec::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name = cur.string("tensor name")?;
            let n_dims = cur.u32("tensor dims")? as usize;
            if n_dims == 0 || n_dims > 4 {
                return Err(cur.corrupt(format!("tensor {name}: {n_dims} dimensions (1 to 4 allowed)")));
            }
            let mut dims = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                dims.push(cur.u64("tensor dim")?);
            }
            let type_id = cur.u32("tensor type")?;
            let offset = cur.u64("tensor offset")?;
            raw.push((name, dims, type_id, offset));
        }
        let data_start = (cur.pos as u64).div_ceil(alignment) * alignment;
        let mut tensors = Vec::with_capacity(raw.len());
        for (name, dims, type_id, offset) in raw {
            let ggml_type = GgmlType::from_id(type_id)
                .ok_or_else(|| ModelError::corrupt(path, format!("tensor {name}: unknown ggml type id {type_id}")))?;
            let shape: Vec<usize> = dims.iter().rev().map(|&d| d as usize).collect();
            let n = dims
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .filter(|&n| n <= usize::MAX as u64)
                .ok_or_else(|| ModelError::corrupt(path, format!("tensor {name}: dims {dims:?} overflow")))?;
            let byte_len = ggml_type.byte_len(n as usize).ok_or_else(|| {
                ModelError::corrupt(
                    path,
                    format!("tensor {name}: {n} elements is not a whole number of {} blocks", ggml_type.name()),
                )
            })?;
            let file_offset = data_start
                .checked_add(offset)
                .filter(|&o| o.checked_add(byte_len as u64).is_some_and(|end| end <= bytes.len() as u64))
                .ok_or_else(|| {
                    ModelError::corrupt(
                        path,
                        format!(
                            "tensor {name}: data [{}, +{byte_len}) lies beyond the end of the file ({} bytes): truncated?",
                            data_start + offset,
                            bytes.len()
                        ),
                    )
                })?;
            tensors.push(GgufTensorInfo { name, shape, ggml_type, file_offset: file_offset as usize, byte_len });
        }
        Ok((version, metadata, tensors))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    /// A required metadata entry, or an error naming the key.
    pub fn require(&self, key: &str) -> Result<&GgufValue, ModelError> {
        self.get(key).ok_or_else(|| ModelError::corrupt(&self.path, format!("missing metadata key {key}")))
    }

    pub fn tensor_info(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    pub fn tensor_bytes(&self, info: &GgufTensorInfo) -> &[u8] {
        &self.mmap[info.file_offset..info.file_offset + info.byte_len]
    }

    /// Dequantise a tensor to f32 (row-major, shape as in `info.shape`).
    pub fn tensor_f32(&self, info: &GgufTensorInfo) -> Result<Vec<f32>, ModelError> {
        match self.tensor_as(info, DType::F32)? {
            HostVec::F32(v) => Ok(v),
            _ => unreachable!("tensor_as returns the dtype it is asked for"),
        }
    }

    /// The engine dtype of a tensor, or an error naming it when entmin cannot read its type.
    pub fn dtype_of(&self, info: &GgufTensorInfo) -> Result<DType, ModelError> {
        info.ggml_type.dtype().ok_or_else(|| {
            ModelError::unsupported(
                &self.path,
                format!("tensor {}: quantisation type {} is not supported", info.name, info.ggml_type.name()),
            )
        })
    }

    /// A tensor in the type the file stores it in: blocks copied as they are, dense
    /// types read as such. Afterwards its file pages are released from this process.
    pub fn tensor_stored(&self, info: &GgufTensorInfo) -> Result<HostVec, ModelError> {
        let dtype = self.dtype_of(info)?;
        if !dtype.is_quantised() {
            return self.tensor_as(info, dtype);
        }
        // Copy a few MiB at a time and drop each piece's file pages right after, so the
        // file's pages and the copy are never both resident for a whole tensor (the Q8_0
        // head of a 0.5B model is 146 MB).
        const CHUNK: usize = 4 << 20;
        let mut bytes = Vec::with_capacity(info.byte_len);
        for (i, chunk) in self.tensor_bytes(info).chunks(CHUNK).enumerate() {
            bytes.extend_from_slice(chunk);
            self.release_range(info.file_offset + i * CHUNK, chunk.len());
        }
        HostVec::blocks(dtype, bytes, info.n_elements())
            .map_err(|e| ModelError::corrupt(&self.path, format!("tensor {}: {e}", info.name)))
    }

    /// Dequantise a tensor straight into `dtype`, a slice of blocks at a time, so the
    /// only full-size buffer is the result; afterwards the tensor's file pages are
    /// released from this process (they stay in the page cache), which keeps peak
    /// memory near the size of the loaded weights.
    pub fn tensor_as(&self, info: &GgufTensorInfo, dtype: DType) -> Result<HostVec, ModelError> {
        const CHUNK_ELEMENTS: usize = 1 << 20;
        let stored = self.dtype_of(info)?;
        let (be, bb) = (info.ggml_type.block_elements(), info.ggml_type.block_bytes());
        let blocks_per_chunk = (CHUNK_ELEMENTS / be).max(1);
        let mut buf = vec![0f32; blocks_per_chunk * be];
        let mut out = HostVec::with_capacity(dtype, info.n_elements());
        for chunk in self.tensor_bytes(info).chunks(blocks_per_chunk * bb) {
            let n = chunk.len() / bb * be;
            entmin_engine::quant::dequantize(stored, chunk, &mut buf[..n])
                .map_err(|e| ModelError::corrupt(&self.path, format!("tensor {}: {e}", info.name)))?;
            out.extend_from_f32(&buf[..n]);
        }
        self.release(info);
        Ok(out)
    }

    fn release(&self, info: &GgufTensorInfo) {
        self.release_range(info.file_offset, info.byte_len);
    }

    fn release_range(&self, offset: usize, len: usize) {
        // SAFETY: the map is read-only and file-backed, so dropping its pages only makes
        // later reads fault them back in from the file; no data can be lost.
        let _ = unsafe { self.mmap.unchecked_advise_range(UncheckedAdvice::DontNeed, offset, len) };
    }
}
