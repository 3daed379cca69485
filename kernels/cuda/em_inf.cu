// The whole EM-INF loop for one row in one block (docs/methods.md, "EM-INF"): Adam on z′
// minimising H(softmax(z′)) + λ·KL(softmax(z) ‖ softmax(z′)), at most max_steps steps,
// stopping once H < threshold. z′ lives in z, the Adam moments in moments (m then v per
// row), the logits (any dtype) stay untouched. Grid rows × ROW_WG.
//
// ∂/∂z′_i = −q_i (z′_i − Σ q z′) + λ (q_i − p_i), Σ q z′ = lse − H. Each step is one pass:
// gradient and update per element, feeding the online entropy of the new z′.

extern "C" __global__ void __launch_bounds__(ROW_WG, 1)
    em_inf(const src_t* logits, float* z, float* moments, float* stats, unsigned rows, unsigned cols,
           float threshold, float lr, unsigned max_steps, float kl_weight, float beta1, float beta2, float eps) {
    const unsigned r = blockIdx.x;
    if (r >= rows) return;
    const size_t base = (size_t)r * cols;
    const src_t* z0 = logits + base;
    float* zr = z + base;
    float* mr = moments + 2 * base;
    float* vr = mr + cols;

    Online st = online_new();
    float bad = 0.0f;
    for_each_src(z0, cols, [&](unsigned c, float x) {
        zr[c] = x;
        mr[c] = 0.0f;
        vr[c] = 0.0f;
        if (is_bad(x)) {
            bad = 1.0f;
        } else if (!is_neg_inf(x)) {
            online_push(st, x);
        }
    });
    // The reductions' barriers also publish the writes above to the other threads,
    // which own different columns in the loop below.
    const float any_bad = block_max(bad);
    const float2 start = online_finish(st);
    const float lse0 = start.x;
    float lse = start.x, h = start.y;
    unsigned steps = 0;
    if (any_bad == 0.0f && !is_neg_inf(lse0)) {
        // h comes from a block reduction: every thread takes the same number of steps.
        while (steps < max_steps && h >= threshold) {
            steps++;
            const float t = (float)steps;
            const float step = lr / (1.0f - powf(beta1, t));
            const float inv_sqrt_bc2 = 1.0f / sqrtf(1.0f - powf(beta2, t));
            const float mean = lse - h;
            st = online_new();
            for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) {
                float x = zr[c];
                // Masked entries keep x = −inf and zero moments.
                if (is_neg_inf(x)) continue;
                const float q = expf(x - lse);
                float g = 0.0f;
                if (q > 0.0f) g = -q * (x - mean) + kl_weight * (q - expf(load_src(z0, c) - lse0));
                const float m = beta1 * mr[c] + (1.0f - beta1) * g;
                const float v = beta2 * vr[c] + (1.0f - beta2) * g * g;
                mr[c] = m;
                vr[c] = v;
                x -= step * m / (sqrtf(v) * inv_sqrt_bc2 + eps);
                zr[c] = x;
                online_push(st, x);
            }
            const float2 res = online_finish(st);
            lse = res.x;
            h = res.y;
        }
    }
    if (threadIdx.x == 0) {
        float* out = stats + 3 * (size_t)r;
        out[0] = (float)steps;
        out[1] = any_bad > 0.0f ? NAN_F : start.y;
        out[2] = h;
    }
}
