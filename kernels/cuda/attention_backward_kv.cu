// Backward of causal grouped-query attention (attention.cu) for the KV cache, one block per
// (cache row j, kv head g): grid kv_rows·(n_heads/group) × WG. Over the pairs (query row
// i, head h of group g) that see row j (start_pos + i ≥ j), with p = e^{scale·q_ih·k_j −
// lse_ih} and lse_ih, δ_ih from attention_backward_query's stats:
//   dv_j = Σ p·dout_ih,   dk_j = scale·Σ p·(dout_ih·v_j − δ_ih)·q_ih
// Cache rows no query sees (j ≥ start_pos + q_rows) get zeros. The pairs are visited in
// tiles of WG, one thread per pair computing p and ds = p·(dout·v_j − δ) as serial dot
// products against the k_j and v_j rows staged in shared memory; then thread d
// accumulates dk[d] and dv[d] over the tile (head_dim ≤ WG).

// row · sh over head_dim, in order of d (the float4 path adds in the same order); a
// function as in attention_backward_query.cu, where a lambda made ptxas spill on sm_80.
__device__ __forceinline__ float abkv_dot(const float* row, const float* sh, unsigned head_dim, bool vec) {
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
    attention_backward_kv(const float* q, const float* k, const float* v, const float* dout, const float* stats,
                          float* dk, float* dv, unsigned q_rows, unsigned n_heads, unsigned group, unsigned head_dim,
                          unsigned kv_dim, unsigned start_pos, float scale, unsigned kv_rows) {
    __shared__ __align__(16) float k_row[WG];
    __shared__ __align__(16) float v_row[WG];
    __shared__ float ps[WG];
    __shared__ float dss[WG];
    const unsigned n_kv = n_heads / group;
    const unsigned blk = blockIdx.x, tid = threadIdx.x;
    if (blk >= kv_rows * n_kv) return;
    const unsigned j = blk / n_kv, g = blk % n_kv;
    const size_t kv_off = (size_t)j * kv_dim + g * head_dim;
    if (tid < head_dim) {
        k_row[tid] = k[kv_off + tid];
        v_row[tid] = v[kv_off + tid];
    }
    __syncthreads();
    // Query rows i0 .. q_rows see row j; each with the group's heads g·group ..
    const unsigned i0 = j > start_pos ? j - start_pos : 0;
    const unsigned n_pairs = i0 < q_rows ? (q_rows - i0) * group : 0;
    const bool vec = (head_dim & 3) == 0 && (((size_t)q | (size_t)dout) & 15) == 0;
    // Pair number → (i·n_heads + h), the row of q, dout and stats.
    auto pair_row = [&](unsigned pair) {
        return ((size_t)(i0 + pair / group)) * n_heads + g * group + pair % group;
    };

    float acc_k = 0.0f, acc_v = 0.0f;
    for (unsigned tile = 0; tile < n_pairs; tile += WG) {
        const unsigned pair = tile + tid;
        float p = 0.0f, g_s = 0.0f;
        if (pair < n_pairs) {
            const size_t row = pair_row(pair);
            const float lse = stats[row * 2], delta = stats[row * 2 + 1];
            p = expf(abkv_dot(q + row * head_dim, k_row, head_dim, vec) * scale - lse);
            g_s = p * (abkv_dot(dout + row * head_dim, v_row, head_dim, vec) - delta);
        }
        ps[tid] = p;
        dss[tid] = g_s;
        __syncthreads();
        if (tid < head_dim) {
            const unsigned np = min((unsigned)WG, n_pairs - tile);
            // pair_row without a division per pair: h steps through the group, then i.
            size_t row = pair_row(tile);
            unsigned hh = tile % group;
            for (unsigned pp = 0; pp < np; pp++) {
                const size_t off = row * head_dim + tid;
                acc_v += ps[pp] * dout[off];
                acc_k += dss[pp] * q[off];
                if (++hh < group) {
                    row++;
                } else {
                    hh = 0;
                    row += n_heads - group + 1;
                }
            }
        }
        // The next tile overwrites ps and dss.
        __syncthreads();
    }
    if (tid < head_dim) {
        dk[kv_off + tid] = scale * acc_k;
        dv[kv_off + tid] = acc_v;
    }
}
