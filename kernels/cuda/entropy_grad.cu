// ∂H/∂z of H(softmax(z/T)), scaled by the row's upstream gradient:
// −(1/T)·p_i·(x_i − Σ p x) with x = z/T and Σ p x = lse − H from the forward pass.
// With has_logp = 1 it is the policy gradient: it also adds the log-probability term of
// the row's target token, d_logp[r]·(1/T)·(1[i = targets[r]] − p_i) (targets and d_logp
// are not read otherwise). Masked logits (a masked target included) and fully masked rows
// get a zero gradient. Grid ⌈rows·cols/WG⌉ × WG.

extern "C" __global__ void __launch_bounds__(WG)
    entropy_grad(const src_t* logits, const float* lse, const float* entropy, const float* upstream,
                 const unsigned* targets, const float* d_logp, float* grad, unsigned rows, unsigned cols, float inv_t,
                 unsigned has_logp) {
    const size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)rows * cols) return;
    const size_t r = e / cols;
    const float l = lse[r];
    const float z = load_src(logits, e);
    float g = 0.0f;
    if (!is_neg_inf(l) && !is_neg_inf(z)) {
        const float x = z * inv_t;
        const float prob = expf(x - l);
        // As the CPU backend: the p terms where p > 0 (not NaN, not underflowed), then the
        // target's own term.
        const float dl = has_logp ? d_logp[r] : 0.0f;
        if (prob > 0.0f) {
            g = -inv_t * upstream[r] * prob * (x - (l - entropy[r]));
            if (has_logp) g -= inv_t * dl * prob;
        }
        if (has_logp && e - r * cols == targets[r]) g += inv_t * dl;
    }
    grad[e] = g;
}
