// Backward of causal grouped-query attention (attention.cu) for the queries, one block per
// (query row i, head h): grid q_rows·n_heads × WG. With p_j = softmax_j(scale·q·k_j) over
// the keys j ≤ start_pos + i and dp_j = dout·v_j:
//   stats[(i·n_heads + h)·2] = lse of the scaled scores, stats[… + 1] = δ = Σ_j p_j·dp_j,
//   dq = scale·Σ_j p_j·(dp_j − δ)·k_j
// (attention_backward_kv reads stats for dk and dv). Keys are visited in tiles of WG,
// one thread per key computing its score and dp_j as serial dot products against the q
// and dout rows staged in shared memory. Pass 1 keeps an online max, Σ e^{s−m} and
// Σ e^{s−m}·dp (uniform across the block, from block reductions); pass 2 recomputes the
// scores with the exact p_j = e^{s_j − lse} and thread d accumulates dq[d] (head_dim ≤ WG).
// Shared memory is fixed for any context length.

// row · sh over head_dim, in order of d (the float4 path adds in the same order). A
// function, not a lambda in the kernel: the lambda made ptxas spill on sm_80.
__device__ __forceinline__ float abq_dot(const float* row, const float* sh, unsigned head_dim, bool vec) {
    float acc = 0.0f;
    if (vec) {
        for (unsigned d = 0; d < head_dim; d += 4) {
            const float4 r4 = *reinterpret_cast<const float4*>(row + d);
            const float4 s4 = *reinterpret_cast<const float4*>(sh + d);
            acc += r4.x * s4.x;
            acc += r4.y * s4.y;
            acc += r4.z * s4.z;
            acc += r4.w * s4.w;
        }
    } else {
        for (unsigned d = 0; d < head_dim; d++) acc += row[d] * sh[d];
    }
    return acc;
}

extern "C" __global__ void __launch_bounds__(WG)
    attention_backward_query(const float* q, const float* k, const float* v, const float* dout, float* dq,
                             float* stats, unsigned q_rows, unsigned n_heads, unsigned group, unsigned head_dim,
                             unsigned kv_dim, unsigned start_pos, float scale) {
    __shared__ __align__(16) float q_row[WG];
    __shared__ __align__(16) float do_row[WG];
    __shared__ float ds[WG];
    const unsigned blk = blockIdx.x, tid = threadIdx.x;
    if (blk >= q_rows * n_heads) return;
    const unsigned i = blk / n_heads, h = blk % n_heads;
    const size_t q_off = ((size_t)i * n_heads + h) * head_dim;
    const unsigned kv_off = (h / group) * head_dim;
    if (tid < head_dim) {
        q_row[tid] = q[q_off + tid];
        do_row[tid] = dout[q_off + tid];
    }
    __syncthreads();
    const unsigned n_keys = start_pos + i + 1;
    const bool vec = ((head_dim | kv_dim) & 3) == 0 && (((size_t)k | (size_t)v) & 15) == 0;

    // Pass 1: lse and δ.
    float m = LOWEST, l = 0.0f, t = 0.0f;
    for (unsigned tile = 0; tile < n_keys; tile += WG) {
        const unsigned j = tile + tid;
        float score = LOWEST, dp = 0.0f;
        if (j < n_keys) {
            const size_t row = (size_t)j * kv_dim + kv_off;
            score = abq_dot(k + row, q_row, head_dim, vec) * scale;
            dp = abq_dot(v + row, do_row, head_dim, vec);
        }
        const float m_new = fmaxf(m, block_max(score));
        const float e = j < n_keys ? expf(score - m_new) : 0.0f;
        const float tile_l = block_sum(e);
        const float tile_t = block_sum(e * dp);
        const float correction = expf(m - m_new);
        l = l * correction + tile_l;
        t = t * correction + tile_t;
        m = m_new;
    }
    const float lse = m + logf(l), delta = t / l;
    if (tid == 0) {
        stats[(size_t)blk * 2] = lse;
        stats[(size_t)blk * 2 + 1] = delta;
    }

    // Pass 2: dq = scale·Σ_j ds_j·k_j with ds_j = p_j·(dp_j − δ).
    float acc = 0.0f;
    for (unsigned tile = 0; tile < n_keys; tile += WG) {
        const unsigned j = tile + tid;
        float g = 0.0f;
        if (j < n_keys) {
            const size_t row = (size_t)j * kv_dim + kv_off;
            const float p = expf(abq_dot(k + row, q_row, head_dim, vec) * scale - lse);
            g = p * (abq_dot(v + row, do_row, head_dim, vec) - delta);
        }
        ds[tid] = g;
        __syncthreads();
        if (tid < head_dim) {
            const unsigned nk = min((unsigned)WG, n_keys - tile);
            const float* kc = k + (size_t)tile * kv_dim + kv_off + tid;
            for (unsigned jj = 0; jj < nk; jj++) acc += ds[jj] * kc[(size_t)jj * kv_dim];
        }
        // The next tile overwrites ds.
        __syncthreads();
    }
    if (tid < head_dim) dq[q_off + tid] = scale * acc;
}
