//! Shared helpers of the integration tests: seeded random data, comparisons
//! against the f64 references, tiny random models, and the real-model fixtures.

pub mod backward;
pub mod gguf_writer;
pub mod model_parity;
pub mod parity;
pub mod tiny;
pub mod training;

use std::path::PathBuf;

use entmin_engine::Rng;

/// Uniform values in [-scale, scale).
pub fn random_vec(rng: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| ((rng.next_f64() * 2.0 - 1.0) * scale as f64) as f32).collect()
}

/// Largest |got − want| / (|want| + floor), with the index where it happens.
pub fn max_rel_err(got: &[f32], want: &[f64], floor: f64) -> (f64, usize) {
    assert_eq!(got.len(), want.len(), "length mismatch");
    got.iter()
        .zip(want)
        .enumerate()
        .map(|(i, (&g, &w))| if g as f64 == w { (0.0, i) } else { ((g as f64 - w).abs() / (w.abs() + floor), i) })
        .fold((0.0, 0), |a, b| if b.0 > a.0 || b.0.is_nan() { b } else { a })
}

#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    let (err, i) = max_rel_err(got, want, 1.0);
    assert!(err <= tol, "{what}: error {err:.3e} > {tol:.1e} at {i}: got {} want {}", got[i], want[i]);
}

/// `$ENTMIN_HOME`, or `~/.cache/entmin` — where `entmin pull` and scripts/fetch-test-assets.sh put things.
pub fn entmin_home() -> PathBuf {
    std::env::var_os("ENTMIN_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| ".".into())).join(".cache/entmin"))
}

/// A cached catalog model, or None (with a message) when absent. With
/// ENTMIN_REQUIRE_ASSETS=1 (set by the test script) absence is a failure.
pub fn cached_model(name: &str) -> Option<PathBuf> {
    require_asset(entmin_home().join("models").join(name).join("model.gguf"))
}

/// `path` if it exists; else None with a skip message, or a panic under ENTMIN_REQUIRE_ASSETS=1.
pub fn require_asset(path: PathBuf) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    let msg = format!("{} missing: run `scripts/test.sh` (it fetches the models and test assets)", path.display());
    if std::env::var("ENTMIN_REQUIRE_ASSETS").as_deref() == Ok("1") {
        panic!("{msg}");
    }
    eprintln!("skipped: {msg}");
    None
}

/// Path of a committed reference file under tests/reference/.
pub fn reference_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("reference").join(rel)
}

/// A fresh empty folder under the system temp dir, unique to this process and `tag`.
pub fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("entmin-test-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The wgpu backend on each reduction path the adapter offers: ("subgroup", …) when
/// it has subgroups, and ("shared", …) with the workgroup-memory fallback forced.
/// Empty, with a skip message, when there is no adapter; a panic instead under
/// ENTMIN_REQUIRE_WGPU=1, which also requires the subgroup path.
pub fn wgpu_backends() -> &'static [(&'static str, entmin_engine::wgpu::WgpuBackend)] {
    use entmin_engine::wgpu::{WgpuBackend, WgpuOptions};
    static BACKENDS: std::sync::OnceLock<Vec<(&'static str, WgpuBackend)>> = std::sync::OnceLock::new();
    BACKENDS.get_or_init(|| {
        let required = std::env::var("ENTMIN_REQUIRE_WGPU").as_deref() == Ok("1");
        let default = match WgpuBackend::new() {
            Ok(b) => b,
            Err(e) if required => panic!("ENTMIN_REQUIRE_WGPU=1 but {e}"),
            Err(e) => {
                eprintln!("skipping wgpu tests: {e}");
                return Vec::new();
            }
        };
        if required {
            assert!(default.uses_subgroups(), "ENTMIN_REQUIRE_WGPU=1 but the adapter has no SUBGROUP feature");
        }
        let shared = WgpuBackend::with_options(&WgpuOptions { force_shared_reductions: true, ..Default::default() })
            .expect("a second device on the same adapter");
        let mut v = Vec::new();
        if default.uses_subgroups() {
            v.push(("subgroup", default));
        }
        v.push(("shared", shared));
        v
    })
}

/// The CUDA backend on device 0, opened once; a panic saying what is missing (driver,
/// device, NVRTC) where it cannot open. Only tests marked
/// `#[ignore = "needs an NVIDIA GPU"]` call it, so a machine without a GPU reports them
/// as ignored, never as passed.
pub fn cuda_backend() -> &'static entmin_engine::cuda::CudaBackend {
    use entmin_engine::cuda::CudaBackend;
    static BACKEND: std::sync::OnceLock<Result<CudaBackend, String>> = std::sync::OnceLock::new();
    match BACKEND.get_or_init(|| CudaBackend::new(0).map_err(|e| e.to_string())) {
        Ok(b) => b,
        Err(e) => panic!("needs an NVIDIA GPU: {e}"),
    }
}
