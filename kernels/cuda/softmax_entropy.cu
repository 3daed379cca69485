// Single-pass softmax-entropy and self-certainty of z/T, one block of ROW_WG threads per row:
// grid rows × ROW_WG. Each thread keeps an online (m, s, t′) state over its share of the row,
// with u = Σ (x − m) and the count n of the values it pushed (u is shifted by n·(m − m′)
// when its max moves to m′); the states are merged by block reductions. Self-certainty =
// lse − mean x − log n = log s − u/n − log n, with u relative to the row max, so no large
// numbers are subtracted. Rows holding NaN or +inf give NaN for every output.

extern "C" __global__ void __launch_bounds__(ROW_WG, 1)
    softmax_entropy(const src_t* logits, float* lse, float* entropy, float* certainty, unsigned rows, unsigned cols,
                    float inv_t) {
    const unsigned r = blockIdx.x;
    if (r >= rows) return;
    Online st = online_new();
    float bad = 0.0f, u = 0.0f, n = 0.0f;
    for_each_src(logits + (size_t)r * cols, cols, [&](unsigned, float z) {
        if (is_bad(z)) {
            bad = 1.0f;
        } else if (!is_neg_inf(z)) {
            const float x = z * inv_t;
            if (n > 0.0f && x > st.m) u += n * (st.m - x);
            online_push(st, x);
            u += x - st.m;
            n += 1.0f;
        }
    });
    const float any_bad = block_max(bad);
    const Finished res = online_finish_full(st);
    const float n_all = block_sum(n);
    const float u_all = block_sum(n > 0.0f ? u + n * (st.m - res.m) : 0.0f);
    if (threadIdx.x == 0) {
        lse[r] = any_bad > 0.0f ? NAN_F : res.lse;
        entropy[r] = any_bad > 0.0f ? NAN_F : res.h;
        const float kl = n_all > 0.0f ? fmaxf(res.log_s - u_all / n_all - logf(n_all), 0.0f) : 0.0f;
        certainty[r] = any_bad > 0.0f ? NAN_F : kl;
    }
}
