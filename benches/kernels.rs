//! Kernel benchmarks, the same bodies on every backend present: groups are named
//! `cpu/…`, `wgpu/…` and `cuda/…` (the GPU ones only when their device opens). Memory-bound ops
//! report bytes/s (compare with the backend's `copy` line, its measured bandwidth), the
//! compute-bound GEMM reports FLOP/s as "elements" (one element = one floating-point
//! operation). GPU figures are device time (wgpu timestamp queries, CUDA events: see
//! `Backend::timed`) where the backend measures it, else wall clock per call up to the
//! end of its work (including submission and launch latency).
//!
//! Run: `cargo bench -p entmin-engine --bench kernels [-- FILTER]`. Figures: benches/RESULTS.md.

use std::hint::black_box;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Bencher, BenchmarkId, Criterion, Throughput};
use entmin_engine::cpu::CpuBackend;
use entmin_engine::{Backend, DType, EmInfParams, HostData, Rng, SamplingParams};

fn random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| ((rng.next_f64() * 2.0 - 1.0) * scale as f64) as f32).collect()
}

/// Time `op` per call: the device time of its kernels where the backend measures it
/// (wgpu with TIMESTAMP_QUERY), else wall clock up to the end of its work.
fn measure<B: Backend, T>(bench: &mut Bencher<'_>, b: &B, mut op: impl FnMut() -> entmin_engine::Result<T>) {
    bench.iter_custom(|iters| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let start = Instant::now();
            let (out, device_time) = b.timed(&mut op).unwrap();
            total += device_time.unwrap_or_else(|| start.elapsed());
            drop(black_box(out));
        }
        total
    })
}

fn host_memory(c: &mut Criterion) {
    let n = 64 << 20; // 256 MiB of f32, far beyond the caches
    let src = vec![1f32; n];
    let mut dst = vec![0f32; n];
    let mut g = c.benchmark_group("memory");
    g.sample_size(10);
    // Bytes read + written, as GPU copy bandwidth figures are quoted.
    g.throughput(Throughput::Bytes((2 * n * 4) as u64));
    g.bench_function("copy", |b| b.iter(|| dst.copy_from_slice(black_box(&src))));
    // Bytes read only, on every thread: the ceiling of kernels that stream logits in and
    // write a few numbers per row (softmax-entropy, the EM-INF loop's passes). 1 GiB, as
    // this VM kind reports a 300 MiB L3.
    drop((src, dst));
    let big = vec![1f32; 4 * n];
    g.throughput(Throughput::Bytes((big.len() * 4) as u64));
    g.bench_function("read", |b| b.iter(|| read_all(black_box(&big))));
    g.finish();
}

/// Σ of every element, one chunk per rayon task, 16 independent sums per chunk.
fn read_all(xs: &[f32]) -> f32 {
    use rayon::prelude::*;
    xs.par_chunks(1 << 20)
        .map(|c| {
            let mut acc = [0f32; 16];
            for v in c.chunks_exact(16) {
                for l in 0..16 {
                    acc[l] += v[l];
                }
            }
            acc.iter().sum::<f32>()
        })
        .sum()
}

/// Device copy bandwidth (bytes read + written): one tensor copied by concat_rows.
fn device_memory<B: Backend>(c: &mut Criterion, b: &B) {
    let rows = 64;
    let t = b.zeros(&[rows, 1 << 20], DType::F32).unwrap(); // 256 MiB
    let mut g = c.benchmark_group(format!("{}/memory", b.name()));
    g.sample_size(10);
    g.throughput(Throughput::Bytes((2 * t.size_bytes()) as u64));
    g.bench_function("copy", |bench| measure(bench, b, || b.concat_rows(&[black_box(&t)])));
    g.finish();
}

/// Row counts of the EM kernels: up to 4096 rows (a training chunk) on CUDA, where the
/// issue's bandwidth target is judged; 256 elsewhere, to keep CPU and lavapipe runs short.
fn row_counts<B: Backend>(b: &B) -> &'static [usize] {
    if b.name() == "cuda" {
        &[1, 16, 256, 4096]
    } else {
        &[1, 16, 256]
    }
}

fn softmax_entropy<B: Backend>(c: &mut Criterion, b: &B) {
    let v = 151_936;
    let mut g = c.benchmark_group(format!("{}/softmax_entropy", b.name()));
    g.sample_size(20);
    for &rows in row_counts(b) {
        let data = random(rows * v, 1, 8.0);
        for dtype in [DType::F32, DType::BF16] {
            let t = b.upload_as(&data, &[rows, v], dtype).unwrap();
            g.throughput(Throughput::Bytes((rows * v * dtype.size_bytes()) as u64));
            g.bench_with_input(BenchmarkId::new(format!("V151936/{dtype}"), rows), &t, |bench, t| {
                measure(bench, b, || b.softmax_entropy(black_box(t), 1.0))
            });
        }
    }
    g.finish();
}

fn em_kernels<B: Backend>(c: &mut Criterion, b: &B) {
    let v = 151_936;
    let mut g = c.benchmark_group(format!("{}/em", b.name()));
    g.sample_size(10);
    for &rows in row_counts(b) {
        let data = random(rows * v, 7, 8.0);
        let t = b.upload_as(&data, &[rows, v], DType::F32).unwrap();
        let (lse, ent) = b.softmax_entropy(&t, 1.0).unwrap();
        let up = b.upload_as(&vec![1.0; rows], &[rows], DType::F32).unwrap();
        // Reads the logits once and writes the gradient once.
        g.throughput(Throughput::Bytes((2 * rows * v * 4) as u64));
        g.bench_with_input(BenchmarkId::new("entropy_grad/V151936", rows), &t, |bench, t| {
            measure(bench, b, || b.entropy_grad(black_box(t), &lse, &ent, &up, 1.0))
        });
        if rows <= 16 {
            // Official defaults, K = 5 steps (random rows never reach δ = 0.3).
            let p = EmInfParams::default();
            g.throughput(Throughput::Elements(rows as u64));
            g.bench_with_input(BenchmarkId::new("em_inf_rows/V151936_K5", rows), &t, |bench, t| {
                measure(bench, b, || b.em_inf(black_box(t), &p))
            });
        }
    }
    g.finish();
}

fn linear<B: Backend>(c: &mut Criterion, b: &B) {
    // Qwen2.5-0.5B's MLP up-projection and SmolLM2's, plus the Qwen LM head.
    let shapes = [("qwen-up", 4864usize, 896usize), ("smollm-up", 1536, 576), ("qwen-head", 151_936, 896)];
    let mut g = c.benchmark_group(format!("{}/gemv", b.name()));
    g.sample_size(20);
    for (name, n, k) in shapes {
        let w = random(n * k, 2, 0.1);
        for dtype in [DType::F32, DType::BF16] {
            let wt = b.upload_as(&w, &[n, k], dtype).unwrap();
            for m in [1usize, 4, 8, 16] {
                let x = b.upload_as(&random(m * k, 3, 1.0), &[m, k], DType::F32).unwrap();
                g.throughput(Throughput::Bytes((n * k * dtype.size_bytes()) as u64));
                g.bench_function(format!("{name}/{dtype}/m{m}"), |bench| {
                    measure(bench, b, || b.linear(black_box(&x), &wt, None))
                });
            }
        }
    }
    g.finish();
    let mut g = c.benchmark_group(format!("{}/gemm", b.name()));
    g.sample_size(10);
    for (name, n, k) in &shapes[..2] {
        let (n, k) = (*n, *k);
        let w = random(n * k, 4, 0.1);
        for dtype in [DType::F32, DType::BF16] {
            let wt = b.upload_as(&w, &[n, k], dtype).unwrap();
            for m in [16usize, 128] {
                let x = b.upload_as(&random(m * k, 5, 1.0), &[m, k], DType::F32).unwrap();
                g.throughput(Throughput::Elements((2 * m * n * k) as u64));
                g.bench_function(format!("{name}/{dtype}/m{m}"), |bench| {
                    measure(bench, b, || b.linear(black_box(&x), &wt, None))
                });
            }
        }
    }
    g.finish();
}

/// The block-format `linear` on a backend that keeps blocks: the catalog models' shapes
/// and formats (those the backend lists); throughput in weight bytes read. Random bytes:
/// the speed does not depend on the values.
fn quant_linear<B: Backend>(c: &mut Criterion, b: &B) {
    let formats = b.capabilities().weight_dtypes;
    let shapes = [
        ("qwen-up", 4864usize, 896usize, DType::Q5_0),
        ("qwen-down", 896, 4864, DType::Q4K),
        ("qwen-down", 896, 4864, DType::Q6K),
        ("qwen-head", 151_936, 896, DType::Q8_0),
        ("smollm-up", 1536, 576, DType::Q4_1),
    ];
    let mut g = c.benchmark_group(format!("{}/quant_linear", b.name()));
    g.sample_size(10);
    for (name, n, k, dtype) in shapes.into_iter().filter(|s| formats.contains(&s.3)) {
        let mut rng = Rng::new(9);
        let bytes: Vec<u8> = (0..dtype.bytes_for(n * k).unwrap()).map(|_| rng.next_u64() as u8).collect();
        let wt = b.upload(HostData::Blocks { dtype, bytes: &bytes, elements: n * k }, &[n, k]).unwrap();
        for m in [1usize, 4, 16, 128] {
            if name == "qwen-head" && m > 16 {
                continue;
            }
            let x = b.upload_as(&random(m * k, 3, 1.0), &[m, k], DType::F32).unwrap();
            g.throughput(Throughput::Bytes(bytes.len() as u64));
            g.bench_function(format!("{name}/{dtype}/m{m}"), |bench| {
                measure(bench, b, || b.linear(black_box(&x), &wt, None))
            });
        }
    }
    g.finish();
}

fn sample<B: Backend>(c: &mut Criterion, b: &B) {
    let v = 151_936;
    let t = b.upload_as(&random(v, 6, 8.0), &[1, v], DType::F32).unwrap();
    let mut g = c.benchmark_group(format!("{}/sample", b.name()));
    g.throughput(Throughput::Bytes((v * 4) as u64));
    for (name, p) in [
        ("greedy", SamplingParams::greedy()),
        ("t0.7", SamplingParams { temperature: 0.7, ..Default::default() }),
        ("top_p0.9", SamplingParams { temperature: 0.7, top_p: 0.9, ..Default::default() }),
        ("top_k40", SamplingParams { temperature: 0.7, top_k: 40, ..Default::default() }),
    ] {
        let mut rngs = [Rng::new(1)];
        g.bench_function(name, |bench| measure(bench, b, || b.sample(black_box(&t), &p, &mut rngs)));
    }
    g.finish();
}

fn kernels<B: Backend>(c: &mut Criterion, b: &B) {
    device_memory(c, b);
    softmax_entropy(c, b);
    em_kernels(c, b);
    linear(c, b);
    quant_linear(c, b);
    sample(c, b);
}

fn all_backends(c: &mut Criterion) {
    host_memory(c);
    kernels(c, &CpuBackend);
    match entmin_engine::wgpu::WgpuBackend::new() {
        Ok(g) => {
            eprintln!("wgpu adapter: {}", g.capabilities().device);
            kernels(c, &g);
        }
        Err(e) => eprintln!("no wgpu benchmarks: {e}"),
    }
    match entmin_engine::cuda::CudaBackend::new(0) {
        Ok(g) => {
            eprintln!("cuda device: {}", g.capabilities().device);
            kernels(c, &g);
        }
        Err(e) => eprintln!("no cuda benchmarks: {e}"),
    }
}

criterion_group!(benches, all_backends);
criterion_main!(benches);
