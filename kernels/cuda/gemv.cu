// y[m, n] = x[m, k] · w[n, k]ᵀ + bias for m ≤ 8 rows of x (decoding), w of any dtype.
// One warp per output column, 8 columns per block: grid ⌈n/8⌉ × WG. Each weight is
// read once for all rows of x; lanes stride over k VEC elements at a time (a 16-byte
// load, or 8 elements of one block decoded with one scale lookup).

#define GEMV_MAX_ROWS 8

extern "C" __global__ void __launch_bounds__(WG)
    gemv(const src_t* w, const float* x, const float* bias, float* y, unsigned m, unsigned n, unsigned k,
         unsigned has_bias) {
    const unsigned lane = threadIdx.x & 31;
    const unsigned j = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    // Whole warps leave together, and nothing below synchronises the block.
    if (j >= n) return;
    const src_t* wr = src_row(w, j, k);
    float acc[GEMV_MAX_ROWS];
#pragma unroll
    for (int r = 0; r < GEMV_MAX_ROWS; r++) acc[r] = 0.0f;
    // Vector loads need every row of x on a 16-byte boundary, and of w on SRC_ALIGN;
    // else all scalar.
    const bool aligned = ((size_t)x & 15) == 0 && ((size_t)w & (SRC_ALIGN - 1)) == 0 && k % VEC == 0;
    const unsigned kv = aligned ? k : 0;
    for (unsigned c = lane * VEC; c < kv; c += 32 * VEC) {
        float wv[VEC];
        load_vec(wr, c, wv);
#pragma unroll
        for (int r = 0; r < GEMV_MAX_ROWS; r++) {
            if (r < m) {
                const float4* xr = reinterpret_cast<const float4*>(x + (size_t)r * k + c);
#pragma unroll
                for (int q = 0; q < VEC / 4; q++) {
                    const float4 xv = xr[q];
                    acc[r] += wv[4 * q] * xv.x;
                    acc[r] += wv[4 * q + 1] * xv.y;
                    acc[r] += wv[4 * q + 2] * xv.z;
                    acc[r] += wv[4 * q + 3] * xv.w;
                }
            }
        }
    }
    for (unsigned c = kv + lane; c < k; c += 32) {
        const float wv = load_src(wr, c);
#pragma unroll
        for (int r = 0; r < GEMV_MAX_ROWS; r++)
            if (r < m) acc[r] += wv * x[(size_t)r * k + c];
    }
#pragma unroll
    for (int r = 0; r < GEMV_MAX_ROWS; r++)
        if (r < m) acc[r] = warp_sum(acc[r]);
    if (lane == 0) {
        const float b = has_bias ? bias[j] : 0.0f;
#pragma unroll
        for (int r = 0; r < GEMV_MAX_ROWS; r++)
            if (r < m) y[(size_t)r * n + j] = acc[r] + b;
    }
}
