// Backward of the embedding gather: d_table[ids[t], :] += dy[t, :] for t = 0, 1, … in
// order, so repeated ids accumulate deterministically and without atomics: thread c owns
// column c of every table row. Grid ⌈dim/WG⌉ × WG. The host checks ids < rows.

extern "C" __global__ void __launch_bounds__(WG)
    embedding_backward(const unsigned* ids, const float* dy, float* d_table, unsigned dim, unsigned n_ids) {
    const unsigned c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= dim) return;
    for (unsigned t = 0; t < n_ids; t++) d_table[(size_t)ids[t] * dim + c] += dy[(size_t)t * dim + c];
}
