//! The `entmin` binary re-executes itself once with an LD_LIBRARY_PATH under which
//! cudarc finds NVRTC and cuBLAS when they are installed under names it does not try
//! (CUDA 13, pip's wheels): see `entmin_engine::cuda::libraries`. glibc reads
//! LD_LIBRARY_PATH only at start-up, so setting it in-process would not reach dlopen.

#[cfg(all(unix, feature = "cuda"))]
pub fn relaunch_if_needed() {
    use std::os::unix::process::CommandExt;

    use entmin::engine::cuda::libraries::{loader_path, RELAUNCHED};
    if std::env::var_os(RELAUNCHED).is_some() {
        return;
    }
    let Some(path) = loader_path() else { return };
    let Ok(exe) = std::env::current_exe() else { return };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    let err = std::process::Command::new(&exe)
        .arg0(arg0)
        .args(args)
        .env("LD_LIBRARY_PATH", &path.value)
        .env(RELAUNCHED, &path.links)
        .exec();
    // exec only returns on failure: carry on without the libraries (the CUDA backend
    // then says what is missing).
    eprintln!("entmin: could not restart with the CUDA libraries linked in {}: {err}", path.links.display());
}

#[cfg(not(all(unix, feature = "cuda")))]
pub fn relaunch_if_needed() {}

/// Files of the CUDA libraries mapped into this process (what was really loaded).
pub fn loaded_cuda_files() -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut files: Vec<String> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| ["libcuda.so", "libnvrtc", "libcublas"].iter().any(|n| p.contains(n)))
        .map(String::from)
        .collect();
    files.sort();
    files.dedup();
    files
}
