use half::{bf16, f16};

/// Storage type of a tensor. Compute is f32 whatever the storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    BF16,
}

impl DType {
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
        }
    }

    pub fn parse(s: &str) -> Option<DType> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Some(DType::F32),
            "f16" | "float16" => Some(DType::F16),
            "bf16" | "bfloat16" => Some(DType::BF16),
            _ => None,
        }
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
}

impl HostData<'_> {
    pub fn len(&self) -> usize {
        match self {
            HostData::F32(d) => d.len(),
            HostData::F16(d) => d.len(),
            HostData::BF16(d) => d.len(),
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
}

impl HostVec {
    pub fn with_capacity(dtype: DType, n: usize) -> Self {
        match dtype {
            DType::F32 => HostVec::F32(Vec::with_capacity(n)),
            DType::F16 => HostVec::F16(Vec::with_capacity(n)),
            DType::BF16 => HostVec::BF16(Vec::with_capacity(n)),
        }
    }

    /// Append f32 values, rounded to this vector's dtype.
    pub fn extend_from_f32(&mut self, data: &[f32]) {
        match self {
            HostVec::F32(v) => v.extend_from_slice(data),
            HostVec::F16(v) => v.extend(data.iter().map(|&x| f16::from_f32(x))),
            HostVec::BF16(v) => v.extend(data.iter().map(|&x| bf16::from_f32(x))),
        }
    }

    pub fn from_f32(data: &[f32], dtype: DType) -> Self {
        let mut v = HostVec::with_capacity(dtype, data.len());
        v.extend_from_f32(data);
        v
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

    pub fn as_data(&self) -> HostData<'_> {
        match self {
            HostVec::F32(v) => HostData::F32(v),
            HostVec::F16(v) => HostData::F16(v),
            HostVec::BF16(v) => HostData::BF16(v),
        }
    }

    /// Index of the first NaN or infinity, and how many there are.
    pub fn non_finite(&self) -> Option<(usize, usize)> {
        fn scan<T: Copy>(v: &[T], finite: impl Fn(T) -> bool) -> Option<(usize, usize)> {
            let mut bad = v.iter().enumerate().filter(|(_, &x)| !finite(x));
            let (first, _) = bad.next()?;
            Some((first, 1 + bad.count()))
        }
        match self {
            HostVec::F32(v) => scan(v, f32::is_finite),
            HostVec::F16(v) => scan(v, f16::is_finite),
            HostVec::BF16(v) => scan(v, bf16::is_finite),
        }
    }

    /// Reorder rows of `cols` elements: row `i` of the result is row `src(i)` of self.
    pub fn permute_rows(&self, cols: usize, src: impl Fn(usize) -> usize) -> Self {
        fn go<T: Copy>(v: &[T], cols: usize, src: impl Fn(usize) -> usize) -> Vec<T> {
            (0..v.len() / cols.max(1)).flat_map(|i| v[src(i) * cols..(src(i) + 1) * cols].iter().copied()).collect()
        }
        match self {
            HostVec::F32(v) => HostVec::F32(go(v, cols, src)),
            HostVec::F16(v) => HostVec::F16(go(v, cols, src)),
            HostVec::BF16(v) => HostVec::BF16(go(v, cols, src)),
        }
    }
}
