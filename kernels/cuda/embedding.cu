// Gather rows of the table (any dtype) for token ids into f32: out[i, :] = table[ids[i], :].
// One thread per output element: grid ⌈n_ids·dim/WG⌉ × WG. The host checks ids < rows.

extern "C" __global__ void __launch_bounds__(WG)
    embedding(const src_t* table, const unsigned* ids, float* out, unsigned dim, unsigned n_ids) {
    const size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)n_ids * dim) return;
    const size_t i = e / dim;
    out[e] = load_src(table, (size_t)ids[i] * dim + (e - i * dim));
}
