// silu(gate) * up, elementwise. Grid ⌈n/WG⌉ × WG.

extern "C" __global__ void __launch_bounds__(WG)
    silu_mul(const float* gate, const float* up, float* out, unsigned n) {
    const size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    const float g = gate[e];
    out[e] = g / (1.0f + expf(-g)) * up[e];
}
