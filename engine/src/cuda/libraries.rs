//! Finding NVRTC and cuBLAS for cudarc, whatever CUDA major version is installed.
//!
//! cudarc, built with CUDA 12.9 bindings, opens libraries by name only: `libnvrtc.so`,
//! `libnvrtc.so.12`, `.11`, … and the same for cuBLAS. A CUDA 13 install has neither name
//! (it ships `libnvrtc.so.13`; pip's wheels carry no unversioned link), and pip's folders
//! (`site-packages/nvidia/cu13/lib`, `nvidia/cuda_nvrtc/lib`) are never on the loader's
//! path. The C APIs we call (NVRTC: create, compile, log, PTX; cuBLAS: create, set
//! stream, GEMM) are unchanged between 12 and 13, and the driver runs PTX from an NVRTC
//! no newer than itself, so a 13 library serves the 12.9 bindings (docs/gpu.md).
//!
//! So, when a library does not load under cudarc's names, [`loader_path`] looks for
//! `lib<name>.so.13` or `.so.12` in the usual places, makes a folder of links under the
//! first name cudarc tries, and returns the LD_LIBRARY_PATH that puts that folder and the
//! libraries' own folders (for `libnvrtc-builtins`, `libcublasLt`) first. glibc reads
//! LD_LIBRARY_PATH once, when a process starts: the `entmin` binary therefore
//! re-executes itself once with it set ([`RELAUNCHED`] marks the second run), and scripts
//! take the value from `entmin doctor --cuda-library-path`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Set in the environment of a process that entmin re-executed with [`loader_path`]'s
/// LD_LIBRARY_PATH; its value is the folder of links.
pub const RELAUNCHED: &str = "ENTMIN_CUDA_LINKS";

/// Extra folders to search first (a `:`-separated list), for installs in odd places.
pub const LIB_DIR_VAR: &str = "ENTMIN_CUDA_LIB_DIR";

/// The libraries cudarc opens by name, and the majors whose API we know it can use.
pub const LIBRARIES: [&str; 2] = ["nvrtc", "cublas"];
const MAJORS: [u32; 2] = [13, 12];

/// Whether cudarc opens `lib` under one of its own names.
pub fn loadable_by_name(lib: &str) -> bool {
    // SAFETY: is_culib_present only tries to dlopen the library (and closes it again).
    unsafe {
        match lib {
            "nvrtc" => cudarc::nvrtc::sys::is_culib_present(),
            "cublas" => cudarc::cublas::sys::is_culib_present(),
            _ => false,
        }
    }
}

/// Folders searched for a versioned library, in order: [`LIB_DIR_VAR`], the toolkit
/// (`$CUDA_HOME`, `$CUDA_PATH`, /usr/local/cuda), the folders of /etc/ld.so.conf.d, the
/// `nvidia/*/lib` folders of the Python environments of `$VIRTUAL_ENV` and of every
/// `python3` on PATH, and entmin's own `$ENTMIN_HOME/cuda-tools` (scripts/cuda-tools.sh).
pub fn search_dirs() -> Vec<PathBuf> {
    let env_dirs = |var: &str| std::env::var_os(var).map(|v| std::env::split_paths(&v).collect()).unwrap_or_default();
    let mut dirs: Vec<PathBuf> = env_dirs(LIB_DIR_VAR);
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        for root in env_dirs(var) {
            dirs.push(root.join("lib64"));
            dirs.push(root.join("lib"));
        }
    }
    dirs.push("/usr/local/cuda/lib64".into());
    dirs.push("/usr/local/cuda/targets/x86_64-linux/lib".into());
    dirs.extend(ld_so_conf_dirs(Path::new("/etc/ld.so.conf.d")));
    let mut prefixes: Vec<PathBuf> = env_dirs("VIRTUAL_ENV");
    for dir in env_dirs("PATH") {
        if dir.join("python3").is_file() {
            if let Some(prefix) = dir.parent() {
                prefixes.push(prefix.to_path_buf());
            }
        }
    }
    for prefix in prefixes {
        for lib in ["lib", "lib64", "local/lib"] {
            for site in subdirs(&prefix.join(lib)).into_iter().filter(|d| file_name_starts(d, "python3")) {
                for packages in ["site-packages", "dist-packages"] {
                    dirs.extend(nvidia_lib_dirs(&site.join(packages)));
                }
            }
        }
    }
    dirs.extend(nvidia_lib_dirs(&entmin_home().join("cuda-tools")));
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| d.is_dir() && seen.insert(d.clone()));
    dirs
}

fn entmin_home() -> PathBuf {
    std::env::var_os("ENTMIN_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".cache/entmin"))
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn file_name_starts(p: &Path, prefix: &str) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix))
}

/// `nvidia/<package>/lib` under a site-packages folder (pip's CUDA wheels: `cu13`,
/// `cuda_nvrtc`, `cublas`, …).
fn nvidia_lib_dirs(site_packages: &Path) -> Vec<PathBuf> {
    subdirs(&site_packages.join("nvidia")).into_iter().map(|p| p.join("lib")).filter(|p| p.is_dir()).collect()
}

/// The folders listed in the `*.conf` files of ld.so.conf.d (`include` lines skipped).
fn ld_so_conf_dirs(conf_d: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(conf_d)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "conf")).collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.lines()
                .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
                .filter(|l| l.starts_with('/'))
                .map(PathBuf::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The first `lib<lib>.so.<major>` (newest major first) in `dirs`.
pub fn find_versioned(lib: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    MAJORS.iter().find_map(|major| dirs.iter().map(|d| d.join(format!("lib{lib}.so.{major}"))).find(|p| p.is_file()))
}

/// What [`loader_path`] found and made.
#[derive(Clone, Debug, PartialEq)]
pub struct LoaderPath {
    /// The LD_LIBRARY_PATH to start a process with.
    pub value: OsString,
    /// The folder of links under cudarc's names.
    pub links: PathBuf,
    /// (library, the file its link points to).
    pub found: Vec<(&'static str, PathBuf)>,
}

/// The LD_LIBRARY_PATH under which cudarc opens every library of [`LIBRARIES`] that it
/// cannot open now but that is installed elsewhere; None when there is nothing to add
/// (all load by name, or none is installed anywhere we look).
pub fn loader_path() -> Option<LoaderPath> {
    let missing: Vec<&'static str> = LIBRARIES.into_iter().filter(|lib| !loadable_by_name(lib)).collect();
    if missing.is_empty() {
        return None;
    }
    let dirs = search_dirs();
    let found: Vec<(&'static str, PathBuf)> =
        missing.into_iter().filter_map(|lib| find_versioned(lib, &dirs).map(|p| (lib, p))).collect();
    if found.is_empty() {
        return None;
    }
    let links = make_links(&found).ok()?;
    let mut parts = vec![links.clone()];
    for (_, file) in &found {
        if let Some(dir) = file.parent() {
            if !parts.iter().any(|p| p == dir) {
                parts.push(dir.to_path_buf());
            }
        }
    }
    if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
        parts.extend(std::env::split_paths(&old));
    }
    let value = std::env::join_paths(parts).ok()?;
    Some(LoaderPath { value, links, found })
}

/// A folder holding `lib<name>.so -> <found file>` for each library, under
/// `$ENTMIN_HOME/cuda-libs` (else the temp folder), named by a hash of its targets so
/// that concurrent processes agree on it; made under a temporary name and renamed.
fn make_links(found: &[(&'static str, PathBuf)]) -> std::io::Result<PathBuf> {
    let key = found.iter().map(|(lib, p)| format!("{lib}={}\n", p.display())).collect::<String>();
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3));
    let mut last_error = None;
    for root in [entmin_home().join("cuda-libs"), std::env::temp_dir().join("entmin-cuda-libs")] {
        let dir = root.join(format!("{hash:016x}"));
        let complete = |d: &Path| found.iter().all(|(lib, _)| d.join(format!("lib{lib}.so")).exists());
        if complete(&dir) {
            return Ok(dir);
        }
        let attempt = (|| {
            std::fs::create_dir_all(&root)?;
            let tmp = root.join(format!(".tmp-{hash:016x}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir(&tmp)?;
            for (lib, target) in found {
                link(target, &tmp.join(format!("lib{lib}.so")))?;
            }
            if std::fs::rename(&tmp, &dir).is_err() {
                // Another process made the same folder first.
                let _ = std::fs::remove_dir_all(&tmp);
            }
            if complete(&dir) {
                Ok(dir.clone())
            } else {
                Err(std::io::Error::other(format!("{} is incomplete", dir.display())))
            }
        })();
        match attempt {
            Ok(d) => return Ok(d),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("no folder for CUDA library links")))
}

#[cfg(unix)]
fn link(target: &Path, name: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, name)
}

/// Elsewhere the libraries keep their own names (Windows' loader finds DLLs by PATH).
#[cfg(not(unix))]
fn link(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::Error::other("library links are made on Unix only"))
}

/// Why `lib` cannot be loaded, for error messages: where it was found but not
/// loadable, or every place searched.
pub fn explain_missing(lib: &str) -> String {
    let dirs = search_dirs();
    match find_versioned(lib, &dirs) {
        Some(p) => format!(
            "{} is installed but not under a name cudarc opens (lib{lib}.so, lib{lib}.so.12): the entmin \
             binary sets this up itself; a program of your own needs LD_LIBRARY_PATH=\"$(entmin doctor \
             --cuda-library-path)\"",
            p.display()
        ),
        None => format!(
            "lib{lib}.so.13 / .so.12 not found on the loader's path nor in {} (set {LIB_DIR_VAR} to its folder)",
            if dirs.is_empty() { "any of the usual folders".to_string() } else { format!("{dirs:?}") }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_the_newest_major_and_reads_ld_so_conf() {
        let root = std::env::temp_dir().join(format!("entmin-cuda-libs-test-{}", std::process::id()));
        let (a, b) = (root.join("a"), root.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("libnvrtc.so.12"), b"").unwrap();
        std::fs::write(b.join("libnvrtc.so.13"), b"").unwrap();
        assert_eq!(find_versioned("nvrtc", &[a.clone(), b.clone()]), Some(b.join("libnvrtc.so.13")));
        assert_eq!(find_versioned("nvrtc", std::slice::from_ref(&a)), Some(a.join("libnvrtc.so.12")));
        assert_eq!(find_versioned("cublas", &[a.clone(), b.clone()]), None);
        let conf = root.join("conf.d");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(conf.join("cuda.conf"), format!("# toolkit\n{}\ninclude /x/*.conf\n", a.display())).unwrap();
        std::fs::write(conf.join("ignored.txt"), "/nowhere\n").unwrap();
        assert_eq!(ld_so_conf_dirs(&conf), vec![a.clone()]);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
