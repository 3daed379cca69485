// Log-probability of each row's target token under softmax(z/T), the forward of the
// policy gradient: out[r] = z[r, targets[r]]·inv_t − lse[r], with lse from softmax_entropy.
// One thread per row: grid ⌈rows/WG⌉ × WG. The host checks targets[r] < cols.
//
// z·inv_t − lse is one fmaf: the exact product, rounded once. With a huge logit the two
// terms are close (lse ≈ x_max), and rounding z·inv_t first would lose the difference's
// digits (the CPU backend computes it in f64). A masked target gives −inf, also in a
// fully masked row (lse = −inf, where the subtraction would give NaN).

extern "C" __global__ void __launch_bounds__(WG)
    token_logprobs(const src_t* logits, const float* lse, const unsigned* targets, float* out, unsigned rows,
                   unsigned cols, float inv_t) {
    const unsigned r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const float z = load_src(logits, (size_t)r * cols + targets[r]);
    out[r] = is_neg_inf(z) ? NEG_INF : fmaf(z, inv_t, -lse[r]);
}
