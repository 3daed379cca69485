//! Every test of the GPU backends, in one binary: one link in CI, one file in the GPU
//! pack (scripts/gpu-pack.sh) that scripts/gpu-check.sh runs on a GPU machine.
//!
//! - `wgpu_*`: run wherever a wgpu adapter opens; in CI on Mesa lavapipe, where
//!   ENTMIN_REQUIRE_WGPU=1 makes a missing adapter a failure rather than a skip.
//! - `cuda_compile`: every CUDA kernel through NVRTC and ptxas, no GPU needed (CI).
//! - `cuda_*` others: `#[ignore = "needs an NVIDIA GPU"]`, so they show as ignored, never
//!   as passed, where there is none; `gpu --include-ignored` runs them, and without a
//!   GPU each then fails saying what is missing.

mod cuda_backward;
mod cuda_compile;
mod cuda_model;
mod cuda_ops;
mod wgpu_backward;
mod wgpu_model;
mod wgpu_ops;
mod wgpu_training;
