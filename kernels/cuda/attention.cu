// Causal grouped-query attention over the KV cache ([capacity, kv_dim] f32 each), one block
// per (query row, head): grid q_rows·n_heads × WG. Keys are visited in tiles of WG with an
// online softmax (running max and sum); thread d accumulates output dim d (head_dim ≤ WG).

extern "C" __global__ void __launch_bounds__(WG)
    attention(const float* q, const float* k, const float* v, float* out, unsigned q_rows, unsigned n_heads,
              unsigned group, unsigned head_dim, unsigned kv_dim, unsigned start_pos, float scale) {
    __shared__ __align__(16) float q_row[WG];
    __shared__ float probs[WG];
    const unsigned g = blockIdx.x, tid = threadIdx.x;
    if (g >= q_rows * n_heads) return;
    const unsigned i = g / n_heads, h = g % n_heads;
    const size_t q_off = ((size_t)i * n_heads + h) * head_dim;
    const unsigned kv_off = (h / group) * head_dim;
    if (tid < head_dim) q_row[tid] = q[q_off + tid];
    __syncthreads();
    // Query i sits at position start_pos + i and sees keys 0 ..= start_pos + i.
    const unsigned n_keys = start_pos + i + 1;
    const bool vec = ((head_dim | kv_dim) & 3) == 0 && ((size_t)k & 15) == 0;
    float m = LOWEST, l = 0.0f, acc = 0.0f;
    for (unsigned tile = 0; tile < n_keys; tile += WG) {
        const unsigned j = tile + tid;
        float score = LOWEST;
        if (j < n_keys) {
            const float* kr = k + (size_t)j * kv_dim + kv_off;
            float dot = 0.0f;
            if (vec) {
                for (unsigned d = 0; d < head_dim; d += 4) {
                    const float4 kk = *reinterpret_cast<const float4*>(kr + d);
                    const float4 qq = *reinterpret_cast<const float4*>(q_row + d);
                    dot += qq.x * kk.x;
                    dot += qq.y * kk.y;
                    dot += qq.z * kk.z;
                    dot += qq.w * kk.w;
                }
            } else {
                for (unsigned d = 0; d < head_dim; d++) dot += q_row[d] * kr[d];
            }
            score = dot * scale;
        }
        const float m_new = fmaxf(m, block_max(score));
        const float p = j < n_keys ? expf(score - m_new) : 0.0f;
        probs[tid] = p;
        // block_sum's barriers also make probs visible to every thread.
        const float tile_sum = block_sum(p);
        const float correction = expf(m - m_new);
        l = l * correction + tile_sum;
        if (tid < head_dim) {
            const unsigned nk = min((unsigned)WG, n_keys - tile);
            const float* vc = v + (size_t)tile * kv_dim + kv_off + tid;
            float o = 0.0f;
            for (unsigned jj = 0; jj < nk; jj++) o += probs[jj] * vc[(size_t)jj * kv_dim];
            acc = acc * correction + o;
        }
        m = m_new;
        // The next tile overwrites probs.
        __syncthreads();
    }
    if (tid < head_dim) out[q_off + tid] = acc / l;
}
