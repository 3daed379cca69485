//! GPU kernel sources of entmin, kept as plain files so they can be read, linted
//! and compiled on their own: `kernels/cuda/*.cu` (compiled at run time with NVRTC)
//! and `kernels/wgsl/*.wgsl` (wgpu shader modules), embedded here with
//! `include_str!` and exposed as named constants.
//!
//! Empty so far: the CUDA and wgpu backends are later issues. The CPU backend's
//! kernels live in `engine/src/cpu/`, one file per op.
