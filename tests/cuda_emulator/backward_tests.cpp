// Tests of entmin's backward (training) CUDA kernels without a GPU: like kernel_tests.cpp, the
// kernels run in the emulator of shim.h and are compared with double-precision references
// written here from the formulas of docs/cuda.md ("Backward kernels"), independently of the
// kernels. Outputs are poisoned before each launch (accumulating ones start from random
// values and are checked as start + increment), and sizes are chosen off the block sizes.
// Only token_logprobs and entropy_grad read the storage dtype; their references use the
// rounded values (from_src). How the program is built and run: test_util.h.
#include "test_util.h"

static const float POISON = 12345.f;

static void fill_normal(Buf<float>& b, float sigma) {
    for (size_t i = 0; i < b.n; i++) b[i] = nrand(sigma);
}

// ---- token_logprobs and entropy_grad's policy gradient -------------------------------------

// lse and entropy of softmax(z·inv_t) over the unmasked logits, in double, with the product
// z·inv_t exact; (−inf, 0) for a fully masked row.
static void ref_lse_entropy(const src_t* z, unsigned cols, float inv_t, double& lse, double& h) {
    double mx = -INFINITY, s = 0, t = 0;
    for (unsigned c = 0; c < cols; c++)
        if (from_src(z[c]) != NEG) mx = std::max(mx, (double)from_src(z[c]) * inv_t);
    lse = mx, h = 0;
    if (mx == -INFINITY) return;
    for (unsigned c = 0; c < cols; c++)
        if (from_src(z[c]) != NEG) s += std::exp((double)from_src(z[c]) * inv_t - mx);
    lse = mx + std::log(s);
    for (unsigned c = 0; c < cols; c++) {
        if (from_src(z[c]) == NEG) continue;
        const double x = (double)from_src(z[c]) * inv_t;
        t += std::exp(x - lse) * (lse - x);  // −p·log p
    }
    h = t;
}

// Rows of logits and targets: random, a third masked with an unmasked target, the same with
// a masked target, fully masked, a huge logit as the target and beside it, one-hot.
static const unsigned POLICY_ROWS = 7;
static void make_policy_rows(unsigned cols, Buf<src_t>& z, Buf<unsigned>& targets) {
    for (unsigned r = 0; r < POLICY_ROWS; r++) {
        std::vector<float> row(cols);
        for (auto& v : row) v = nrand(r == 0 ? 3.f : 1.f);
        unsigned t = (unsigned)(rng() % cols);
        switch (r) {
            case 1:
            case 2:
                for (unsigned c = 0; c < cols; c++)
                    if (c % 3 == 2) row[c] = NEG;
                t = cols < 3 ? 0 : r == 1 ? t / 3 * 3 : 2;
                break;
            case 3: std::fill(row.begin(), row.end(), NEG); break;
            case 4:
            case 5:
                row[cols / 2] = 1e4f;
                t = r == 4 ? cols / 2 : (cols / 2 + 1) % cols;
                break;
            case 6:
                std::fill(row.begin(), row.end(), NEG);
                row[cols / 3] = 2.5f;
                t = cols / 3;
                break;
        }
        for (unsigned c = 0; c < cols; c++) z[r * cols + c] = to_src(row[c]);
        targets[r] = t;
    }
}

static void test_token_logprobs() {
    for (unsigned cols : {1u, 7u, 300u, 5003u})
        for (float inv_t : {1.0f, 0.7f}) {
            const unsigned rows = POLICY_ROWS;
            Buf<src_t> z(rows * cols);
            Buf<unsigned> targets(rows);
            make_policy_rows(cols, z, targets);
            Buf<float> lse(rows), out(rows, 0, POISON);
            for (unsigned r = 0; r < rows; r++) {
                double l, h;
                ref_lse_entropy(z.p + r * cols, cols, inv_t, l, h);
                lse[r] = (float)l;
            }
            emu::launch({cdiv(rows, WG)}, {WG},
                        [&] { token_logprobs(z.p, lse.p, targets.p, out.p, rows, cols, inv_t); });
            for (unsigned r = 0; r < rows; r++) {
                const float zt = from_src(z[r * cols + targets[r]]);
                // From the f32 lse given: with a huge logit, x·inv_t and lse nearly cancel.
                const double want = zt == NEG ? -INFINITY : (double)zt * inv_t - (double)lse[r];
                CHECK(near(out[r], want, 1e-30, 1e-6), "token_logprobs cols%u 1/T%g row%u: %.9g vs %.9g", cols, inv_t,
                      r, out[r], want);
            }
        }
}

// entropy_grad with has_logp = 1: d_logp·inv_t·(1[i = target] − p_i) − inv_t·upstream·p_i·(x_i − Σ p x),
// 0 at masked logits (the target included) and on fully masked rows. inv_t is 1 or 0.5 so that
// x = z·inv_t is exact in f32 too: on the huge-logit rows p ≈ 1 and a rounded x would move
// the reference by its rounding (the entropy term alone is tested with 0.7 in kernel_tests).
static void test_policy_grad() {
    for (unsigned cols : {1u, 7u, 300u, 5003u})
        for (float inv_t : {1.0f, 0.5f}) {
            const unsigned rows = POLICY_ROWS;
            Buf<src_t> z(rows * cols);
            Buf<unsigned> targets(rows);
            make_policy_rows(cols, z, targets);
            Buf<float> lse(rows), ent(rows), upstream(rows), d_logp(rows), grad(rows * cols, 0, POISON);
            for (unsigned r = 0; r < rows; r++) {
                double l, h;
                ref_lse_entropy(z.p + r * cols, cols, inv_t, l, h);
                lse[r] = (float)l, ent[r] = (float)h;
                upstream[r] = nrand(2), d_logp[r] = nrand(2);
            }
            emu::launch({cdiv((size_t)rows * cols, WG)}, {WG}, [&] {
                entropy_grad(z.p, lse.p, ent.p, upstream.p, targets.p, d_logp.p, grad.p, rows, cols, inv_t, 1);
            });
            for (unsigned r = 0; r < rows; r++) {
                std::vector<double> want(cols, 0.0);
                double gmax = 0;
                for (unsigned c = 0; c < cols; c++) {
                    const float v = from_src(z[r * cols + c]);
                    if (lse[r] == NEG || v == NEG) continue;
                    const double x = (double)v * inv_t, p = std::exp(x - lse[r]);
                    const double entropy_term = -(double)inv_t * upstream[r] * p * (x - ((double)lse[r] - ent[r]));
                    const double logp_term = (double)inv_t * d_logp[r] * ((c == targets[r]) - p);
                    want[c] = entropy_term + logp_term;
                    gmax = std::max(gmax, std::fabs(entropy_term) + std::fabs(logp_term));
                }
                for (unsigned c = 0; c < cols; c++) {
                    const float got = grad[r * cols + c];
                    CHECK(std::fabs(got - want[c]) <= 1e-5 * gmax + 1e-7 && !std::isnan(got),
                          "policy grad cols%u 1/T%g row%u c%u (target %u): %g vs %g", cols, inv_t, r, c, targets[r],
                          got, want[c]);
                }
            }
        }
}

// ---- rms_norm_backward, silu_mul_backward, embedding_backward ------------------------------

static void test_rms_norm_backward() {
    struct Case {
        unsigned rows, cols;
    };
    for (auto [rows, cols] : {Case{1, 37}, Case{3, 1000}, Case{2, 3000}, Case{2, 1}}) {
        const float eps = 1e-5f;
        Buf<float> x(rows * cols), w(cols), dy(rows * cols), dx(rows * cols, 0, POISON), dw(rows * cols, 0, POISON);
        fill_normal(x, 2), fill_normal(dy, 1);
        for (size_t i = 0; i < w.n; i++) w[i] = urand(-1.5, 1.5);
        if (rows == 3)
            for (unsigned c = 0; c < cols; c++) x[cols + c] = 0;  // a zero row: s = 1/sqrt(eps)
        emu::launch({rows}, {ROW_WG}, [&] { rms_norm_backward(x.p, w.p, dy.p, dx.p, dw.p, rows, cols, eps); });
        for (unsigned r = 0; r < rows; r++) {
            const float* xr = x.p + r * cols;
            const float* dyr = dy.p + r * cols;
            double ss = 0, dot = 0, dot_mag = 0;
            for (unsigned c = 0; c < cols; c++) {
                ss += (double)xr[c] * xr[c];
                dot += (double)w[c] * dyr[c] * xr[c];
                dot_mag += std::fabs((double)w[c] * dyr[c] * xr[c]);
            }
            const double s = 1 / std::sqrt(ss / cols + eps);
            for (unsigned c = 0; c < cols; c++) {
                const double a = s * w[c] * dyr[c], b = xr[c] * s * s * s * dot / cols;
                const double mag = std::fabs(a) + std::fabs(xr[c]) * s * s * s * dot_mag / cols;
                const float got = dx[r * cols + c];
                CHECK(std::fabs(got - (a - b)) <= 2e-5 * mag + 1e-6,
                      "rms_norm_backward dx rows%u cols%u r%u c%u: %g vs %g", rows, cols, r, c, got, a - b);
                CHECK(near(dw[r * cols + c], (double)dyr[c] * xr[c] * s, 1e-6, 1e-5),
                      "rms_norm_backward dw_rows cols%u r%u c%u: %g vs %g", cols, r, c, dw[r * cols + c],
                      (double)dyr[c] * xr[c] * s);
            }
        }
    }
}

static void test_silu_mul_backward() {
    const unsigned n = 1031;
    Buf<float> g(n), u(n), dy(n), d_gate(n, 0, POISON), d_up(n, 0, POISON);
    fill_normal(g, 3), fill_normal(u, 1), fill_normal(dy, 1);
    const float extremes[] = {0.f, -30.f, 30.f, -100.f, 100.f, -1e-8f, 88.f, -88.f};
    for (unsigned i = 0; i < std::size(extremes); i++) g[i * 97] = extremes[i];
    emu::launch({cdiv(n, WG)}, {WG}, [&] { silu_mul_backward(g.p, u.p, dy.p, d_gate.p, d_up.p, n); });
    for (unsigned i = 0; i < n; i++) {
        const double s = 1 / (1 + std::exp(-(double)g[i]));
        const double want_gate = (double)dy[i] * u[i] * s * (1 + g[i] * (1 - s)), want_up = (double)dy[i] * g[i] * s;
        CHECK(near(d_gate[i], want_gate, 1e-6, 1e-5), "silu_mul_backward d_gate %u (gate %g): %g vs %g", i, g[i],
              d_gate[i], want_gate);
        CHECK(near(d_up[i], want_up, 1e-6, 1e-5), "silu_mul_backward d_up %u (gate %g): %g vs %g", i, g[i], d_up[i],
              want_up);
    }
}

static void test_embedding_backward() {
    struct Case {
        unsigned dim, n_ids, vocab;
    };
    for (auto [dim, n_ids, vocab] : {Case{37, 9, 11}, Case{300, 20, 5}, Case{1, 4, 3}, Case{513, 3, 40}}) {
        Buf<unsigned> ids(n_ids);
        // Repeats: ids 3 and 5 of a small vocabulary come back; the last row is never used.
        for (unsigned t = 0; t < n_ids; t++) ids[t] = (t * 7 + 3) % (vocab > 1 ? vocab - 1 : 1);
        Buf<float> dy(n_ids * dim), table(vocab * dim);
        fill_normal(dy, 1), fill_normal(table, 1);
        const std::vector<float> start(table.p, table.p + table.n);
        emu::launch({cdiv(dim, WG)}, {WG}, [&] { embedding_backward(ids.p, dy.p, table.p, dim, n_ids); });
        for (unsigned row = 0; row < vocab; row++)
            for (unsigned c = 0; c < dim; c++) {
                double want = start[row * dim + c];
                bool used = false;
                for (unsigned t = 0; t < n_ids; t++)
                    if (ids[t] == row) want += dy[t * dim + c], used = true;
                const float got = table[row * dim + c];
                CHECK(used ? near(got, want, 1e-6, 1e-6) : got == start[row * dim + c],
                      "embedding_backward dim%u row%u c%u: %g vs %g", dim, row, c, got, want);
            }
    }
}

// ---- matmul_strided ------------------------------------------------------------------------

// c = (accumulate ? c : 0) + a·b with a [m, k] and b [k, n] addressed by the strides given.
static void check_strided(unsigned m, unsigned n, unsigned k, unsigned a_rs, unsigned a_cs, unsigned b_rs,
                          unsigned b_cs, unsigned accumulate, const char* what) {
    const unsigned c_rs = n + 5;
    auto extent = [](unsigned rows, unsigned cols, unsigned rs, unsigned cs) {
        return rows && cols ? (size_t)(rows - 1) * rs + (size_t)(cols - 1) * cs + 1 : 1;
    };
    // NaN wherever no element of a or b lies (padding, skipped columns): reading past the
    // matrices poisons the result.
    Buf<float> a(extent(m, k, a_rs, a_cs), 0, NAN), b(extent(k, n, b_rs, b_cs), 0, NAN), c(m * c_rs, 0, POISON);
    for (unsigned i = 0; i < m; i++)
        for (unsigned p = 0; p < k; p++) a[(size_t)i * a_rs + (size_t)p * a_cs] = nrand(1);
    for (unsigned p = 0; p < k; p++)
        for (unsigned j = 0; j < n; j++) b[(size_t)p * b_rs + (size_t)j * b_cs] = nrand(1);
    if (a.n == 1 && m * k > 1) a[0] = 1.0f;  // a broadcast row of ones (1ᵀ·dy)
    if (accumulate) fill_normal(c, 1);
    const std::vector<float> c0(c.p, c.p + c.n);
    emu::launch({cdiv(n, 64), cdiv(m, 64)}, {WG}, [&] {
        matmul_strided(a.p, b.p, c.p, m, n, k, a_rs, a_cs, b_rs, b_cs, c_rs, accumulate);
    });
    for (unsigned i = 0; i < m; i++)
        for (unsigned j = 0; j < c_rs; j++) {
            const float got = c[i * c_rs + j];
            if (j >= n) {
                CHECK(got == c0[i * c_rs + j], "matmul_strided %s m%u n%u k%u: padding (%u, %u) written", what, m, n, k,
                      i, j);
                continue;
            }
            double want = accumulate ? c0[i * c_rs + j] : 0, mag = std::fabs(want);
            for (unsigned p = 0; p < k; p++) {
                const double t =
                    (double)a[(size_t)i * a_rs + (size_t)p * a_cs] * b[(size_t)p * b_rs + (size_t)j * b_cs];
                want += t, mag += std::fabs(t);
            }
            CHECK(std::fabs(got - want) <= 1e-5 * mag + 1e-6, "matmul_strided %s m%u n%u k%u acc%u (%u, %u): %g vs %g",
                  what, m, n, k, accumulate, i, j, got, want);
        }
}

static void test_matmul_strided() {
    struct Case {
        unsigned m, n, k;
    };
    for (auto [m, n, k] : {Case{70, 130, 37}, Case{1, 5, 3}, Case{130, 65, 1}, Case{64, 64, 64}, Case{1, 1, 1},
                           Case{200, 3, 100}, Case{3, 70, 0}, Case{65, 129, 17}})
        for (unsigned ta : {0u, 1u})
            for (unsigned tb : {0u, 1u})
                for (unsigned acc : {0u, 1u}) {
                    // a [m, k] stored row-major with leading dimension k + 3, or transposed
                    // ([k, m], leading dimension m + 3); b [k, n] likewise.
                    const unsigned lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2;
                    const char* what[] = {"a·b", "a·bᵀ", "aᵀ·b", "aᵀ·bᵀ"};
                    check_strided(m, n, k, ta ? 1 : lda, ta ? lda : 1, tb ? 1 : ldb, tb ? ldb : 1, acc,
                                  what[ta * 2 + tb]);
                }
    // Strides other than 1 on both axes (every other column), and broadcast ones (dbias).
    check_strided(70, 67, 40, 2 * 40 + 1, 2, 3, 67 * 3 + 1, 1, "no unit stride");
    check_strided(1, 130, 37, 0, 0, 130, 1, 1, "1ᵀ·b");
}

// ---- attention_backward_query, attention_backward_kv ---------------------------------------

struct AttnCase {
    unsigned q_rows, n_heads, group, head_dim, start_pos, extra_rows;
    size_t offset;  // misaligns q, k, v, dout by this many elements
};

static void test_attention_backward() {
    for (auto [q_rows, n_heads, group, head_dim, start_pos, extra_rows, offset] :
         {AttnCase{3, 4, 2, 64, 297, 3, 0}, AttnCase{150, 4, 2, 6, 150, 4, 0}, AttnCase{2, 2, 1, 256, 3, 2, 0},
          AttnCase{4, 4, 4, 64, 0, 1, 1}, AttnCase{1, 1, 1, 6, 0, 0, 0}, AttnCase{5, 2, 2, 8, 1, 2, 1}}) {
        const unsigned n_kv = n_heads / group, kv_dim = n_kv * head_dim, q_dim = n_heads * head_dim;
        const unsigned seen = start_pos + q_rows, kv_rows = seen + extra_rows;
        const float scale = 1.0f / std::sqrt((float)head_dim);
        Buf<float> q(q_rows * q_dim, offset), dout(q_rows * q_dim, offset), k(kv_rows * kv_dim, offset),
            v(kv_rows * kv_dim, offset);
        fill_normal(q, 1), fill_normal(dout, 1), fill_normal(k, 1), fill_normal(v, 1);

        // Reference, per (i, h): p over keys j ≤ start_pos + i, dp_j = dout·v_j, δ, dq; and
        // dk, dv summed over every (i, h) that sees key j. mag_* bound the sums' magnitudes.
        const size_t n_q = (size_t)q_rows * q_dim, n_kv_el = (size_t)kv_rows * kv_dim;
        std::vector<double> want_dq(n_q, 0), mag_dq(n_q, 0), want_dk(n_kv_el, 0), mag_dk(n_kv_el, 0);
        std::vector<double> want_dv(n_kv_el, 0), mag_dv(n_kv_el, 0);
        std::vector<double> want_stats(2 * q_rows * n_heads), mag_delta(q_rows * n_heads);
        for (unsigned i = 0; i < q_rows; i++)
            for (unsigned h = 0; h < n_heads; h++) {
                const unsigned n_keys = start_pos + i + 1, kv_off = h / group * head_dim;
                const float* qr = q.p + (i * n_heads + h) * head_dim;
                const float* dor = dout.p + (i * n_heads + h) * head_dim;
                std::vector<double> s(n_keys), dp(n_keys);
                double mx = -INFINITY, sum = 0, delta = 0, dmag = 0;
                for (unsigned j = 0; j < n_keys; j++) {
                    double sd = 0, pd = 0;
                    for (unsigned d = 0; d < head_dim; d++) {
                        sd += (double)qr[d] * k[j * kv_dim + kv_off + d];
                        pd += (double)dor[d] * v[j * kv_dim + kv_off + d];
                    }
                    s[j] = sd * scale, dp[j] = pd;
                    mx = std::max(mx, s[j]);
                }
                for (unsigned j = 0; j < n_keys; j++) sum += std::exp(s[j] - mx);
                const double lse = mx + std::log(sum);
                for (unsigned j = 0; j < n_keys; j++) {
                    delta += std::exp(s[j] - lse) * dp[j];
                    dmag += std::exp(s[j] - lse) * std::fabs(dp[j]);
                }
                const size_t st = i * n_heads + h;
                want_stats[2 * st] = lse, want_stats[2 * st + 1] = delta, mag_delta[st] = dmag;
                for (unsigned j = 0; j < n_keys; j++) {
                    const double p = std::exp(s[j] - lse), ds = p * (dp[j] - delta);
                    const double ds_mag = p * (std::fabs(dp[j]) + std::fabs(delta) + dmag);
                    for (unsigned d = 0; d < head_dim; d++) {
                        const size_t qi = st * head_dim + d, ki = (size_t)j * kv_dim + kv_off + d;
                        want_dq[qi] += scale * ds * k[ki], mag_dq[qi] += scale * ds_mag * std::fabs(k[ki]);
                        want_dk[ki] += scale * ds * qr[d], mag_dk[ki] += scale * ds_mag * std::fabs(qr[d]);
                        want_dv[ki] += p * dor[d], mag_dv[ki] += p * std::fabs(dor[d]);
                    }
                }
            }

        Buf<float> dq(n_q, 0, POISON), stats(2 * q_rows * n_heads, 0, POISON);
        emu::launch({q_rows * n_heads}, {WG}, [&] {
            attention_backward_query(q.p, k.p, v.p, dout.p, dq.p, stats.p, q_rows, n_heads, group, head_dim, kv_dim,
                                     start_pos, scale);
        });
        char what[96];
        snprintf(what, sizeof what, "q_rows%u heads%u group%u hd%u start%u", q_rows, n_heads, group, head_dim,
                 start_pos);
        for (size_t st = 0; st < (size_t)q_rows * n_heads; st++) {
            CHECK(near(stats[2 * st], want_stats[2 * st], 1e-5, 1e-5),
                  "attention_backward_query lse %s (%zu): %g vs %g", what, st, stats[2 * st], want_stats[2 * st]);
            CHECK(std::fabs(stats[2 * st + 1] - want_stats[2 * st + 1]) <= 1e-5 * mag_delta[st] + 1e-6,
                  "attention_backward_query delta %s (%zu): %g vs %g", what, st, stats[2 * st + 1],
                  want_stats[2 * st + 1]);
        }
        for (size_t e = 0; e < n_q; e++)
            CHECK(std::fabs(dq[e] - want_dq[e]) <= 2e-5 * mag_dq[e] + 1e-6,
                  "attention_backward_query dq %s [%zu]: %g vs %g", what, e, dq[e], want_dq[e]);

        // The KV kernel reads the reference's statistics, rounded to f32.
        Buf<float> ref_stats(want_stats.size()), dk(n_kv_el, 0, POISON), dv(n_kv_el, 0, POISON);
        for (size_t e = 0; e < want_stats.size(); e++) ref_stats[e] = (float)want_stats[e];
        emu::launch({kv_rows * n_kv}, {WG}, [&] {
            attention_backward_kv(q.p, k.p, v.p, dout.p, ref_stats.p, dk.p, dv.p, q_rows, n_heads, group, head_dim,
                                  kv_dim, start_pos, scale, kv_rows);
        });
        for (size_t e = 0; e < n_kv_el; e++) {
            const bool unseen = e / kv_dim >= seen;
            CHECK(unseen ? dk[e] == 0 : std::fabs(dk[e] - want_dk[e]) <= 2e-5 * mag_dk[e] + 1e-6,
                  "attention_backward_kv dk %s row%zu [%zu]: %g vs %g", what, e / kv_dim, e % kv_dim, dk[e],
                  want_dk[e]);
            CHECK(unseen ? dv[e] == 0 : std::fabs(dv[e] - want_dv[e]) <= 2e-5 * mag_dv[e] + 1e-6,
                  "attention_backward_kv dv %s row%zu [%zu]: %g vs %g", what, e / kv_dim, e % kv_dim, dv[e],
                  want_dv[e]);
        }
    }
}

int main(int argc, char** argv) {
    return run_tests(argc, argv,
                     {
                         {"token_logprobs", test_token_logprobs},
                         {"policy_grad", test_policy_grad},
                         {"rms_norm_backward", test_rms_norm_backward},
                         {"silu_mul_backward", test_silu_mul_backward},
                         {"embedding_backward", test_embedding_backward},
                         {"matmul_strided", test_matmul_strided},
                         {"attention_backward", test_attention_backward},
                     });
}
