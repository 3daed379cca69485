// Token sampling, one block of ROW_WG threads per row of logits (any dtype): grid rows × ROW_WG.
// Filters: banned ids (a bit mask), temperature, top-k, top-p, min-p; then an inverse CDF
// draw in id order with the row's uniform u, drawn by the host from the row's generator
// (so a seed reproduces a generation on every backend).
//
// No sort: top-k and top-p become thresholds on the logit, found by bisection on the
// order-preserving integer key of the float (32 counting passes each, exact).
// out[row] = (status: 0 ok / 1 NaN or +inf / 2 nothing to sample, token, log-prob bits,
// entropy bits): log-prob and entropy of softmax(z/T) over the unbanned tokens, before the
// other filters (T = 1 when greedy); the entropy comes free with the log-sum-exp.

// Order-preserving map of finite floats to u32.
__device__ __forceinline__ unsigned key(float x) {
    const unsigned b = __float_as_uint(x);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

extern "C" __global__ void __launch_bounds__(ROW_WG, 1)
    sample(const src_t* logits, const unsigned* banned_bits, const float* uniforms, unsigned* out, unsigned rows,
           unsigned cols, float inv_t, unsigned greedy, unsigned top_k, float top_p, float min_p,
           unsigned has_banned) {
    __shared__ float chunk_mass[ROW_WG];
    __shared__ unsigned chosen_chunk;
    __shared__ float chosen_rest;
    const unsigned r = blockIdx.x, tid = threadIdx.x, nt = blockDim.x;
    if (r >= rows) return;
    const src_t* row = logits + (size_t)r * cols;
    unsigned* o = out + 4 * (size_t)r;

    // The scaled logit of column c, or LOWEST when it is masked, NaN/+inf or banned.
    auto scaled = [&](unsigned c, float z) {
        if (is_neg_inf(z) || is_bad(z)) return LOWEST;
        if (has_banned && ((banned_bits[c >> 5] >> (c & 31)) & 1u)) return LOWEST;
        return z * inv_t;
    };

    Online st = online_new();
    float bad = 0.0f, best_x = LOWEST;
    unsigned best_c = cols;
    for_each_src(row, cols, [&](unsigned c, float z) {
        if (is_bad(z)) bad = 1.0f;
        const float x = scaled(c, z);
        if (x > LOWEST) {
            online_push(st, x);
            if (x > best_x) {
                best_x = x;
                best_c = c;
            }
        }
    });
    const float any_bad = block_max(bad);
    const float2 lse_h = online_finish(st);
    const float lse = lse_h.x;
    const float m = block_max(best_x);
    // Lowest column holding the maximum: the argmax, first on ties.
    const unsigned argmax = block_min_u32(best_x == m ? best_c : cols);
    if (any_bad > 0.0f || is_neg_inf(lse) || greedy) {
        if (tid == 0) {
            const unsigned status = any_bad > 0.0f ? 1u : is_neg_inf(lse) ? 2u : 0u;
            o[0] = status;
            o[1] = status == 0 ? argmax : 0u;
            o[2] = status == 0 ? __float_as_uint(m - lse) : 0u;
            o[3] = status == 0 ? __float_as_uint(lse_h.y) : 0u;
        }
        return;
    }

    // Tokens with key ≥ k: their count, or their mass Σ e^{x − m}.
    auto count_above = [&](unsigned k) {
        unsigned n = 0;
        for_each_src(row, cols, [&](unsigned c, float z) {
            const float x = scaled(c, z);
            if (x > LOWEST && key(x) >= k) n++;
        });
        return block_sum_u32(n);
    };
    auto mass_above = [&](unsigned k) {
        float s = 0.0f;
        for_each_src(row, cols, [&](unsigned c, float z) {
            const float x = scaled(c, z);
            if (x > LOWEST && key(x) >= k) s += expf(x - m);
        });
        return block_sum(s);
    };
    // Threshold key: every kept token has key(x) ≥ floor_key. The bisections' bounds come
    // from block reductions, so every thread runs the same passes.
    unsigned floor_key = 0;
    if (top_k > 0) {
        // Largest k with count(key ≥ k) ≥ top_k.
        unsigned lo = 0, hi = 0xffffffffu;
        while (lo < hi) {
            const unsigned mid = lo + (hi - lo) / 2 + 1;
            if (count_above(mid) >= top_k) lo = mid;
            else hi = mid - 1;
        }
        floor_key = lo;
    }
    if (top_p < 1.0f) {
        // Largest k whose head {key ≥ k} holds top_p of the candidates' mass.
        const float want = top_p * mass_above(floor_key);
        unsigned lo = floor_key, hi = 0xffffffffu;
        while (lo < hi) {
            const unsigned mid = lo + (hi - lo) / 2 + 1;
            if (mass_above(mid) >= want) lo = mid;
            else hi = mid - 1;
        }
        floor_key = lo;
    }
    // min-p: e^{x−m} ≥ min_p, i.e. x ≥ m + ln(min_p).
    const float min_x = min_p > 0.0f ? m + logf(min_p) : LOWEST;
    auto kept = [&](float x) { return x > LOWEST && key(x) >= floor_key && x >= min_x; };

    // Inverse CDF in id order: contiguous chunks, chunk masses scanned by one thread,
    // then the chosen chunk walked by its owner.
    const unsigned chunk = (cols + nt - 1) / nt;
    const unsigned c0 = min(tid * chunk, cols), c1 = min(c0 + chunk, cols);
    float mass = 0.0f;
    for (unsigned c = c0; c < c1; c++) {
        const float x = scaled(c, load_src(row, c));
        if (kept(x)) mass += expf(x - m);
    }
    chunk_mass[tid] = mass;
    __syncthreads();
    if (tid == 0) {
        float total = 0.0f;
        for (unsigned j = 0; j < nt; j++) total += chunk_mass[j];
        float target = uniforms[r] * total;
        unsigned pick = nt, last = 0;
        for (unsigned j = 0; j < nt; j++) {
            if (chunk_mass[j] > 0.0f) {
                last = j;
                if (pick == nt) {
                    if (target < chunk_mass[j]) pick = j;
                    else target -= chunk_mass[j];
                }
            }
        }
        if (pick == nt) {
            // Rounding left u just above the total: the last kept token.
            pick = last;
            target = chunk_mass[last];
        }
        chosen_chunk = pick;
        chosen_rest = target;
    }
    __syncthreads();
    if (tid == chosen_chunk) {
        float acc = 0.0f;
        unsigned token = c0;
        for (unsigned c = c0; c < c1; c++) {
            const float x = scaled(c, load_src(row, c));
            if (kept(x)) {
                acc += expf(x - m);
                token = c;
                if (chosen_rest < acc) break;
            }
        }
        o[0] = 0u;
        o[1] = token;
        o[2] = __float_as_uint(scaled(token, load_src(row, token)) - lse);
        o[3] = __float_as_uint(lse_h.y);
    }
}
