// Set the listed columns of every row to −inf (tokens that must never be chosen).
// One thread per (row, id): grid ⌈rows·n_ids/WG⌉ × WG. The host checks ids < cols.

extern "C" __global__ void __launch_bounds__(WG)
    mask_columns(float* x, const unsigned* ids, unsigned rows, unsigned cols, unsigned n_ids) {
    const size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)rows * n_ids) return;
    x[(e / n_ids) * cols + ids[e % n_ids]] = NEG_INF;
}
