//! Every CUDA kernel, for every storage dtype, compiles with NVRTC for compute_80 and
//! compute_90 and assembles with ptxas for sm_80 and sm_90 — no GPU needed. The
//! resource table (registers, shared memory, spills) is printed, and a kernel that
//! spills fails unless kernels/cuda/SPILLS_ALLOWED lists it with a reason.
//! Needs NVRTC (libnvrtc.so.12 on LD_LIBRARY_PATH) and ptxas (ENTMIN_PTXAS or PATH):
//! skipped with a message without them, a failure under ENTMIN_REQUIRE_NVRTC=1 (CI).

use entmin_engine::cuda::compile::{compile_all, find_ptxas, nvrtc_version, spills_allowed, CI_ARCHES};

#[test]
fn every_kernel_compiles_and_assembles_without_spills() {
    let required = std::env::var("ENTMIN_REQUIRE_NVRTC").as_deref() == Ok("1");
    let tools = nvrtc_version().map_err(|e| e.to_string()).and_then(|v| {
        find_ptxas().map(|p| (v, p)).ok_or_else(|| "ptxas not found (set ENTMIN_PTXAS or PATH)".to_string())
    });
    let (version, ptxas) = match tools {
        Ok(t) => t,
        Err(e) if required => panic!("ENTMIN_REQUIRE_NVRTC=1 but {e}"),
        Err(e) => {
            eprintln!("skipped: {e}");
            return;
        }
    };
    let table = compile_all(&ptxas, &CI_ARCHES).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("NVRTC {}.{}, {}", version.0, version.1, ptxas.display());
    eprintln!("{:<16} {:<5} {:<6} {:>4} {:>7} {:>12}", "kernel", "dtype", "arch", "regs", "smem B", "spill st/ld");
    for r in &table {
        eprintln!(
            "{:<16} {:<5} sm_{}{}  {:>4} {:>7} {:>6}/{:<5}",
            r.kernel,
            r.dtype.name(),
            r.sm.0,
            r.sm.1,
            r.registers,
            r.shared_bytes,
            r.spill_store_bytes,
            r.spill_load_bytes
        );
    }
    let kernels = entmin_engine::cuda::compile::kernel_names();
    let dtypes: usize = kernels.iter().map(|(_, n)| n).sum();
    assert_eq!(table.len(), dtypes * CI_ARCHES.len(), "one row per kernel, dtype and arch");
    let allowed = spills_allowed();
    let spilling: Vec<_> = table
        .iter()
        .filter(|r| r.spill_store_bytes + r.spill_load_bytes > 0 && !allowed.contains(&r.kernel))
        .map(|r| format!("{} {} sm_{}{}", r.kernel, r.dtype, r.sm.0, r.sm.1))
        .collect();
    assert!(spilling.is_empty(), "kernels spill registers: {spilling:?}");
    // A row kernel launched with 1024 threads must fit the register file.
    for r in table.iter().filter(|r| ["softmax_entropy", "em_inf", "sample", "rms_norm"].contains(&r.kernel)) {
        assert!(r.registers <= 64, "{} uses {} registers: too many for 1024-thread blocks", r.kernel, r.registers);
    }
}
