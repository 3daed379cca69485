//! The block-format `linear` against an f64 reference (the same blocks dequantised by
//! `quant::dequantize`, multiplied in f64 with the unquantised activations), within the
//! error bound that 8-bit activations imply; scalar and AVX2 bit for bit; every row the
//! same whatever the row count (batch invariance); embedding rows; bad input.

use super::quant_linear::{linear_with, Kernel, CPU_FORMATS};
use crate::quant::activation::{quantise_rows, BLOCK};
use crate::quant::formats::{self, Format};
use crate::{Backend, DType, HostData, HostVec, Rng};

fn random_blocks(dtype: DType, rows: usize, k: usize, rng: &mut Rng) -> Vec<u8> {
    crate::quant::random_blocks(dtype, rows * k, rng)
}

fn dequantised(dtype: DType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut w = vec![0f32; n];
    crate::quant::dequantize(dtype, bytes, &mut w).unwrap();
    w
}

/// Activations like a decoder's: mostly small, a few large outliers per row.
fn activations(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let v = 2.0 * rng.next_f64() as f32 - 1.0;
            if i % 97 == 13 {
                20.0 * v
            } else {
                v
            }
        })
        .collect()
}

/// The bound on |computed − f64 reference| for one output: the activation rounding
/// `Σ_blocks (d_x / 2)·Σ|w|` (each code is within half a step), plus f32 rounding of the
/// factors, the products and the sums: at most (pieces + 10) roundings of 2⁻²⁴ each on
/// terms no larger than (|w| + |min|)·|x̂| twice over.
fn bound(w: &[f32], mins: &[f32], x: &[f32], k: usize) -> f64 {
    let q = quantise_rows(x, k);
    let mut quantisation = 0f64;
    let mut magnitude = 0f64;
    for (e, (&we, &xe)) in w.iter().zip(x).enumerate() {
        let d = q.scales[e / BLOCK] as f64;
        quantisation += d / 2.0 * we.abs() as f64;
        magnitude += 2.0 * (we.abs() as f64 + mins[e].abs() as f64) * (xe.abs() as f64 + d / 2.0);
    }
    let pieces = (k / BLOCK) as f64;
    quantisation * (1.0 + 1e-6) + (pieces + 10.0) * f64::powi(2.0, -24) * magnitude
}

/// The activation-rounding part of [`bound`].
fn bound_quantisation(w: &[f32], x: &[f32], k: usize) -> f64 {
    let q = quantise_rows(x, k);
    w.iter().enumerate().map(|(e, we)| q.scales[e / BLOCK] as f64 / 2.0 * we.abs() as f64).sum::<f64>() * (1.0 + 1e-6)
}

/// Each value's constant term (`Factors::min`), from the format's own description.
fn mins<F: Format>(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(F::BYTES)
        .flat_map(|b| {
            let f = F::factors(b);
            (0..F::PIECES).flat_map(move |p| std::iter::repeat_n(f[p].min, BLOCK))
        })
        .collect()
}

fn check_format<F: Format>() {
    let dtype = F::DTYPE;
    let mut rng = Rng::new(dtype as u64 + 11);
    let block = dtype.block().unwrap().elements;
    // Widths that are not multiples of any tile (4-row tasks, 8-row groups), rows of
    // 1 to 19 blocks.
    for (m, n, blocks) in [(1, 1, 1), (1, 37, 3), (3, 13, 2), (9, 29, 5), (17, 6, 1), (2, 64, 19)] {
        let k = blocks * block;
        let wb = random_blocks(dtype, n, k, &mut rng);
        let w = dequantised(dtype, &wb, n * k);
        let mins = mins::<F>(&wb);
        let x = activations(&mut rng, m * k);
        let got = linear_with(Kernel::best(), &x, &wb, dtype, m, n, k).unwrap();
        let q = quantise_rows(&x, k);
        let mut worst = 0f64;
        for i in 0..m {
            let xr = &x[i * k..(i + 1) * k];
            // The quantised activations the kernel multiplies, exactly: only f32 rounding
            // may separate its result from their f64 dot product.
            let (codes, scales, _) = q.row(i);
            let xq: Vec<f64> = codes.iter().enumerate().map(|(e, &c)| c as f64 * scales[e / BLOCK] as f64).collect();
            for r in 0..n {
                let wr = &w[r * k..(r + 1) * k];
                let want: f64 = wr.iter().zip(xr).map(|(&a, &b)| a as f64 * b as f64).sum();
                let limit = bound(wr, &mins[r * k..(r + 1) * k], xr, k);
                let err = (got[i * n + r] as f64 - want).abs();
                let on_xq: f64 = wr.iter().zip(&xq).map(|(&a, &b)| a as f64 * b).sum();
                let rounding = limit - bound_quantisation(wr, xr, k);
                assert!(
                    (got[i * n + r] as f64 - on_xq).abs() <= rounding,
                    "{dtype} m={m} n={n} k={k} out[{i},{r}] = {} vs the quantised activations' f64 dot {on_xq}",
                    got[i * n + r]
                );
                assert!(
                    err <= limit,
                    "{dtype} m={m} n={n} k={k} out[{i},{r}] = {} vs f64 {want}: error {err:e} > bound {limit:e}",
                    got[i * n + r]
                );
                worst = worst.max(err / limit);
            }
        }
        assert!(worst > 0.0, "{dtype}: exact to the last bit is implausible for 8-bit activations");
    }
}

#[test]
fn quant_linear_matches_f64_reference_within_the_bound() {
    check_format::<formats::Q4_0>();
    check_format::<formats::Q4_1>();
    check_format::<formats::Q5_0>();
    check_format::<formats::Q5_1>();
    check_format::<formats::Q8_0>();
    check_format::<formats::Q4K>();
    check_format::<formats::Q5K>();
    check_format::<formats::Q6K>();
}

/// The codes and factors each format describes give back `dequantize`'s values exactly.
#[test]
fn format_codes_reproduce_dequantize() {
    fn check<F: Format>() {
        let mut rng = Rng::new(5);
        let bytes = random_blocks(F::DTYPE, 4, F::PIECES * BLOCK, &mut rng);
        let want = dequantised(F::DTYPE, &bytes, 4 * F::PIECES * BLOCK);
        let got: Vec<f32> = bytes.chunks_exact(F::BYTES).flat_map(formats::block_values::<F>).collect();
        assert_eq!(got, want, "{}", F::DTYPE);
    }
    check::<formats::Q4_0>();
    check::<formats::Q4_1>();
    check::<formats::Q5_0>();
    check::<formats::Q5_1>();
    check::<formats::Q8_0>();
    check::<formats::Q4K>();
    check::<formats::Q5K>();
    check::<formats::Q6K>();
}

/// Row i of an m-row call equals the same row computed alone, bit for bit, for every
/// row count (the 8/4/2/1 groups and thread splits change) and every format; and the
/// AVX2 kernel gives the scalar kernel's bits.
#[test]
fn quant_linear_is_batch_invariant_and_isa_invariant() {
    let mut rng = Rng::new(77);
    for dtype in CPU_FORMATS {
        let k = 2 * dtype.block().unwrap().elements;
        let n = 70;
        let wb = random_blocks(dtype, n, k, &mut rng);
        let x = activations(&mut rng, 40 * k);
        let alone: Vec<Vec<f32>> = (0..40)
            .map(|i| linear_with(Kernel::best(), &x[i * k..(i + 1) * k], &wb, dtype, 1, n, k).unwrap())
            .collect();
        for m in [2, 3, 5, 8, 9, 16, 17, 33, 40] {
            let batch = linear_with(Kernel::best(), &x[..m * k], &wb, dtype, m, n, k).unwrap();
            for (i, want) in alone.iter().take(m).enumerate() {
                let row = &batch[i * n..(i + 1) * n];
                let same = row.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{dtype}: row {i} of a {m}-row call differs from the row alone");
            }
        }
        let scalar = linear_with(Kernel::Scalar, &x[..9 * k], &wb, dtype, 9, n, k).unwrap();
        for kernel in Kernel::available() {
            let got = linear_with(kernel, &x[..9 * k], &wb, dtype, 9, n, k).unwrap();
            let same = scalar.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{dtype}: {kernel:?} and the scalar kernel disagree");
        }
    }
}

#[test]
fn quant_linear_through_the_backend_and_non_finite_activations() {
    let b = super::CpuBackend;
    let mut rng = Rng::new(3);
    let (m, n, k) = (2, 5, 64);
    let wb = random_blocks(DType::Q8_0, n, k, &mut rng);
    let w = b.upload(HostData::Blocks { dtype: DType::Q8_0, bytes: &wb, elements: n * k }, &[n, k]).unwrap();
    let bias: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let mut x = activations(&mut rng, m * k);
    let plain = linear_with(Kernel::best(), &x, &wb, DType::Q8_0, m, n, k).unwrap();
    let xt = b.upload(HostData::F32(&x), &[m, k]).unwrap();
    let got = b.to_host_f32(&b.linear(&xt, &w, Some(&b.upload(HostData::F32(&bias), &[n]).unwrap())).unwrap()).unwrap();
    for (i, (g, p)) in got.iter().zip(&plain).enumerate() {
        assert_eq!(*g, p + bias[i % n]);
    }
    // A NaN or infinity in an activation block makes its row's outputs NaN, never finite.
    x[k + 3] = f32::INFINITY;
    let out = linear_with(Kernel::best(), &x, &wb, DType::Q8_0, m, n, k).unwrap();
    assert!(out[..n].iter().all(|v| v.is_finite()) && out[n..].iter().all(|v| v.is_nan()));
    assert_eq!(b.to_host_f32(&w).unwrap(), dequantised(DType::Q8_0, &wb, n * k));
}

#[test]
fn quant_embedding_rows_are_dequantised_rows() {
    let b = super::CpuBackend;
    let mut rng = Rng::new(4);
    for dtype in [DType::Q5_0, DType::Q8_0, DType::Q6K] {
        let (vocab, dim) = (7, dtype.block().unwrap().elements * 2);
        let bytes = random_blocks(dtype, vocab, dim, &mut rng);
        let all = dequantised(dtype, &bytes, vocab * dim);
        let table = b.upload_owned(HostVec::blocks(dtype, bytes, vocab * dim).unwrap(), &[vocab, dim]).unwrap();
        let ids = [6, 0, 3, 3];
        let got = b.to_host_f32(&b.embedding(&table, &ids).unwrap()).unwrap();
        let want: Vec<f32> = ids.iter().flat_map(|&i| all[i as usize * dim..(i as usize + 1) * dim].to_vec()).collect();
        assert_eq!(got, want, "{dtype}");
        let err = b.embedding(&table, &[7]).unwrap_err().to_string();
        assert!(err.contains("token id 7"), "{err}");
    }
}

#[test]
fn quant_bad_input_is_a_clear_error() {
    let b = super::CpuBackend;
    // Bytes that do not match the shape.
    let err = b.upload(HostData::Blocks { dtype: DType::Q4K, bytes: &[0; 143], elements: 256 }, &[1, 256]);
    assert!(err.unwrap_err().to_string().contains("takes 144 bytes, got 143"));
    // Rows that are not whole blocks.
    let err = b.upload(HostData::Blocks { dtype: DType::Q8_0, bytes: &[0; 68], elements: 64 }, &[4, 16]);
    assert!(err.unwrap_err().to_string().contains("not whole Q8_0 blocks"));
    assert!(HostVec::blocks(DType::Q4_0, vec![0; 17], 32).unwrap_err().contains("take 18 bytes, got 17"));
    assert!(HostVec::blocks(DType::F32, vec![0; 4], 1).unwrap_err().contains("not a block format"));
    // A format without a CPU kernel, and ops that take no blocks, name the dtype.
    let mut rng = Rng::new(1);
    let x = b.upload(HostData::F32(&activations(&mut rng, 32)), &[1, 32]).unwrap();
    let nl = b.upload(HostData::Blocks { dtype: DType::IQ4_NL, bytes: &[0; 18], elements: 32 }, &[1, 32]).unwrap();
    assert!(b.linear(&x, &nl, None).unwrap_err().to_string().contains("IQ4_NL"));
    let q8 = b.upload(HostData::Blocks { dtype: DType::Q8_0, bytes: &[0; 34], elements: 32 }, &[32]).unwrap();
    let q8 = q8.reshape(&[1, 32]).unwrap();
    assert!(b.silu_mul(&x, &q8).unwrap_err().to_string().contains("Q8_0"));
    assert!(b.softmax_entropy(&q8, 1.0).unwrap_err().to_string().contains("Q8_0"));
    assert!(b.zeros(&[32], DType::Q4K).is_err() && b.upload_as(&[0.0; 32], &[32], DType::Q8_0).is_err());
    assert!(!b.capabilities().weight_dtypes.contains(&DType::IQ4_NL));
}
