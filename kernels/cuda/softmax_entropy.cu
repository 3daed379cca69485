// Single-pass softmax-entropy of z/T, one block of ROW_WG threads per row: grid rows × ROW_WG.
// Each thread keeps an online (m, s, t′) state over its share of the row; the states are
// merged by block reductions. Rows holding NaN or +inf give NaN for both outputs.

extern "C" __global__ void __launch_bounds__(ROW_WG, 1)
    softmax_entropy(const src_t* logits, float* lse, float* entropy, unsigned rows, unsigned cols, float inv_t) {
    const unsigned r = blockIdx.x;
    if (r >= rows) return;
    Online st = online_new();
    float bad = 0.0f;
    for_each_src(logits + (size_t)r * cols, cols, [&](unsigned, float z) {
        if (is_bad(z)) {
            bad = 1.0f;
        } else if (!is_neg_inf(z)) {
            online_push(st, z * inv_t);
        }
    });
    const float any_bad = block_max(bad);
    const float2 res = online_finish(st);
    if (threadIdx.x == 0) {
        lse[r] = any_bad > 0.0f ? NAN_F : res.x;
        entropy[r] = any_bad > 0.0f ? NAN_F : res.y;
    }
}
