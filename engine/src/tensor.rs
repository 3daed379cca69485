use crate::{Backend, DType};

/// A dense row-major tensor whose storage lives on backend `B`.
pub struct Tensor<B: Backend> {
    storage: B::Storage,
    shape: Vec<usize>,
    dtype: DType,
}

impl<B: Backend> Tensor<B> {
    /// For backends: wrap storage that holds `shape.iter().product()` elements of `dtype`.
    pub fn from_parts(storage: B::Storage, shape: Vec<usize>, dtype: DType) -> Self {
        Tensor { storage, shape, dtype }
    }

    pub fn storage(&self) -> &B::Storage {
        &self.storage
    }

    pub fn storage_mut(&mut self) -> &mut B::Storage {
        &mut self.storage
    }

    pub fn into_storage(self) -> B::Storage {
        self.storage
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the data occupies (whole blocks for a block format).
    pub fn size_bytes(&self) -> usize {
        self.dtype.bytes_for(self.len()).expect("backends only hold whole blocks")
    }

    /// Size of the last dimension (1 for a scalar).
    pub fn cols(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    /// Product of all but the last dimension.
    pub fn rows(&self) -> usize {
        self.shape.iter().rev().skip(1).product()
    }

    /// Same data, another shape with the same element count.
    pub fn reshape(mut self, shape: &[usize]) -> crate::Result<Self> {
        let n: usize = shape.iter().product();
        if n != self.len() {
            return Err(crate::EngineError::shape(
                "reshape",
                format!("{:?} ({} elements) to {:?} ({n})", self.shape, self.len(), shape),
            ));
        }
        self.shape = shape.to_vec();
        Ok(self)
    }
}

impl<B: Backend> std::fmt::Debug for Tensor<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor<{}>({:?}, {})", std::any::type_name::<B>(), self.shape, self.dtype)
    }
}
