// ∂H/∂z of H(softmax(z/T)), scaled by the row's upstream gradient:
// −(1/T)·p_i·(x_i − Σ p x) with x = z/T and Σ p x = lse − H from the forward pass.
// Masked logits and fully masked rows get a zero gradient. Grid ⌈rows·cols/WG⌉ × WG.

extern "C" __global__ void __launch_bounds__(WG)
    entropy_grad(const src_t* logits, const float* lse, const float* entropy, const float* upstream,
                 float* grad, unsigned rows, unsigned cols, float inv_t) {
    const size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)rows * cols) return;
    const size_t r = e / cols;
    const float l = lse[r];
    const float z = load_src(logits, e);
    float g = 0.0f;
    if (!is_neg_inf(l) && !is_neg_inf(z)) {
        const float x = z * inv_t;
        const float prob = expf(x - l);
        if (prob > 0.0f) g = -inv_t * upstream[r] * prob * (x - (l - entropy[r]));
    }
    grad[e] = g;
}
