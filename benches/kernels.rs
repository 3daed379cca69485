//! CPU kernel benchmarks: the memory-bound ops report bytes/s (compare with the
//! `memory/copy` line, the machine's measured bandwidth), the compute-bound GEMM
//! reports FLOP/s as "elements" (one element = one floating-point operation).
//!
//! Run: `cargo bench -p entmin-engine --bench kernels`. Figures: benches/RESULTS.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use entmin_engine::cpu::CpuBackend;
use entmin_engine::{Backend, DType, EmInfParams, Rng, SamplingParams};

fn random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| ((rng.next_f64() * 2.0 - 1.0) * scale as f64) as f32).collect()
}

fn memory(c: &mut Criterion) {
    let n = 64 << 20; // 256 MiB of f32, far beyond the caches
    let src = vec![1f32; n];
    let mut dst = vec![0f32; n];
    let mut g = c.benchmark_group("memory");
    g.sample_size(10);
    // Bytes read + written, as GPU copy bandwidth figures are quoted.
    g.throughput(Throughput::Bytes((2 * n * 4) as u64));
    g.bench_function("copy", |b| b.iter(|| dst.copy_from_slice(black_box(&src))));
    g.finish();
}

fn softmax_entropy(c: &mut Criterion) {
    let b = CpuBackend;
    let v = 151_936;
    let mut g = c.benchmark_group("softmax_entropy");
    g.sample_size(20);
    for rows in [1usize, 16, 256] {
        let data = random(rows * v, 1, 8.0);
        for dtype in [DType::F32, DType::BF16] {
            let t = b.upload_as(&data, &[rows, v], dtype).unwrap();
            g.throughput(Throughput::Bytes((rows * v * dtype.size_bytes()) as u64));
            g.bench_with_input(BenchmarkId::new(format!("V151936/{dtype}"), rows), &t, |bench, t| {
                bench.iter(|| b.softmax_entropy(black_box(t), 1.0).unwrap())
            });
        }
    }
    g.finish();
}

fn em_kernels(c: &mut Criterion) {
    let b = CpuBackend;
    let v = 151_936;
    let mut g = c.benchmark_group("em");
    g.sample_size(10);
    for rows in [1usize, 16, 256] {
        let data = random(rows * v, 7, 8.0);
        let t = b.upload_as(&data, &[rows, v], DType::F32).unwrap();
        let (lse, ent) = b.softmax_entropy(&t, 1.0).unwrap();
        let up = b.upload_as(&vec![1.0; rows], &[rows], DType::F32).unwrap();
        // Reads the logits once and writes the gradient once.
        g.throughput(Throughput::Bytes((2 * rows * v * 4) as u64));
        g.bench_with_input(BenchmarkId::new("entropy_grad/V151936", rows), &t, |bench, t| {
            bench.iter(|| b.entropy_grad(black_box(t), &lse, &ent, &up, 1.0).unwrap())
        });
        if rows <= 16 {
            // Official defaults, K = 5 steps (random rows never reach δ = 0.3).
            let p = EmInfParams::default();
            g.throughput(Throughput::Elements(rows as u64));
            g.bench_with_input(BenchmarkId::new("em_inf_rows/V151936_K5", rows), &t, |bench, t| {
                bench.iter(|| b.em_inf(black_box(t), &p).unwrap())
            });
        }
    }
    g.finish();
}

fn linear(c: &mut Criterion) {
    let b = CpuBackend;
    // Qwen2.5-0.5B's MLP up-projection and SmolLM2's, plus the Qwen LM head.
    let shapes = [("qwen-up", 4864usize, 896usize), ("smollm-up", 1536, 576), ("qwen-head", 151_936, 896)];
    let mut g = c.benchmark_group("gemv");
    g.sample_size(20);
    for (name, n, k) in shapes {
        let w = random(n * k, 2, 0.1);
        for dtype in [DType::F32, DType::BF16] {
            let wt = b.upload_as(&w, &[n, k], dtype).unwrap();
            for m in [1usize, 4, 8, 16] {
                let x = b.upload_as(&random(m * k, 3, 1.0), &[m, k], DType::F32).unwrap();
                g.throughput(Throughput::Bytes((n * k * dtype.size_bytes()) as u64));
                g.bench_function(format!("{name}/{dtype}/m{m}"), |bench| {
                    bench.iter(|| b.linear(black_box(&x), &wt, None).unwrap())
                });
            }
        }
    }
    g.finish();
    let mut g = c.benchmark_group("gemm");
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
                    bench.iter(|| b.linear(black_box(&x), &wt, None).unwrap())
                });
            }
        }
    }
    g.finish();
}

fn sample(c: &mut Criterion) {
    let b = CpuBackend;
    let v = 151_936;
    let t = b.upload_as(&random(v, 6, 8.0), &[1, v], DType::F32).unwrap();
    let mut g = c.benchmark_group("sample");
    g.throughput(Throughput::Bytes((v * 4) as u64));
    for (name, p) in [
        ("greedy", SamplingParams::greedy()),
        ("t0.7", SamplingParams { temperature: 0.7, ..Default::default() }),
        ("top_p0.9", SamplingParams { temperature: 0.7, top_p: 0.9, ..Default::default() }),
        ("top_k40", SamplingParams { temperature: 0.7, top_k: 40, ..Default::default() }),
    ] {
        let mut rngs = [Rng::new(1)];
        g.bench_function(name, |bench| bench.iter(|| b.sample(black_box(&t), &p, &mut rngs).unwrap()));
    }
    g.finish();
}

criterion_group!(benches, memory, softmax_entropy, em_kernels, linear, sample);
criterion_main!(benches);
