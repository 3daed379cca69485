// Backward of out = x·s·w with s = 1/sqrt(mean(x²) + eps) per row, one block of ROW_WG
// threads per row: grid rows × ROW_WG.
//   dx = s·w⊙dy − x·s³·Σ_c(w_c·dy_c·x_c)/cols,   dw_rows[r, c] = dy·x·s
// The host sums dw_rows over the rows into the weight's gradient (matmul_strided).

extern "C" __global__ void __launch_bounds__(ROW_WG, 1)
    rms_norm_backward(const float* x, const float* w, const float* dy, float* dx, float* dw_rows, unsigned rows,
                      unsigned cols, float eps) {
    if (blockIdx.x >= rows) return;
    const size_t base = (size_t)blockIdx.x * cols;
    float squares = 0.0f, dot = 0.0f;
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) {
        const float v = x[base + c];
        squares += v * v;
        dot += w[c] * dy[base + c] * v;
    }
    const float s = 1.0f / sqrtf(block_sum(squares) / (float)cols + eps);
    const float coef = s * s * s * (block_sum(dot) / (float)cols);
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) {
        const float v = x[base + c], d = dy[base + c];
        dx[base + c] = s * w[c] * d - v * coef;
        dw_rows[base + c] = d * v * s;
    }
}
