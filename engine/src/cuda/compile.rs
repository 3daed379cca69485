//! Turning `kernels/cuda/*.cu` into PTX with NVRTC (no GPU needed), caching the PTX on
//! disk, and assembling it with `ptxas -v` to read each kernel's registers, shared
//! memory and spills (what CI and `entmin doctor --compile-kernels` check).

use std::path::{Path, PathBuf};
use std::process::Command;

use entmin_kernels::cuda;

use crate::kernel::Kernel;
use crate::{DType, EngineError, Result};

/// Compute capabilities CI proves every kernel compiles and assembles for.
pub const CI_ARCHES: [(u32, u32); 2] = [(8, 0), (9, 0)];

impl Kernel {
    fn cuda_body(self) -> &'static str {
        match self {
            Kernel::Embedding => cuda::EMBEDDING,
            Kernel::RmsNorm => cuda::RMS_NORM,
            Kernel::Gemv => cuda::GEMV,
            Kernel::Matmul => cuda::MATMUL,
            Kernel::Rope => cuda::ROPE,
            Kernel::Attention => cuda::ATTENTION,
            Kernel::SiluMul => cuda::SILU_MUL,
            Kernel::Add => cuda::ADD,
            Kernel::MaskColumns => cuda::MASK_COLUMNS,
            Kernel::SoftmaxEntropy => cuda::SOFTMAX_ENTROPY,
            Kernel::EntropyGrad => cuda::ENTROPY_GRAD,
            Kernel::EmInf => cuda::EM_INF,
            Kernel::Sample => cuda::SAMPLE,
            Kernel::RmsNormBackward => cuda::RMS_NORM_BACKWARD,
            Kernel::MatmulStrided => cuda::MATMUL_STRIDED,
            Kernel::SiluMulBackward => cuda::SILU_MUL_BACKWARD,
            Kernel::EmbeddingBackward => cuda::EMBEDDING_BACKWARD,
            Kernel::AttentionBackwardQuery => cuda::ATTENTION_BACKWARD_QUERY,
            Kernel::AttentionBackwardKv => cuda::ATTENTION_BACKWARD_KV,
            Kernel::TokenLogprobs => cuda::TOKEN_LOGPROBS,
        }
    }

    /// The translation unit NVRTC compiles: common.cuh followed by the kernel's file.
    pub fn cuda_source(self) -> String {
        format!("{}\n{}", cuda::COMMON, self.cuda_body())
    }
}

/// The macro common.cuh selects a storage dtype by: -DENTMIN_BF16, -DENTMIN_Q4_K, ….
fn dtype_define(dtype: DType) -> String {
    format!("-DENTMIN_{}", dtype.name().to_ascii_uppercase())
}

pub(super) fn unavailable(reason: impl Into<String>) -> EngineError {
    EngineError::Unavailable { backend: "cuda", reason: reason.into() }
}

/// NVRTC's (major, minor), or why it cannot be loaded. cudarc panics when the library
/// is missing, so presence is checked first.
pub fn nvrtc_version() -> Result<(i32, i32)> {
    // SAFETY: is_culib_present only tries to dlopen the library.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(unavailable(format!(
            "NVRTC not found: {} (install a CUDA 12 or 13 toolkit, or `pip install nvidia-cuda-nvrtc-cu12`)",
            super::libraries::explain_missing("nvrtc")
        )));
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present; nvrtcVersion writes two ints.
    let status = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    if status != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(unavailable(format!("nvrtcVersion failed: {status:?}")));
    }
    Ok((major, minor))
}

/// PTX of `kernel` reading `dtype`, for compute capability `arch`, straight from NVRTC.
pub fn compile_ptx(kernel: Kernel, dtype: DType, arch: (u32, u32)) -> Result<String> {
    nvrtc_version()?;
    let options = cudarc::nvrtc::CompileOptions {
        options: vec![
            format!("--gpu-architecture=compute_{}{}", arch.0, arch.1),
            dtype_define(dtype),
            "--std=c++17".to_string(),
        ],
        name: Some(format!("{}.cu", kernel.name())),
        ..Default::default()
    };
    let ptx = cudarc::nvrtc::compile_ptx_with_opts(kernel.cuda_source(), options).map_err(|e| match e {
        cudarc::nvrtc::CompileError::CompileError { log, .. } => EngineError::Device {
            backend: "cuda",
            detail: format!(
                "NVRTC could not compile kernels/cuda/{}.cu ({dtype}, compute_{}{}):\n{}",
                kernel.name(),
                arch.0,
                arch.1,
                log.to_string_lossy()
            ),
        },
        other => EngineError::Device { backend: "cuda", detail: format!("NVRTC: {other}") },
    })?;
    Ok(ptx.to_src())
}

/// FNV-1a: a stable hash of the kernel source for cache file names (std's hasher may
/// change between Rust releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// `$ENTMIN_CUDA_CACHE`, else `$ENTMIN_HOME/cuda-cache`, else `~/.cache/entmin/cuda-cache`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ENTMIN_CUDA_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("ENTMIN_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".cache/entmin"));
    home.join("cuda-cache")
}

/// [`compile_ptx`] through the disk cache, keyed by (source hash, dtype, arch, NVRTC
/// version). An unreadable entry is recompiled; a cache that cannot be written only
/// costs a recompilation next time.
pub fn cached_ptx(kernel: Kernel, dtype: DType, arch: (u32, u32)) -> Result<String> {
    let (major, minor) = nvrtc_version()?;
    let source = kernel.cuda_source();
    let file = cache_dir().join(format!(
        "{}-{}-sm{}{}-nvrtc{major}.{minor}-{:016x}.ptx",
        kernel.name(),
        dtype.name(),
        arch.0,
        arch.1,
        fnv1a(source.as_bytes())
    ));
    if let Ok(ptx) = std::fs::read_to_string(&file) {
        if ptx.contains(&format!(".entry {}", kernel.name())) {
            return Ok(ptx);
        }
    }
    let ptx = compile_ptx(kernel, dtype, arch)?;
    let _ = write_atomically(&file, ptx.as_bytes());
    Ok(ptx)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// What ptxas reports for one kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelResources {
    pub kernel: &'static str,
    pub dtype: DType,
    pub sm: (u32, u32),
    pub registers: u32,
    pub shared_bytes: u32,
    pub spill_store_bytes: u32,
    pub spill_load_bytes: u32,
}

/// `$ENTMIN_PTXAS`, else `ptxas` on PATH, else `$CUDA_PATH/bin/ptxas`.
pub fn find_ptxas() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ENTMIN_PTXAS") {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("ptxas"));
    let in_toolkit =
        ["CUDA_PATH", "CUDA_HOME"].iter().filter_map(std::env::var_os).map(|d| PathBuf::from(d).join("bin/ptxas"));
    on_path.chain(in_toolkit).find(|p| p.is_file())
}

/// Assemble `ptx` for `sm` with `ptxas -O3 -v` and read its resource report.
pub fn assemble(ptxas: &Path, kernel: Kernel, dtype: DType, ptx: &str, sm: (u32, u32)) -> Result<KernelResources> {
    let dir = std::env::temp_dir().join(format!("entmin-ptxas-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| unavailable(format!("{}: {e}", dir.display())))?;
    let stem = dir.join(format!("{}-{}-sm{}{}", kernel.name(), dtype.name(), sm.0, sm.1));
    let ptx_file = stem.with_extension("ptx");
    std::fs::write(&ptx_file, ptx).map_err(|e| unavailable(format!("{}: {e}", ptx_file.display())))?;
    let out = Command::new(ptxas)
        .arg(format!("-arch=sm_{}{}", sm.0, sm.1))
        .args(["-O3", "-v", "-o"])
        .arg(stem.with_extension("cubin"))
        .arg(&ptx_file)
        .output()
        .map_err(|e| unavailable(format!("running {}: {e}", ptxas.display())))?;
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
    if !out.status.success() {
        return Err(EngineError::Device {
            backend: "cuda",
            detail: format!("ptxas rejected kernels/cuda/{}.cu ({dtype}, sm_{}{}):\n{log}", kernel.name(), sm.0, sm.1),
        });
    }
    parse_ptxas_log(&log, kernel, dtype, sm)
}

/// Numbers out of ptxas -v lines such as
/// `ptxas info    : Used 40 registers, 8 bytes smem, 380 bytes cmem[0]` and
/// `0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads`.
fn parse_ptxas_log(log: &str, kernel: Kernel, dtype: DType, sm: (u32, u32)) -> Result<KernelResources> {
    let number_before = |line: &str, unit: &str| -> Option<u32> {
        let at = line.find(unit)?;
        line[..at].split_whitespace().last()?.parse().ok()
    };
    let mut r = KernelResources {
        kernel: kernel.name(),
        dtype,
        sm,
        registers: 0,
        shared_bytes: 0,
        spill_store_bytes: 0,
        spill_load_bytes: 0,
    };
    let mut found = false;
    for line in log.lines() {
        if let Some(n) = number_before(line, " registers") {
            r.registers = n;
            r.shared_bytes = number_before(line, " bytes smem").unwrap_or(0);
            found = true;
        }
        if let Some(n) = number_before(line, " bytes spill stores") {
            r.spill_store_bytes = n;
            r.spill_load_bytes = number_before(line, " bytes spill loads").unwrap_or(0);
        }
    }
    if !found {
        return Err(EngineError::Device { backend: "cuda", detail: format!("no resource report from ptxas:\n{log}") });
    }
    Ok(r)
}

/// Compile every kernel for every dtype for `arches` and assemble each with ptxas.
pub fn compile_all(ptxas: &Path, arches: &[(u32, u32)]) -> Result<Vec<KernelResources>> {
    let mut table = Vec::new();
    for &arch in arches {
        for kernel in Kernel::ALL {
            for dtype in kernel.storage_dtypes() {
                let ptx = compile_ptx(kernel, dtype, arch)?;
                table.push(assemble(ptxas, kernel, dtype, &ptx, arch)?);
            }
        }
    }
    Ok(table)
}

/// Every kernel's name and how many storage dtypes it is compiled for.
pub fn kernel_names() -> Vec<(&'static str, usize)> {
    Kernel::ALL.iter().map(|k| (k.name(), k.storage_dtypes().len())).collect()
}

/// Kernels listed in `kernels/cuda/SPILLS_ALLOWED` (`name: reason` lines, `#` comments).
pub fn spills_allowed() -> Vec<&'static str> {
    cuda::SPILLS_ALLOWED
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split(':').next().map(str::trim))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ptxas_reports() {
        let log = "ptxas info    : 0 bytes gmem\n\
                   ptxas info    : Compiling entry function 'em_inf' for 'sm_90'\n\
                   ptxas info    : Function properties for em_inf\n    \
                   8 bytes stack frame, 12 bytes spill stores, 16 bytes spill loads\n\
                   ptxas info    : Used 64 registers, 132 bytes smem, 420 bytes cmem[0]\n";
        let r = parse_ptxas_log(log, Kernel::EmInf, DType::BF16, (9, 0)).unwrap();
        assert_eq!((r.registers, r.shared_bytes, r.spill_store_bytes, r.spill_load_bytes), (64, 132, 12, 16));
        assert!(parse_ptxas_log("ptxas fatal", Kernel::EmInf, DType::BF16, (9, 0)).is_err());
    }

    #[test]
    fn cache_key_hash_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
