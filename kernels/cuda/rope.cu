// Rotary embedding in place, Hugging Face rotate-half layout: element i of a head pairs
// with element i + head_dim/2. cos_sin is [rows, head_dim/2] (cos, sin) pairs computed
// by the host in f64. One thread per pair: grid ⌈rows·cols/2/WG⌉ × WG.

extern "C" __global__ void __launch_bounds__(WG)
    rope(float* x, const float* cos_sin, unsigned rows, unsigned cols, unsigned head_dim) {
    const size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const unsigned pairs_per_row = cols / 2;
    if (e >= (size_t)rows * pairs_per_row) return;
    const unsigned half = head_dim / 2;
    const size_t row = e / pairs_per_row;
    const unsigned p = (unsigned)(e - row * pairs_per_row);
    const unsigned head = p / half, i = p - head * half;
    const size_t lo = row * cols + head * head_dim + i, hi = lo + half;
    const float2 cs = reinterpret_cast<const float2*>(cos_sin)[row * half + i];
    const float a = x[lo], b = x[hi];
    x[lo] = a * cs.x - b * cs.y;
    x[hi] = b * cs.x + a * cs.y;
}
