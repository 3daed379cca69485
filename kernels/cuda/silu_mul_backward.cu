// Backward of out = silu(gate)·up with s = sigmoid(gate):
// d_gate = dy·up·s·(1 + gate·(1 − s)), d_up = dy·gate·s. Grid ⌈n/WG⌉ × WG.

extern "C" __global__ void __launch_bounds__(WG)
    silu_mul_backward(const float* gate, const float* up, const float* dy, float* d_gate, float* d_up, unsigned n) {
    const size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    const float g = gate[e], d = dy[e];
    const float s = 1.0f / (1.0f + expf(-g));
    d_gate[e] = d * up[e] * s * (1.0f + g * (1.0f - s));
    d_up[e] = d * g * s;
}
