use half::{bf16, f16};

use crate::quant;

/// Storage type of a tensor. Compute is f32 whatever the storage: dense types are
/// widened on the fly, block formats (ggml's layouts, bit for bit: [`crate::quant`])
/// are read block by block by the kernels that take them.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    IQ4_NL,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    IQ4_XS,
}

/// Elements and bytes of one block of a block format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockLayout {
    pub elements: usize,
    pub bytes: usize,
}

impl DType {
    /// Every dtype, dense first.
    pub const ALL: [DType; 16] = {
        use DType::*;
        [F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q2K, Q3K, Q4K, Q5K, Q6K, Q8K, IQ4_XS]
    };

    /// Bytes per element of a dense dtype.
    ///
    /// # Panics
    /// For a block format, which has no per-element size: use [`DType::bytes_for`]
    /// (backends refuse block formats they do not list before sizing anything).
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            other => panic!("{other} is a block format: size it with DType::bytes_for"),
        }
    }

    /// The block of a block format; None for the dense types.
    pub fn block(self) -> Option<BlockLayout> {
        quant::layout(self)
    }

    pub fn is_quantised(self) -> bool {
        self.block().is_some()
    }

    /// Bytes that `n` elements occupy; None when `n` is not a whole number of blocks
    /// or the size overflows.
    pub fn bytes_for(self, n: usize) -> Option<usize> {
        match self.block() {
            None => n.checked_mul(self.size_bytes()),
            Some(b) if n.is_multiple_of(b.elements) => (n / b.elements).checked_mul(b.bytes),
            Some(_) => None,
        }
    }

    /// The name as llama.cpp prints it ("f32", "bf16", "Q4_K", "Q8_0").
    pub fn name(self) -> &'static str {
        use DType::*;
        match self {
            F32 => "f32",
            F16 => "f16",
            BF16 => "bf16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            IQ4_NL => "IQ4_NL",
            Q2K => "Q2_K",
            Q3K => "Q3_K",
            Q4K => "Q4_K",
            Q5K => "Q5_K",
            Q6K => "Q6_K",
            Q8K => "Q8_K",
            IQ4_XS => "IQ4_XS",
        }
    }

    /// A dtype by name, case-insensitive ("bf16", "bfloat16", "q4_k").
    pub fn parse(s: &str) -> Option<DType> {
        let lower = s.to_ascii_lowercase();
        match lower.as_str() {
            "float32" => return Some(DType::F32),
            "float16" => return Some(DType::F16),
            "bfloat16" => return Some(DType::BF16),
            _ => {}
        }
        DType::ALL.into_iter().find(|d| d.name().eq_ignore_ascii_case(&lower))
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Borrowed host data handed to [`crate::Backend::upload`].
#[derive(Clone, Copy, Debug)]
pub enum HostData<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    BF16(&'a [bf16]),
    /// Whole blocks of a block format, holding `elements` values.
    Blocks {
        dtype: DType,
        bytes: &'a [u8],
        elements: usize,
    },
}

impl HostData<'_> {
    /// Number of elements (values), not bytes.
    pub fn len(&self) -> usize {
        match self {
            HostData::F32(d) => d.len(),
            HostData::F16(d) => d.len(),
            HostData::BF16(d) => d.len(),
            HostData::Blocks { elements, .. } => *elements,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dtype(&self) -> DType {
        match self {
            HostData::F32(_) => DType::F32,
            HostData::F16(_) => DType::F16,
            HostData::BF16(_) => DType::BF16,
            HostData::Blocks { dtype, .. } => *dtype,
        }
    }
}

/// Owned host data: what loaders build in the target dtype and hand to
/// [`crate::Backend::upload_owned`] without an extra copy on the CPU.
#[derive(Clone, Debug, PartialEq)]
pub enum HostVec {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    /// Whole blocks of a block format (as a GGUF file stores them), holding `elements` values.
    Blocks {
        dtype: DType,
        bytes: Vec<u8>,
        elements: usize,
    },
}

impl HostVec {
    /// An empty vector of a dense dtype.
    ///
    /// # Panics
    /// For a block format: blocks are made by [`HostVec::blocks`], not value by value.
    pub fn with_capacity(dtype: DType, n: usize) -> Self {
        match dtype {
            DType::F32 => HostVec::F32(Vec::with_capacity(n)),
            DType::F16 => HostVec::F16(Vec::with_capacity(n)),
            DType::BF16 => HostVec::BF16(Vec::with_capacity(n)),
            other => panic!("HostVec::with_capacity: {other} is a block format"),
        }
    }

    /// Blocks of `dtype` holding `elements` values, checked to be exactly that many bytes.
    pub fn blocks(dtype: DType, bytes: Vec<u8>, elements: usize) -> Result<Self, String> {
        match dtype.bytes_for(elements) {
            _ if !dtype.is_quantised() => Err(format!("{dtype} is not a block format")),
            Some(n) if n == bytes.len() => Ok(HostVec::Blocks { dtype, bytes, elements }),
            Some(n) => Err(format!("{elements} {dtype} values take {n} bytes, got {}", bytes.len())),
            None => Err(format!("{elements} values are not a whole number of {dtype} blocks")),
        }
    }

    /// Append f32 values, rounded to this vector's dtype.
    ///
    /// # Panics
    /// On [`HostVec::Blocks`] (entmin does not quantise).
    pub fn extend_from_f32(&mut self, data: &[f32]) {
        match self {
            HostVec::F32(v) => v.extend_from_slice(data),
            HostVec::F16(v) => v.extend(data.iter().map(|&x| f16::from_f32(x))),
            HostVec::BF16(v) => v.extend(data.iter().map(|&x| bf16::from_f32(x))),
            HostVec::Blocks { dtype, .. } => panic!("cannot append f32 values to {dtype} blocks"),
        }
    }

    pub fn from_f32(data: &[f32], dtype: DType) -> Self {
        let mut v = HostVec::with_capacity(dtype, data.len());
        v.extend_from_f32(data);
        v
    }

    /// The same values in a dense dtype: block formats dequantised (exactly as ggml does),
    /// then rounded to `dtype`.
    pub fn to_dense(&self, dtype: DType) -> Result<Self, String> {
        if dtype.is_quantised() {
            return Err(format!("cannot convert to the block format {dtype}"));
        }
        match self {
            HostVec::Blocks { dtype: from, bytes, elements } => {
                let mut out = HostVec::with_capacity(dtype, *elements);
                let block = from.block().expect("Blocks hold a block format");
                let per_chunk = (1usize << 20) / block.elements;
                let mut buf = vec![0f32; per_chunk * block.elements];
                for chunk in bytes.chunks(per_chunk * block.bytes) {
                    let n = chunk.len() / block.bytes * block.elements;
                    quant::dequantize(*from, chunk, &mut buf[..n]).map_err(|e| e.to_string())?;
                    out.extend_from_f32(&buf[..n]);
                }
                Ok(out)
            }
            dense if dense.dtype() == dtype => Ok(dense.clone()),
            HostVec::F32(v) => Ok(HostVec::from_f32(v, dtype)),
            HostVec::F16(v) => Ok(HostVec::from_f32(&v.iter().map(|x| x.to_f32()).collect::<Vec<_>>(), dtype)),
            HostVec::BF16(v) => Ok(HostVec::from_f32(&v.iter().map(|x| x.to_f32()).collect::<Vec<_>>(), dtype)),
        }
    }

    pub fn len(&self) -> usize {
        self.as_data().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dtype(&self) -> DType {
        self.as_data().dtype()
    }

    /// Bytes the data occupies.
    pub fn size_bytes(&self) -> usize {
        match self {
            HostVec::Blocks { bytes, .. } => bytes.len(),
            dense => dense.len() * dense.dtype().size_bytes(),
        }
    }

    pub fn as_data(&self) -> HostData<'_> {
        match self {
            HostVec::F32(v) => HostData::F32(v),
            HostVec::F16(v) => HostData::F16(v),
            HostVec::BF16(v) => HostData::BF16(v),
            HostVec::Blocks { dtype, bytes, elements } => {
                HostData::Blocks { dtype: *dtype, bytes, elements: *elements }
            }
        }
    }

    /// Index of the first NaN or infinity, and how many there are. For block formats,
    /// of the first block whose scales are not finite (finite scales give finite values),
    /// counted in blocks.
    pub fn non_finite(&self) -> Option<(usize, usize)> {
        fn scan<T: Copy>(v: impl Iterator<Item = T>, finite: impl Fn(T) -> bool) -> Option<(usize, usize)> {
            let mut bad = v.enumerate().filter(|(_, x)| !finite(*x));
            let (first, _) = bad.next()?;
            Some((first, 1 + bad.count()))
        }
        match self {
            HostVec::F32(v) => scan(v.iter().copied(), f32::is_finite),
            HostVec::F16(v) => scan(v.iter().copied(), f16::is_finite),
            HostVec::BF16(v) => scan(v.iter().copied(), bf16::is_finite),
            HostVec::Blocks { dtype, bytes, .. } => {
                let size = dtype.block().expect("Blocks hold a block format").bytes;
                scan(bytes.chunks_exact(size), |b| quant::scales_finite(*dtype, b))
            }
        }
    }

    /// Reorder rows of `cols` elements: row `i` of the result is row `src(i)` of self.
    pub fn permute_rows(&self, cols: usize, src: impl Fn(usize) -> usize) -> Result<Self, String> {
        fn go<T: Copy>(v: &[T], width: usize, src: impl Fn(usize) -> usize) -> Vec<T> {
            (0..v.len() / width.max(1)).flat_map(|i| v[src(i) * width..(src(i) + 1) * width].iter().copied()).collect()
        }
        Ok(match self {
            HostVec::F32(v) => HostVec::F32(go(v, cols, src)),
            HostVec::F16(v) => HostVec::F16(go(v, cols, src)),
            HostVec::BF16(v) => HostVec::BF16(go(v, cols, src)),
            HostVec::Blocks { dtype, bytes, elements } => {
                let width = dtype
                    .bytes_for(cols)
                    .ok_or_else(|| format!("rows of {cols} values are not whole {dtype} blocks"))?;
                HostVec::Blocks { dtype: *dtype, bytes: go(bytes, width, src), elements: *elements }
            }
        })
    }
}
