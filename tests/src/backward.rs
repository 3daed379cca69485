//! One test body per backward op, generic over [`Backend`]: each gradient is checked
//! against central finite differences of the op's f64 reference forward
//! (`entmin_engine::reference`) for the scalar loss L = Σ dy ⊙ f(inputs) with random dy.

use entmin_engine::{reference, AttentionShape, Backend, DType, HostData, Rng, Tensor};

use crate::{assert_close, random_vec};

fn upload<B: Backend>(b: &B, data: &[f32], shape: &[usize]) -> Tensor<B> {
    b.upload(HostData::F32(data), shape).unwrap()
}

fn host<B: Backend>(b: &B, t: &Tensor<B>) -> Vec<f32> {
    b.to_host_f32(t).unwrap()
}

/// ∂L/∂x by central differences, L(x) = Σ dy·f(x), f evaluated in f64 on f32 inputs. The
/// step is the difference of the f32-rounded perturbed values, so rounding of x ± h
/// does not bias the quotient.
fn finite_differences(x: &[f32], dy: &[f32], h: f32, f: impl Fn(&[f32]) -> Vec<f64>) -> Vec<f64> {
    let loss = |x: &[f32]| f(x).iter().zip(dy).map(|(y, &d)| y * d as f64).sum::<f64>();
    (0..x.len())
        .map(|i| {
            let (mut up, mut down) = (x.to_vec(), x.to_vec());
            up[i] += h;
            down[i] -= h;
            (loss(&up) - loss(&down)) / (up[i] as f64 - down[i] as f64)
        })
        .collect()
}

const H: f32 = 1e-2;
const TOL: f64 = 2e-3;

/// `start` plus the gradient: weight gradients accumulate into what they are given.
fn plus(start: &[f32], grad: &[f64]) -> Vec<f64> {
    start.iter().zip(grad).map(|(&s, &g)| s as f64 + g).collect()
}

pub fn rms_norm_backward<B: Backend>(b: &B) {
    let mut rng = Rng::new(31);
    for (rows, dim) in [(1, 1), (3, 7), (2, 64)] {
        let x = random_vec(&mut rng, rows * dim, 2.0);
        let w = random_vec(&mut rng, dim, 1.5);
        let dy = random_vec(&mut rng, rows * dim, 1.0);
        let dw_start = random_vec(&mut rng, dim, 1.0);
        let mut dw = upload(b, &dw_start, &[dim]);
        let dx = b
            .rms_norm_backward(
                &upload(b, &x, &[rows, dim]),
                &upload(b, &w, &[dim]),
                &upload(b, &dy, &[rows, dim]),
                1e-5,
                &mut dw,
            )
            .unwrap();
        let want_dx = finite_differences(&x, &dy, H, |x| reference::rms_norm(x, dim, &w, 1e-5));
        let want_dw = finite_differences(&w, &dy, H, |w| reference::rms_norm(&x, dim, w, 1e-5));
        assert_close("rms_norm dx", &host(b, &dx), &want_dx, TOL);
        assert_close("rms_norm dweight (accumulated)", &host(b, &dw), &plus(&dw_start, &want_dw), TOL);
    }
    let (x, w) = (upload(b, &[1.0; 6], &[2, 3]), upload(b, &[1.0; 3], &[3]));
    let mut wrong = upload(b, &[0.0; 4], &[4]);
    assert!(b.rms_norm_backward(&x, &w, &x, 1e-5, &mut wrong).is_err(), "dweight of the wrong size");
}

pub fn linear_backward<B: Backend>(b: &B) {
    let mut rng = Rng::new(32);
    for (m, n, k) in [(1, 1, 1), (3, 5, 4), (17, 9, 33)] {
        let x = random_vec(&mut rng, m * k, 1.0);
        let w = random_vec(&mut rng, n * k, 1.0);
        let bias = random_vec(&mut rng, n, 1.0);
        let dy = random_vec(&mut rng, m * n, 1.0);
        let (dw_start, db_start) = (random_vec(&mut rng, n * k, 1.0), random_vec(&mut rng, n, 1.0));
        let (mut dw, mut db) = (upload(b, &dw_start, &[n, k]), upload(b, &db_start, &[n]));
        let (xt, wt, dyt) = (upload(b, &x, &[m, k]), upload(b, &w, &[n, k]), upload(b, &dy, &[m, n]));
        let dx = b.linear_backward(&xt, &wt, &dyt, &mut dw, Some(&mut db)).unwrap();
        let f = |x: &[f32], w: &[f32], bias: &[f32]| reference::linear(x, w, Some(bias), m, n, k);
        let (want_dw, want_db) =
            (finite_differences(&w, &dy, H, |w| f(&x, w, &bias)), finite_differences(&bias, &dy, H, |c| f(&x, &w, c)));
        assert_close("linear dx", &host(b, &dx), &finite_differences(&x, &dy, H, |x| f(x, &w, &bias)), TOL);
        assert_close("linear dw (accumulated)", &host(b, &dw), &plus(&dw_start, &want_dw), TOL);
        assert_close("linear dbias (accumulated)", &host(b, &db), &plus(&db_start, &want_db), TOL);
        // Without a bias gradient only dw accumulates, again.
        b.linear_backward(&xt, &wt, &dyt, &mut dw, None).unwrap();
        let twice: Vec<f64> = want_dw.iter().map(|g| 2.0 * g).collect();
        assert_close("linear dw (accumulated twice)", &host(b, &dw), &plus(&dw_start, &twice), TOL);
    }
    let x = upload(b, &[1.0; 6], &[2, 3]);
    let w16 = b.upload_as(&[1.0; 12], &[4, 3], DType::BF16).unwrap();
    let mut dw = upload(b, &[0.0; 12], &[4, 3]);
    let dy = upload(b, &[1.0; 8], &[2, 4]);
    assert!(b.linear_backward(&x, &w16, &dy, &mut dw, None).is_err(), "16-bit weights are not trained");
    let w = upload(b, &[1.0; 12], &[4, 3]);
    assert!(b.linear_backward(&x, &w, &upload(b, &[1.0; 6], &[2, 3]), &mut dw, None).is_err(), "dy of the wrong shape");
    let mut dw_t = upload(b, &[0.0; 12], &[3, 4]);
    assert!(b.linear_backward(&x, &w, &dy, &mut dw_t, None).is_err(), "dw transposed");
    let mut db = upload(b, &[0.0; 3], &[3]);
    assert!(b.linear_backward(&x, &w, &dy, &mut dw, Some(&mut db)).is_err(), "dbias of the wrong size");
}

pub fn rope_backward<B: Backend>(b: &B) {
    let mut rng = Rng::new(33);
    let (head_dim, heads, theta) = (8, 3, 10000.0);
    let positions = [0u32, 5, 17, 4000];
    let cols = heads * head_dim;
    let x = random_vec(&mut rng, positions.len() * cols, 1.0);
    let dy = random_vec(&mut rng, positions.len() * cols, 1.0);
    let mut g = upload(b, &dy, &[positions.len(), cols]);
    b.rope_backward(&mut g, head_dim, &positions, theta).unwrap();
    let want = finite_differences(&x, &dy, H, |x| reference::rope(x, cols, head_dim, &positions, theta));
    assert_close("rope dx", &host(b, &g), &want, TOL);
}

pub fn attention_backward<B: Backend>(b: &B) {
    let mut rng = Rng::new(34);
    // Prefill of a whole sequence (training), then queries after a cached prefix, GQA;
    // the last two span several blocks of query rows (64 on the CPU).
    for (t, capacity, start_pos) in [(5, 5, 0), (3, 8, 2), (1, 1, 0), (70, 70, 0), (66, 75, 9)] {
        let s = AttentionShape { n_heads: 4, n_kv_heads: 2, head_dim: 6, start_pos };
        let (qdim, kvdim) = (s.n_heads * s.head_dim, s.n_kv_heads * s.head_dim);
        let q = random_vec(&mut rng, t * qdim, 1.0);
        let k = random_vec(&mut rng, capacity * kvdim, 1.0);
        let v = random_vec(&mut rng, capacity * kvdim, 1.0);
        let dout = random_vec(&mut rng, t * qdim, 1.0);
        let (dq, dk, dv) = b
            .attention_backward(
                &upload(b, &q, &[t, qdim]),
                &upload(b, &k, &[capacity, kvdim]),
                &upload(b, &v, &[capacity, kvdim]),
                &upload(b, &dout, &[t, qdim]),
                s,
            )
            .unwrap();
        let f = |q: &[f32], k: &[f32], v: &[f32]| reference::attention(q, k, v, s);
        let what = format!("attention t={t} capacity={capacity} start={start_pos}");
        assert_close(&format!("{what} dq"), &host(b, &dq), &finite_differences(&q, &dout, H, |q| f(q, &k, &v)), TOL);
        assert_close(&format!("{what} dk"), &host(b, &dk), &finite_differences(&k, &dout, H, |k| f(&q, k, &v)), TOL);
        assert_close(&format!("{what} dv"), &host(b, &dv), &finite_differences(&v, &dout, H, |v| f(&q, &k, v)), TOL);
    }
    // Rows that see more than 256 keys, and keys seen by more than 256 (row, head) pairs
    // (the GPU kernels' tiles), against the CPU backend (itself checked above): finite
    // differences at this size would take minutes.
    let s = AttentionShape { n_heads: 4, n_kv_heads: 2, head_dim: 64, start_pos: 170 };
    let (t, capacity) = (130, 310);
    let q = random_vec(&mut rng, t * 256, 1.0);
    let (k, v) = (random_vec(&mut rng, capacity * 128, 1.0), random_vec(&mut rng, capacity * 128, 1.0));
    let dout = random_vec(&mut rng, t * 256, 1.0);
    let on = |x: &[f32], shape: &[usize]| upload(b, x, shape);
    let (dq, dk, dv) = b
        .attention_backward(
            &on(&q, &[t, 256]),
            &on(&k, &[capacity, 128]),
            &on(&v, &[capacity, 128]),
            &on(&dout, &[t, 256]),
            s,
        )
        .unwrap();
    let c = entmin_engine::cpu::CpuBackend;
    let onc = |x: &[f32], shape: &[usize]| upload(&c, x, shape);
    let want = c
        .attention_backward(
            &onc(&q, &[t, 256]),
            &onc(&k, &[capacity, 128]),
            &onc(&v, &[capacity, 128]),
            &onc(&dout, &[t, 256]),
            s,
        )
        .unwrap();
    let f64s = |t: &Tensor<entmin_engine::cpu::CpuBackend>| host(&c, t).iter().map(|&x| x as f64).collect::<Vec<f64>>();
    assert_close("attention dq, 300 keys", &host(b, &dq), &f64s(&want.0), 1e-4);
    assert_close("attention dk, 300 keys", &host(b, &dk), &f64s(&want.1), 1e-4);
    assert_close("attention dv, 300 keys", &host(b, &dv), &f64s(&want.2), 1e-4);
}

pub fn silu_mul_backward<B: Backend>(b: &B) {
    let mut rng = Rng::new(35);
    let n = 300;
    let gate = random_vec(&mut rng, n, 6.0);
    let up = random_vec(&mut rng, n, 2.0);
    let dy = random_vec(&mut rng, n, 1.0);
    let (dg, du) = b
        .silu_mul_backward(&upload(b, &gate, &[3, 100]), &upload(b, &up, &[3, 100]), &upload(b, &dy, &[3, 100]))
        .unwrap();
    assert_close(
        "silu_mul dgate",
        &host(b, &dg),
        &finite_differences(&gate, &dy, H, |g| reference::silu_mul(g, &up)),
        TOL,
    );
    assert_close(
        "silu_mul dup",
        &host(b, &du),
        &finite_differences(&up, &dy, H, |u| reference::silu_mul(&gate, u)),
        TOL,
    );
}

pub fn embedding_backward<B: Backend>(b: &B) {
    let mut rng = Rng::new(36);
    let (vocab, dim) = (11, 5);
    let table = random_vec(&mut rng, vocab * dim, 1.0);
    let ids = [3u32, 0, 3, 10, 7, 3];
    let dy = random_vec(&mut rng, ids.len() * dim, 1.0);
    let gather = |t: &[f32]| -> Vec<f64> {
        ids.iter().flat_map(|&i| t[i as usize * dim..][..dim].iter().map(|&x| x as f64)).collect()
    };
    let start = random_vec(&mut rng, vocab * dim, 1.0);
    let mut got = upload(b, &start, &[vocab, dim]);
    b.embedding_backward(&ids, &upload(b, &dy, &[ids.len(), dim]), &mut got).unwrap();
    let want = plus(&start, &finite_differences(&table, &dy, H, gather));
    assert_close("embedding dtable (accumulated)", &host(b, &got), &want, TOL);
    let one_row = upload(b, &dy[..dim], &[1, dim]);
    assert!(b.embedding_backward(&[11], &one_row, &mut got).is_err(), "id past the table");
    let mut narrow = upload(b, &start[..vocab * (dim - 1)], &[vocab, dim - 1]);
    assert!(b.embedding_backward(&[1], &one_row, &mut narrow).is_err(), "table of another width");
}

/// `token_logprobs` and `policy_grad` (the policy-gradient head of EM-RL): log-probs
/// against the f64 reference; the gradient against central differences of the f64
/// objective d_logp·log p(target) + d_entropy·H on finite rows, and against the f64
/// reference on rows with −inf and huge logits up to V = 151936.
pub fn policy_grad<B: Backend>(b: &B) {
    let mut rng = Rng::new(37);
    for v in [1usize, 7, 300, 151936] {
        let mut rows = vec![random_vec(&mut rng, v, 3.0), random_vec(&mut rng, v, 0.5)];
        let mut masked = random_vec(&mut rng, v, 4.0);
        masked.iter_mut().enumerate().filter(|(i, _)| i % 3 == 2).for_each(|(_, x)| *x = f32::NEG_INFINITY);
        rows.push(masked);
        let mut huge = random_vec(&mut rng, v, 1.0);
        huge[v / 2] = 1e4;
        rows.push(huge);
        let n = rows.len();
        let mut targets: Vec<u32> = (0..n).map(|r| ((r * 7 + 1) % v) as u32 / 3 * 3 % v as u32).collect();
        if v >= 3 {
            targets[2] = 2; // masked: log p = −inf, and no gradient anywhere it is masked
        }
        let d_logp = random_vec(&mut rng, n, 2.0);
        let d_entropy = random_vec(&mut rng, n, 2.0);
        let logits = upload(b, &rows.concat(), &[n, v]);
        for inv_t in [1.0f32, 0.5] {
            let (lse, ent) = b.softmax_entropy(&logits, inv_t).unwrap();
            let logp = host(b, &b.token_logprobs(&logits, &lse, &targets, inv_t).unwrap());
            let want_logp: Vec<f64> =
                rows.iter().zip(&targets).map(|(r, &t)| reference::token_logprob(r, t as usize, inv_t)).collect();
            assert_close(&format!("token_logprobs V={v} 1/T={inv_t}"), &logp, &want_logp, 1e-5);
            let (dl, de) = (upload(b, &d_logp, &[n]), upload(b, &d_entropy, &[n]));
            let g = host(b, &b.policy_grad(&logits, &lse, &ent, &targets, &dl, &de, inv_t).unwrap());
            for (r, row) in rows.iter().enumerate() {
                let t = targets[r] as usize;
                let got = &g[r * v..(r + 1) * v];
                let what = format!("policy_grad V={v} 1/T={inv_t} row {r}");
                if v <= 300 && r < 2 {
                    let objective =
                        |z: &[f32]| vec![reference::token_logprob(z, t, inv_t), reference::softmax_entropy(z, inv_t).1];
                    let fd = (0..v)
                        .map(|i| {
                            let mut dz = vec![0f32; v];
                            dz[i] = 1.0;
                            finite_differences(&[0.0], &[1.0], 1e-3, |e| {
                                let z: Vec<f32> = row.iter().zip(&dz).map(|(z, d)| z + d * e[0]).collect();
                                let o = objective(&z);
                                vec![d_logp[r] as f64 * o[0] + d_entropy[r] as f64 * o[1]]
                            })[0]
                        })
                        .collect::<Vec<f64>>();
                    assert_close(&format!("{what} vs finite differences"), got, &fd, TOL);
                }
                let want = reference::policy_grad(row, t, d_logp[r], d_entropy[r], inv_t);
                assert_close(&what, got, &want, 1e-4);
            }
        }
    }
    let logits = upload(b, &[0.0; 6], &[2, 3]);
    let (lse, ent) = b.softmax_entropy(&logits, 1.0).unwrap();
    let err = b.token_logprobs(&logits, &lse, &[0, 3], 1.0).expect_err("target outside the row");
    assert!(err.to_string().contains("target 3"), "{err}");
    let one = upload(b, &[1.0], &[1]);
    assert!(b.policy_grad(&logits, &lse, &ent, &[0, 1], &one, &one, 1.0).is_err(), "one upstream value for two rows");
}
