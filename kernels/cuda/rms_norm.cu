// out = x / rms(x) * w, one block of ROW_WG threads per row: grid rows × ROW_WG.

extern "C" __global__ void __launch_bounds__(ROW_WG, 1)
    rms_norm(const float* x, const float* w, float* out, unsigned rows, unsigned cols, float eps) {
    if (blockIdx.x >= rows) return;
    const size_t base = (size_t)blockIdx.x * cols;
    float squares = 0.0f;
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) {
        const float v = x[base + c];
        squares += v * v;
    }
    const float scale = 1.0f / sqrtf(block_sum(squares) / (float)cols + eps);
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) out[base + c] = x[base + c] * scale * w[c];
}
