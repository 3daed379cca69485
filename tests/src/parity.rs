//! One test body per op, generic over [`Backend`]: every backend runs the same
//! checks against the f64 references in `entmin_engine::reference`.

use entmin_engine::{reference, AttentionShape, Backend, DType, HostData, Rng, SamplingParams};

use crate::{assert_close, random_vec};

fn upload<B: Backend>(b: &B, data: &[f32], shape: &[usize]) -> entmin_engine::Tensor<B> {
    b.upload(HostData::F32(data), shape).unwrap()
}

/// What the backend sees after storing `data` as `dtype`.
fn rounded(data: &[f32], dtype: DType) -> Vec<f32> {
    match dtype {
        DType::F32 => data.to_vec(),
        DType::F16 => data.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect(),
        DType::BF16 => data.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect(),
        other => panic!("{other} is a block format: values are not rounded into it"),
    }
}

pub fn rms_norm<B: Backend>(b: &B) {
    let mut rng = Rng::new(1);
    for (rows, dim) in [(1, 1), (3, 7), (5, 576), (2, 896)] {
        let x = random_vec(&mut rng, rows * dim, 3.0);
        let w = random_vec(&mut rng, dim, 1.5);
        let got = b.rms_norm(&upload(b, &x, &[rows, dim]), &upload(b, &w, &[dim]), 1e-5).unwrap();
        assert_eq!(got.shape(), &[rows, dim]);
        assert_close("rms_norm", &b.to_host_f32(&got).unwrap(), &reference::rms_norm(&x, dim, &w, 1e-5), 1e-5);
    }
    assert!(b.rms_norm(&upload(b, &[1.0; 6], &[2, 3]), &upload(b, &[1.0; 4], &[4]), 1e-5).is_err());
}

pub fn linear<B: Backend>(b: &B) {
    let mut rng = Rng::new(2);
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        for (m, n, k) in [
            (1, 1, 1),
            (1, 37, 19),
            (2, 70, 33),
            (4, 129, 64),
            (5, 67, 45),
            (33, 600, 576),
            (7, 1030, 17),
            (9, 131, 70),
            (16, 67, 45),
            (3, 3, 8),
        ] {
            let x = random_vec(&mut rng, m * k, 1.0);
            let w = random_vec(&mut rng, n * k, 1.0);
            let bias = random_vec(&mut rng, n, 1.0);
            let wt = b.upload_as(&w, &[n, k], dtype).unwrap();
            let got = b.linear(&upload(b, &x, &[m, k]), &wt, Some(&upload(b, &bias, &[n]))).unwrap();
            assert_eq!(got.shape(), &[m, n]);
            let want = reference::linear(&x, &rounded(&w, dtype), Some(&bias), m, n, k);
            // f32 accumulation over k terms of size ~1: absolute error ~ k·ε.
            let tol = 2e-6 * k as f64;
            assert_close(&format!("linear {dtype} {m}x{n}x{k}"), &b.to_host_f32(&got).unwrap(), &want, tol);
        }
    }
    let x = upload(b, &[0.0; 6], &[2, 3]);
    assert!(b.linear(&x, &upload(b, &[0.0; 8], &[2, 4]), None).is_err(), "k mismatch must be an error");
    assert!(b.linear(&x, &upload(b, &[0.0; 6], &[2, 3]), Some(&upload(b, &[0.0; 3], &[3]))).is_err());
}

/// Weights in block formats on a backend that keeps them as blocks and multiplies them
/// with f32 activations (the GPU backends; the CPU's block path quantises activations,
/// and engine/src/cpu/quant_tests.rs checks it against its own bound): every format it
/// lists, against the f64 product with the weights dequantised by `quant::dequantize`.
/// Rows of three blocks (18-, 22-, 34- and 210-byte blocks leave rows that end inside a
/// word), 67 output columns (not a multiple of the 64-column tiles), both the GEMV and
/// the matmul path, and rows that do not depend on the other rows of the call.
pub fn block_weights<B: Backend>(b: &B) {
    let formats: Vec<DType> = b.capabilities().weight_dtypes.into_iter().filter(|d| d.is_quantised()).collect();
    for want in [DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q8_0, DType::Q4K, DType::Q6K] {
        assert!(formats.contains(&want), "{} lists no {want} weights", b.name());
    }
    let mut rng = Rng::new(17);
    for dtype in formats {
        let (n, k) = (67, 3 * dtype.block().expect("a block format").elements);
        let bytes = entmin_engine::quant::random_blocks(dtype, n * k, &mut rng);
        let mut w = vec![0f32; n * k];
        entmin_engine::quant::dequantize(dtype, &bytes, &mut w).unwrap();
        let wt = b.upload(HostData::Blocks { dtype, bytes: &bytes, elements: n * k }, &[n, k]).unwrap();
        assert_eq!(b.to_host_f32(&wt).unwrap(), w, "{dtype}: blocks read back");
        let ids = [0u32, 66, 5, 5, 31];
        let got = b.to_host_f32(&b.embedding(&wt, &ids).unwrap()).unwrap();
        let want: Vec<f64> =
            ids.iter().flat_map(|&i| w[i as usize * k..(i as usize + 1) * k].iter().map(|&v| v as f64)).collect();
        // One f32 product and sum per element, in the reference's order (an FMA may fuse them).
        assert_close(&format!("embedding {dtype}"), &got, &want, 1e-7);
        let w_max = w.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
        let bias = random_vec(&mut rng, n, 0.1);
        let x = random_vec(&mut rng, 20 * k, 1.0);
        let mut outputs = Vec::new();
        for m in [1, 3, 8, 9, 20] {
            let got = b.linear(&upload(b, &x[..m * k], &[m, k]), &wt, Some(&upload(b, &bias, &[n]))).unwrap();
            let got = b.to_host_f32(&got).unwrap();
            let want = reference::linear(&x[..m * k], &w, Some(&bias), m, n, k);
            // f32 accumulation over k terms of size ≤ w_max: absolute error ~ k·ε·w_max.
            assert_close(&format!("linear {dtype} {m}x{n}x{k}"), &got, &want, 2e-6 * k as f64 * w_max);
            outputs.push(got);
        }
        // The GEMV (≤ 8 rows) gives a row the same bits whatever the rows beside it, and
        // so does the matmul.
        assert_eq!(outputs[0], outputs[1][..n], "{dtype}: GEMV row 0 alone vs among 3");
        assert_eq!(outputs[1], outputs[2][..3 * n], "{dtype}: GEMV rows among 3 vs among 8");
        assert_eq!(outputs[3], outputs[4][..9 * n], "{dtype}: matmul rows among 9 vs among 20");
    }
    // Rows that split a block are refused, not read across rows.
    let bytes = entmin_engine::quant::random_blocks(DType::Q8_0, 96, &mut rng);
    let split = b.upload(HostData::Blocks { dtype: DType::Q8_0, bytes: &bytes, elements: 96 }, &[2, 48]).unwrap();
    let e = b.linear(&upload(b, &[0.5; 48], &[1, 48]), &split, None).unwrap_err();
    assert!(e.to_string().contains("whole blocks"), "{e}");
}

pub fn rope<B: Backend>(b: &B) {
    let mut rng = Rng::new(3);
    for (rows, heads, head_dim, theta) in [(1, 1, 2, 10_000.0), (3, 9, 64, 100_000.0), (4, 2, 64, 1_000_000.0)] {
        let cols = heads * head_dim;
        let x = random_vec(&mut rng, rows * cols, 2.0);
        let positions: Vec<u32> = (0..rows as u32).map(|i| i * 997 + 5).collect();
        let mut t = upload(b, &x, &[rows, cols]);
        b.rope(&mut t, head_dim, &positions, theta).unwrap();
        assert_close(
            "rope",
            &b.to_host_f32(&t).unwrap(),
            &reference::rope(&x, cols, head_dim, &positions, theta),
            1e-5,
        );
    }
    let mut t = upload(b, &[0.0; 6], &[1, 6]);
    assert!(b.rope(&mut t, 4, &[0], 1e4).is_err(), "head_dim must divide the row");
    assert!(b.rope(&mut t, 6, &[0, 1], 1e4).is_err(), "one position per row");
}

pub fn attention<B: Backend>(b: &B) {
    let mut rng = Rng::new(4);
    for (heads, kv_heads, head_dim, start, t) in
        // The last two are prefills long enough for the CPU's blocked path (≥ 16 rows,
        // several blocks of 64).
        [
            (1, 1, 2, 0, 1),
            (9, 3, 64, 0, 7),
            (14, 2, 64, 5, 3),
            (4, 4, 8, 20, 1),
            (14, 2, 64, 5, 20),
            (9, 3, 64, 0, 130),
        ]
    {
        let capacity = start + t + 3;
        let (qd, kvd) = (heads * head_dim, kv_heads * head_dim);
        let q = random_vec(&mut rng, t * qd, 1.0);
        // Cache rows past start + t are poisoned: attention must never read them.
        let mut k = random_vec(&mut rng, capacity * kvd, 1.0);
        let mut v = random_vec(&mut rng, capacity * kvd, 1.0);
        k[(start + t) * kvd..].fill(f32::NAN);
        v[(start + t) * kvd..].fill(f32::NAN);
        let shape = AttentionShape { n_heads: heads, n_kv_heads: kv_heads, head_dim, start_pos: start };
        let got = b
            .attention(
                &upload(b, &q, &[t, qd]),
                &upload(b, &k, &[capacity, kvd]),
                &upload(b, &v, &[capacity, kvd]),
                shape,
            )
            .unwrap();
        assert_close("attention", &b.to_host_f32(&got).unwrap(), &reference::attention(&q, &k, &v, shape), 1e-5);
    }
    let shape = AttentionShape { n_heads: 2, n_kv_heads: 1, head_dim: 2, start_pos: 3 };
    let q = upload(b, &[0.0; 4], &[1, 4]);
    let kv = upload(b, &[0.0; 6], &[3, 2]);
    assert!(b.attention(&q, &kv, &kv, shape).is_err(), "query beyond the cache must be an error");
}

pub fn write_kv<B: Backend>(b: &B) {
    let mut cache = b.zeros(&[5, 3], DType::F32).unwrap();
    b.write_kv(&mut cache, &upload(b, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]), 2).unwrap();
    assert_eq!(b.to_host_f32(&cache).unwrap(), [0., 0., 0., 0., 0., 0., 1., 2., 3., 4., 5., 6., 0., 0., 0.]);
    assert!(
        b.write_kv(&mut cache, &upload(b, &[0.0; 6], &[2, 3]), 4).is_err(),
        "overflowing the cache must be an error"
    );
}

pub fn elementwise<B: Backend>(b: &B) {
    let mut rng = Rng::new(5);
    let n = 4099;
    let g = random_vec(&mut rng, n, 8.0);
    let u = random_vec(&mut rng, n, 2.0);
    let got = b.silu_mul(&upload(b, &g, &[1, n]), &upload(b, &u, &[1, n])).unwrap();
    assert_close("silu_mul", &b.to_host_f32(&got).unwrap(), &reference::silu_mul(&g, &u), 1e-6);
    let mut x = upload(b, &g, &[1, n]);
    b.add_assign(&mut x, &upload(b, &u, &[1, n])).unwrap();
    let want: Vec<f64> = g.iter().zip(&u).map(|(&a, &b)| a as f64 + b as f64).collect();
    assert_close("add_assign", &b.to_host_f32(&x).unwrap(), &want, 1e-7);
    assert!(b.silu_mul(&upload(b, &g, &[1, n]), &upload(b, &u[..n - 1], &[1, n - 1])).is_err());
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        let table = random_vec(&mut rng, 11 * 6, 1.0);
        let t = b.upload_as(&table, &[11, 6], dtype).unwrap();
        let got = b.to_host_f32(&b.embedding(&t, &[3, 0, 10, 3]).unwrap()).unwrap();
        let r = rounded(&table, dtype);
        let want: Vec<f64> =
            [3, 0, 10, 3].iter().flat_map(|&i| r[i * 6..i * 6 + 6].iter().map(|&v| v as f64)).collect();
        assert_close("embedding", &got, &want, 0.0);
        assert!(b.embedding(&t, &[11]).is_err(), "id past the vocabulary must be an error");
    }
}

/// Rows that stress the online algorithm: random, huge spread, −inf masks, one-hot.
fn entropy_rows(rng: &mut Rng, v: usize) -> Vec<Vec<f32>> {
    let mut rows = vec![random_vec(rng, v, 4.0), random_vec(rng, v, 30.0)];
    let mut masked = random_vec(rng, v, 5.0);
    for (i, x) in masked.iter_mut().enumerate() {
        if i % 3 != 1 {
            *x = f32::NEG_INFINITY;
        }
    }
    rows.push(masked);
    rows.push(vec![f32::NEG_INFINITY; v]);
    let mut huge = random_vec(rng, v, 1.0);
    huge[v / 2] = 1e4;
    huge[0] = -1e4;
    rows.push(huge);
    // Ascending values force a rescale at every block.
    rows.push((0..v).map(|i| i as f32 * 0.01).collect());
    rows
}

pub fn softmax_entropy<B: Backend>(b: &B) {
    let mut rng = Rng::new(6);
    for v in [1usize, 7, 1000, 32000, 49152, 151936] {
        let rows = entropy_rows(&mut rng, v);
        let flat: Vec<f32> = rows.concat();
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let stored = rounded(&flat, dtype);
            let t = b.upload_as(&flat, &[rows.len(), v], dtype).unwrap();
            for inv_t in [1.0f32, 2.0, 0.3] {
                let (lse, ent) = b.softmax_entropy(&t, inv_t).unwrap();
                let (lse, ent) = (b.to_host_f32(&lse).unwrap(), b.to_host_f32(&ent).unwrap());
                // The certainty variant is the same pass with one more output: the same
                // lse and entropy to the bit, and a self-certainty against the f64 definition.
                let (lse2, ent2, kl) = b.softmax_entropy_certainty(&t, inv_t).unwrap();
                let host = |x| b.to_host_f32(&x).unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!((host(lse2), host(ent2)), (bits(&lse), bits(&ent)), "V={v} {dtype} 1/T={inv_t}");
                let kl = b.to_host_f32(&kl).unwrap();
                for r in 0..rows.len() {
                    let want_kl = reference::self_certainty(&stored[r * v..(r + 1) * v], inv_t);
                    assert!(
                        (kl[r] as f64 - want_kl).abs() <= 1e-5 * want_kl.max(1.0),
                        "self-certainty V={v} {dtype} 1/T={inv_t} row {r}: {} vs f64 {want_kl}",
                        kl[r]
                    );
                }
                for r in 0..rows.len() {
                    let (want_lse, want_h) = reference::softmax_entropy(&stored[r * v..(r + 1) * v], inv_t);
                    let what = format!("softmax_entropy V={v} {dtype} 1/T={inv_t} row {r}");
                    if want_lse == f64::NEG_INFINITY {
                        assert_eq!((lse[r], ent[r]), (f32::NEG_INFINITY, 0.0), "{what}: masked row");
                        continue;
                    }
                    // The t′ form keeps H near 1.5e-5 relative at V = 152k (docs/methods.md, "Numerics").
                    assert!(
                        ((lse[r] as f64 - want_lse) / want_lse.abs().max(1.0)).abs() < 2e-6,
                        "{what}: lse {} vs {want_lse}",
                        lse[r]
                    );
                    assert!(
                        (ent[r] as f64 - want_h).abs() <= 2e-5 * want_h.max(0.05),
                        "{what}: H {} vs {want_h}",
                        ent[r]
                    );
                }
            }
        }
    }
    let empty = b.zeros(&[2, 0], DType::F32).unwrap();
    let (lse, ent) = b.softmax_entropy(&empty, 1.0).unwrap();
    assert_eq!(b.to_host_f32(&ent).unwrap(), [0.0, 0.0], "empty rows have zero entropy");
    assert_eq!(b.to_host_f32(&lse).unwrap(), [f32::NEG_INFINITY; 2]);
    let kl = b.softmax_entropy_certainty(&empty, 1.0).unwrap().2;
    assert_eq!(b.to_host_f32(&kl).unwrap(), [0.0, 0.0], "empty rows have zero self-certainty");
    let nan = upload(b, &[0.0, f32::NAN, 1.0], &[1, 3]);
    assert!(b.to_host_f32(&b.softmax_entropy(&nan, 1.0).unwrap().1).unwrap()[0].is_nan(), "NaN must not be hidden");
    let kl = b.softmax_entropy_certainty(&nan, 1.0).unwrap().2;
    assert!(b.to_host_f32(&kl).unwrap()[0].is_nan(), "NaN must not be hidden from self-certainty");
    // By hand: p = (½, ½, 0 masked) is uniform over its n = 2 entries, KL(U ‖ p) = 0; a
    // row of 1000 zeros and one 10 has KL = lse − mean − log n with lse = log(1000 + e¹⁰).
    let uniform = upload(b, &[3.0, 3.0, f32::NEG_INFINITY], &[1, 3]);
    assert!(b.to_host_f32(&b.softmax_entropy_certainty(&uniform, 1.0).unwrap().2).unwrap()[0].abs() < 1e-6);
    let mut peaked = vec![0f32; 1001];
    peaked[500] = 10.0;
    let want = (1000f64 + 10f64.exp()).ln() - 10.0 / 1001.0 - 1001f64.ln();
    let got = b.to_host_f32(&b.softmax_entropy_certainty(&upload(b, &peaked, &[1, 1001]), 1.0).unwrap().2).unwrap();
    assert!((got[0] as f64 - want).abs() < 1e-5, "{} vs {want}", got[0]);
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

pub fn sample<B: Backend>(b: &B) {
    let mut rng = Rng::new(7);
    let v = 1000;
    let logits = random_vec(&mut rng, 2 * v, 3.0);
    let t = upload(b, &logits, &[2, v]);
    let argmax = |r: usize| (0..v).max_by(|&i, &j| logits[r * v + i].total_cmp(&logits[r * v + j])).unwrap() as u32;
    let mut rngs = vec![Rng::new(1), Rng::new(2)];
    let greedy = b.sample(&t, &SamplingParams::greedy(), &mut rngs).unwrap();
    assert_eq!([greedy[0].token, greedy[1].token], [argmax(0), argmax(1)]);
    let (lse0, h0) = reference::softmax_entropy(&logits[..v], 1.0);
    assert!((greedy[0].logprob as f64 - (logits[argmax(0) as usize] as f64 - lse0)).abs() < 1e-5);
    let entropy_close = |got: f32, want: f64, what: &str| {
        assert!((got as f64 - want).abs() <= 2e-5 * want.max(0.05), "{what}: entropy {got} vs f64 {want}")
    };
    entropy_close(greedy[0].entropy, h0, "greedy (T = 1)");
    // Banning the argmax moves greedy to the runner-up; top_k = 1 is greedy. The entropy
    // is over the tokens left.
    let banned = SamplingParams { temperature: 0.0, banned: vec![argmax(0)], ..Default::default() };
    let banned_pick = b.sample(&t, &banned, &mut rngs).unwrap()[0];
    assert_ne!(banned_pick.token, argmax(0));
    let mut without_best = logits[..v].to_vec();
    without_best[argmax(0) as usize] = f32::NEG_INFINITY;
    entropy_close(banned_pick.entropy, reference::softmax_entropy(&without_best, 1.0).1, "argmax banned");
    let top1 = SamplingParams { temperature: 1.0, top_k: 1, ..Default::default() };
    assert_eq!(b.sample(&t, &top1, &mut rngs).unwrap()[1].token, argmax(1));
    // Seeds reproduce; frequencies follow softmax(z / T) restricted by top-p.
    let small = [2.0f32, 1.0, 0.0, -1.0, f32::NEG_INFINITY];
    let ts = upload(b, &small, &[1, 5]);
    let params = SamplingParams { temperature: 0.8, top_p: 0.95, ..Default::default() };
    let draw = |seed| {
        let mut r = vec![Rng::new(seed)];
        (0..4000).map(|_| b.sample(&ts, &params, &mut r).unwrap()[0].token).collect::<Vec<_>>()
    };
    let a = draw(9);
    assert_eq!(a, draw(9), "same seed, same tokens");
    let p: Vec<f64> = small.iter().map(|&z| (z as f64 / 0.8).exp()).collect();
    let total: f64 = p.iter().sum();
    // Nucleus at 0.95: tokens 0, 1, 2 cover 0.95 of the mass (token 3 is cut).
    let kept: f64 = p[..3].iter().sum();
    assert!(p[..2].iter().sum::<f64>() / total < 0.95 && kept / total >= 0.95);
    for tok in 0..5u32 {
        let freq = a.iter().filter(|&&x| x == tok).count() as f64 / a.len() as f64;
        let want = if tok < 3 { p[tok as usize] / kept } else { 0.0 };
        assert!((freq - want).abs() < 0.03, "token {tok}: frequency {freq:.3} vs {want:.3}");
    }
    // Plain sampling (no filter) follows softmax(z / T) over every finite token.
    let plain = SamplingParams { temperature: 0.8, ..Default::default() };
    let (_, h_small) = reference::softmax_entropy(&small, 1.0 / 0.8);
    // The entropy is of softmax(z / T) before the filters, whichever filter is set.
    for filtered in [&plain, &params] {
        entropy_close(b.sample(&ts, filtered, &mut [Rng::new(3)]).unwrap()[0].entropy, h_small, "T = 0.8");
    }
    let mut r = vec![Rng::new(10)];
    let draws: Vec<u32> = (0..4000).map(|_| b.sample(&ts, &plain, &mut r).unwrap()[0].token).collect();
    for tok in 0..5u32 {
        let freq = draws.iter().filter(|&&x| x == tok).count() as f64 / draws.len() as f64;
        assert!(
            (freq - p[tok as usize] / total).abs() < 0.03,
            "plain token {tok}: {freq:.3} vs {:.3}",
            p[tok as usize] / total
        );
    }
    let nan = upload(b, &[0.0, f32::NAN], &[1, 2]);
    assert!(b.sample(&nan, &SamplingParams::default(), &mut [Rng::new(0)]).is_err(), "NaN logits must be an error");
    let inf = upload(b, &[0.0, f32::INFINITY], &[1, 2]);
    assert!(b.sample(&inf, &SamplingParams::greedy(), &mut [Rng::new(0)]).is_err(), "+inf logits must be an error");
    let masked = upload(b, &[f32::NEG_INFINITY; 3], &[1, 3]);
    assert!(b.sample(&masked, &SamplingParams::default(), &mut [Rng::new(0)]).is_err());
}

pub fn concat_and_mask<B: Backend>(b: &B) {
    let a = upload(b, &[1.0, 2.0, 3.0], &[1, 3]);
    let c = upload(b, &[4.0, 5.0, 6.0, 7.0, 8.0, 9.0], &[2, 3]);
    let mut s = b.concat_rows(&[&a, &c]).unwrap();
    assert_eq!(s.shape(), &[3, 3]);
    b.mask_columns(&mut s, &[0, 2]).unwrap();
    let ninf = f32::NEG_INFINITY;
    assert_eq!(b.to_host_f32(&s).unwrap(), [ninf, 2.0, ninf, ninf, 5.0, ninf, ninf, 8.0, ninf]);
    assert!(b.concat_rows(&[&a, &upload(b, &[0.0; 2], &[1, 2])]).is_err(), "column mismatch");
    assert!(b.mask_columns(&mut s, &[3]).is_err(), "column out of range");
}

pub fn entropy_grad<B: Backend>(b: &B) {
    let mut rng = Rng::new(8);
    for v in [1usize, 7, 1000, 151936] {
        let mut rows = entropy_rows(&mut rng, v);
        rows.truncate(5);
        let n = rows.len();
        let flat: Vec<f32> = rows.concat();
        let upstream = random_vec(&mut rng, n, 2.0);
        for dtype in [DType::F32, DType::BF16] {
            let stored = rounded(&flat, dtype);
            let t = b.upload_as(&flat, &[n, v], dtype).unwrap();
            for inv_t in [1.0f32, 2.0] {
                let (lse, ent) = b.softmax_entropy(&t, inv_t).unwrap();
                let g = b.entropy_grad(&t, &lse, &ent, &upload(b, &upstream, &[n]), inv_t).unwrap();
                let g = b.to_host_f32(&g).unwrap();
                for r in 0..n {
                    let want: Vec<f64> = reference::entropy_grad(&stored[r * v..(r + 1) * v], inv_t)
                        .into_iter()
                        .map(|x| x * upstream[r] as f64)
                        .collect();
                    let scale = want.iter().fold(1e-3f64, |m, x| m.max(x.abs()));
                    let err =
                        g[r * v..(r + 1) * v].iter().zip(&want).map(|(&a, b)| (a as f64 - b).abs()).fold(0.0, f64::max);
                    assert!(
                        err <= 1e-4 * scale,
                        "entropy_grad V={v} {dtype} 1/T={inv_t} row {r}: error {err:.2e} (scale {scale:.2e})"
                    );
                }
            }
        }
    }
}

pub fn em_inf<B: Backend>(b: &B) {
    use entmin_engine::EmInfParams;
    let mut rng = Rng::new(9);
    let official = EmInfParams::default();
    let math_eval = EmInfParams { max_steps: 3, kl_weight: 0.05, ..official };
    let never_stop = EmInfParams { threshold: 0.0, max_steps: 10, kl_weight: 0.05, ..official };
    for v in [1usize, 7, 1000, 32000] {
        let mut rows = vec![random_vec(&mut rng, v, 2.0), random_vec(&mut rng, v, 6.0)];
        let mut masked = random_vec(&mut rng, v, 3.0);
        masked.iter_mut().enumerate().filter(|(i, _)| i % 4 == 3).for_each(|(_, x)| *x = f32::NEG_INFINITY);
        rows.push(masked);
        let mut peaked = vec![0.0f32; v];
        peaked[v / 3] = 30.0;
        rows.push(peaked);
        let n = rows.len();
        let t = upload(b, &rows.concat(), &[n, v]);
        for prm in [official, math_eval, never_stop] {
            let (out, stats) = b.em_inf(&t, &prm).unwrap();
            let out = b.to_host_f32(&out).unwrap();
            for r in 0..n {
                let (want, steps, history, h_after) = reference::em_inf(&rows[r], &prm);
                let what = format!("em_inf V={v} row {r} {prm:?}");
                // With δ = 0 a one-hot row keeps stepping at H ≈ 1e-11, where gradients are
                // rounding noise that Adam's normalisation turns into ±lr moves in any
                // precision: only the step count is comparable there.
                if history.first().is_some_and(|&h| h < 1e-6) {
                    assert_eq!(stats[r].steps, steps, "{what}: steps");
                    continue;
                }
                assert_eq!(stats[r].steps, steps, "{what}: steps");
                assert!(
                    (stats[r].entropy_after as f64 - h_after).abs() < 1e-4 * h_after.max(1.0),
                    "{what}: H {} vs {h_after}",
                    stats[r].entropy_after
                );
                let got = &out[r * v..(r + 1) * v];
                for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                    if w == f64::NEG_INFINITY {
                        assert_eq!(g, f32::NEG_INFINITY, "{what}: masked logit {i} must stay −inf");
                    }
                }
                // Where a logit sits at the row mean its gradient is ~0 and Adam's first step
                // is ±lr on the sign of rounding noise, so z′ is compared through what it is
                // used for: the distribution softmax(z′) (total variation) and its entropy.
                let q_got = softmax64(&got.iter().map(|&x| x as f64).collect::<Vec<_>>());
                let q_want = softmax64(&want);
                let tv: f64 = q_got.iter().zip(&q_want).map(|(a, b)| (a - b).abs()).sum::<f64>() / 2.0;
                assert!(tv < 1e-4, "{what}: total variation {tv:.2e} between softmax(z′) and the f64 reference");
            }
        }
    }
    // 16-bit logits: the op widens them; the result is the f32 run on the rounded values.
    let row = random_vec(&mut rng, 1000, 4.0);
    for dtype in [DType::BF16, DType::F16] {
        let (out, stats) = b.em_inf(&b.upload_as(&row, &[1, 1000], dtype).unwrap(), &math_eval).unwrap();
        let (want, want_stats) = b.em_inf(&upload(b, &rounded(&row, dtype), &[1, 1000]), &math_eval).unwrap();
        assert_eq!(stats, want_stats, "em_inf {dtype}");
        assert_eq!(b.to_host_f32(&out).unwrap(), b.to_host_f32(&want).unwrap(), "em_inf {dtype}");
        let g = b.sample(&b.upload_as(&row, &[1, 1000], dtype).unwrap(), &SamplingParams::greedy(), &mut [Rng::new(0)]);
        let r = rounded(&row, dtype);
        // bf16 rounding makes ties: the first maximal id wins.
        let want_tok = (0..1000).fold(0, |best, i| if r[i] > r[best] { i } else { best });
        assert_eq!(g.unwrap()[0].token as usize, want_tok, "greedy on {dtype} logits");
    }
    let all_masked = upload(b, &[f32::NEG_INFINITY; 4], &[1, 4]);
    let (out, stats) = b.em_inf(&all_masked, &official).unwrap();
    assert_eq!(stats[0].steps, 0);
    assert!(b.to_host_f32(&out).unwrap().iter().all(|&x| x == f32::NEG_INFINITY));
    assert!(b.em_inf(&upload(b, &[0.0, f32::NAN], &[1, 2]), &official).is_err(), "NaN logits are an error");
    assert!(b.em_inf(&t_small(b), &EmInfParams { lr: -1.0, ..official }).is_err(), "bad parameters are an error");
}

fn softmax64(z: &[f64]) -> Vec<f64> {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|&x| if x == f64::NEG_INFINITY { 0.0 } else { (x - max).exp() }).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|x| x / s).collect()
}

fn t_small<B: Backend>(b: &B) -> entmin_engine::Tensor<B> {
    upload(b, &[0.0, 1.0], &[1, 2])
}

/// The EM kernels give a row the same bits whether it is alone in the call or one of
/// many (batched evaluation, self-consistency and a server's continuous batching rely
/// on it): softmax-entropy, the entropy gradient and the EM-INF loop, at a vocabulary
/// long enough that the CPU cuts rows into segments on several threads.
pub fn em_kernels_are_batch_invariant<B: Backend>(b: &B) {
    use entmin_engine::EmInfParams;
    let mut rng = Rng::new(11);
    let never_stop = EmInfParams { threshold: 0.0, max_steps: 4, kl_weight: 0.05, ..EmInfParams::default() };
    for v in [1000usize, 151_936] {
        let mut rows = entropy_rows(&mut rng, v);
        rows.truncate(3);
        rows.push((0..v).map(|i| i as f32 * 0.01).collect());
        let n = rows.len();
        let all = upload(b, &rows.concat(), &[n, v]);
        let (lse, ent) = b.softmax_entropy(&all, 1.0).unwrap();
        let up = upload(b, &random_vec(&mut rng, n, 2.0), &[n]);
        let grad = b.to_host_f32(&b.entropy_grad(&all, &lse, &ent, &up, 1.0).unwrap()).unwrap();
        let (lse, ent) = (b.to_host_f32(&lse).unwrap(), b.to_host_f32(&ent).unwrap());
        let (z, stats) = b.em_inf(&all, &never_stop).unwrap();
        let z = b.to_host_f32(&z).unwrap();
        let up = b.to_host_f32(&up).unwrap();
        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for r in 0..n {
            let one = upload(b, &rows[r], &[1, v]);
            let (l1, e1) = b.softmax_entropy(&one, 1.0).unwrap();
            let g1 = b.entropy_grad(&one, &l1, &e1, &upload(b, &up[r..r + 1], &[1]), 1.0).unwrap();
            let what = format!("V={v} row {r} of {n}");
            let (l1, e1) = (b.to_host_f32(&l1).unwrap(), b.to_host_f32(&e1).unwrap());
            assert_eq!(
                (l1[0].to_bits(), e1[0].to_bits()),
                (lse[r].to_bits(), ent[r].to_bits()),
                "softmax_entropy {what}"
            );
            assert_eq!(bits(&b.to_host_f32(&g1).unwrap()), bits(&grad[r * v..(r + 1) * v]), "entropy_grad {what}");
            let (z1, s1) = b.em_inf(&one, &never_stop).unwrap();
            assert_eq!(s1[0], stats[r], "em_inf stats {what}");
            assert_eq!(bits(&b.to_host_f32(&z1).unwrap()), bits(&z[r * v..(r + 1) * v]), "em_inf z′ {what}");
        }
    }
}
