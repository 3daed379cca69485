//! `entmin doctor`: what this machine offers each backend — CPU features, wgpu adapters
//! with their limits and features, the CUDA driver, devices and NVRTC — and, with
//! `--compile-kernels`, every CUDA kernel compiled and assembled with its resources.

use anyhow::Result;
use entmin::engine::cpu::CpuBackend;
use entmin::engine::Backend;
use serde_json::{json, Value};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Compile every CUDA kernel with NVRTC and assemble it with ptxas (for this GPU's
    /// architecture, or sm_80 and sm_90 without a GPU), and print registers, shared
    /// memory and spills per kernel.
    #[arg(long)]
    pub compile_kernels: bool,
    /// One JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print only the LD_LIBRARY_PATH under which NVRTC and cuBLAS load (for scripts that
    /// start other programs, such as test binaries, on this machine's CUDA libraries).
    #[arg(long)]
    pub cuda_library_path: bool,
}

pub fn run(a: Args) -> Result<()> {
    if a.cuda_library_path {
        // main() has already restarted entmin with the links in place when they were needed.
        println!("{}", std::env::var("LD_LIBRARY_PATH").unwrap_or_default());
        return Ok(());
    }
    let report = json!({
        "cpu": cpu_report(),
        "wgpu": wgpu_report(),
        "cuda": cuda_report(a.compile_kernels),
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(())
}

fn cpu_report() -> Value {
    let caps = CpuBackend.capabilities();
    #[cfg(target_arch = "x86_64")]
    let features: Vec<&str> = [
        ("avx2", std::arch::is_x86_feature_detected!("avx2")),
        ("fma", std::arch::is_x86_feature_detected!("fma")),
        ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
        ("f16c", std::arch::is_x86_feature_detected!("f16c")),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(name, _)| *name)
    .collect();
    #[cfg(target_arch = "aarch64")]
    let features: Vec<&str> = vec!["neon"];
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let features: Vec<&str> = Vec::new();
    json!({ "device": caps.device, "threads": rayon::current_num_threads(), "features": features })
}

#[cfg(feature = "wgpu")]
fn wgpu_report() -> Value {
    let adapters: Vec<Value> = entmin::engine::wgpu::adapter_reports()
        .into_iter()
        .map(|a| {
            json!({
                "name": a.name,
                "backend": a.backend,
                "type": a.device_type,
                "features": a.features.iter().filter(|(_, on)| *on).map(|(f, _)| *f).collect::<Vec<_>>(),
                "limits": a.limits.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect();
    json!({ "built": true, "adapters": adapters })
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_report() -> Value {
    json!({ "built": false })
}

#[cfg(feature = "cuda")]
fn cuda_report(compile_kernels: bool) -> Value {
    use entmin::engine::cuda::{compile, device_count, driver_version, CudaBackend};
    let version = |v: (i32, i32)| format!("{}.{}", v.0, v.1);
    let driver = driver_version().map(version).map_err(|e| e.to_string());
    let nvrtc = compile::nvrtc_version().map(version).map_err(|e| e.to_string());
    let mut arches = Vec::new();
    let devices: Vec<Value> = (0..device_count())
        .map(|i| match CudaBackend::new(i) {
            Ok(b) => {
                arches.push(b.arch());
                let caps = b.capabilities();
                json!({
                    "device": caps.device,
                    "memory_gib": caps.max_buffer_bytes as f64 / (1u64 << 30) as f64,
                    "multiprocessors": caps.parallelism,
                    "cublas": b.has_cublas(),
                    "cublas_missing": b.cublas_missing(),
                })
            }
            Err(e) => json!({ "error": e.to_string() }),
        })
        .collect();
    let ptxas = compile::find_ptxas();
    let mut report = json!({
        "built": true,
        "driver": flatten(driver),
        "devices": devices,
        "nvrtc": flatten(nvrtc),
        "ptxas": ptxas.as_ref().map(|p| p.display().to_string()),
        "kernel_cache": compile::cache_dir().display().to_string(),
        "loaded_files": super::cuda_libraries::loaded_cuda_files(),
        "library_links": std::env::var(entmin::engine::cuda::libraries::RELAUNCHED).ok(),
    });
    if compile_kernels {
        if arches.is_empty() {
            arches = compile::CI_ARCHES.to_vec();
        }
        report["kernels"] = match &ptxas {
            None => json!({ "error": "ptxas not found (set ENTMIN_PTXAS or PATH)" }),
            Some(p) => match compile::compile_all(p, &arches) {
                Ok(table) => Value::Array(
                    table
                        .iter()
                        .map(|r| {
                            json!({
                                "kernel": r.kernel,
                                "dtype": r.dtype.name(),
                                "arch": format!("sm_{}{}", r.sm.0, r.sm.1),
                                "registers": r.registers,
                                "shared_bytes": r.shared_bytes,
                                "spill_store_bytes": r.spill_store_bytes,
                                "spill_load_bytes": r.spill_load_bytes,
                            })
                        })
                        .collect(),
                ),
                Err(e) => json!({ "error": e.to_string() }),
            },
        };
    }
    report
}

#[cfg(feature = "cuda")]
fn flatten(r: std::result::Result<String, String>) -> Value {
    match r {
        Ok(v) => json!(v),
        Err(e) => json!({ "error": e }),
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda_report(_: bool) -> Value {
    json!({ "built": false })
}

fn print_text(r: &Value) {
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Object(o) if o.contains_key("error") => format!("unavailable: {}", o["error"].as_str().unwrap_or("?")),
        Value::Null => "not found".into(),
        other => other.to_string(),
    };
    let cpu = &r["cpu"];
    println!("cpu      {} ({} threads; {})", s(&cpu["device"]), cpu["threads"], cpu["features"]);
    let wgpu = &r["wgpu"];
    match wgpu["adapters"].as_array() {
        None => println!("wgpu     not built"),
        Some(a) if a.is_empty() => println!("wgpu     no adapter (on Linux: install a Vulkan driver)"),
        Some(adapters) => {
            for a in adapters {
                println!(
                    "wgpu     {} ({}, {}), features {}",
                    s(&a["name"]),
                    s(&a["backend"]),
                    s(&a["type"]),
                    a["features"]
                );
                if let Some(limits) = a["limits"].as_object() {
                    for (k, v) in limits {
                        println!("           {k:<40} {v}");
                    }
                }
            }
        }
    }
    let cuda = &r["cuda"];
    if cuda["built"] != json!(true) {
        println!("cuda     not built");
        return;
    }
    println!("cuda     driver {}", s(&cuda["driver"]));
    if cuda["driver"].is_string() && cuda["devices"].as_array().is_some_and(|d| d.is_empty()) {
        println!("           no CUDA device");
    }
    for d in cuda["devices"].as_array().into_iter().flatten() {
        if d.get("error").is_some() {
            println!("           device: {}", s(&d["error"]));
        } else {
            println!(
                "           {} — {:.1} GiB, {} SMs, cuBLAS {}",
                s(&d["device"]),
                d["memory_gib"].as_f64().unwrap_or(0.0),
                d["multiprocessors"],
                d["cublas_missing"].as_str().map_or("yes".to_string(), |why| format!("no ({why})"))
            );
        }
    }
    println!("         nvrtc {}", s(&cuda["nvrtc"]));
    println!("         ptxas {}", s(&cuda["ptxas"]));
    println!("         kernel cache {}", s(&cuda["kernel_cache"]));
    if let Some(links) = cuda["library_links"].as_str() {
        println!("         libraries linked from {links}");
    }
    for f in cuda["loaded_files"].as_array().into_iter().flatten() {
        println!("         loaded {}", s(f));
    }
    match &cuda["kernels"] {
        Value::Array(rows) => {
            println!(
                "\n{:<16} {:<5} {:<6} {:>4} {:>7} {:>11}",
                "kernel", "dtype", "arch", "regs", "smem B", "spill st/ld"
            );
            let n = |v: &Value| v.as_u64().unwrap_or(0);
            for k in rows {
                println!(
                    "{:<16} {:<5} {:<6} {:>4} {:>7} {:>5}/{:<5}",
                    s(&k["kernel"]),
                    s(&k["dtype"]),
                    s(&k["arch"]),
                    n(&k["registers"]),
                    n(&k["shared_bytes"]),
                    n(&k["spill_store_bytes"]),
                    n(&k["spill_load_bytes"])
                );
            }
        }
        Value::Null => {}
        other => println!("kernels  {}", s(other)),
    }
}
