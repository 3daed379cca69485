// Prepended by the host to every entmin CUDA kernel (NVRTC: no includes, builtin types
// only). Port of kernels/wgsl/common.wgsl, online.wgsl and the reductions.
//
// −inf is a sentinel: masked logits are recognised by their bit pattern and skipped,
// running maxima start at LOWEST, never at −inf, as in the WGSL kernels.

#define WG 256
// Row kernels run one block of ROW_WG per row, declared __launch_bounds__(ROW_WG, 1):
// without the minimum of 1 block per SM, ptxas may cap them at 32 registers and spill.
#define ROW_WG 1024

// INFINITY / NAN are not defined under NVRTC.
#define NEG_INF __int_as_float(0xff800000)
#define POS_INF __int_as_float(0x7f800000)
#define NAN_F __int_as_float(0x7fc00000)
#define LOWEST (-3.402823466e38f)

__device__ __forceinline__ bool is_neg_inf(float x) {
    return __float_as_uint(x) == 0xff800000u;
}

// NaN or +inf, on the bits.
__device__ __forceinline__ bool is_bad(float x) {
    const unsigned b = __float_as_uint(x);
    return (b & 0x7fffffffu) >= 0x7f800000u && b != 0xff800000u;
}

// ---------------------------------------------------------------------------------
// Storage dtype of the tensor a kernel reads through load_src (its first pointer).

#if defined(ENTMIN_F32) + defined(ENTMIN_F16) + defined(ENTMIN_BF16) > 1
#error "define at most one of ENTMIN_F32, ENTMIN_F16, ENTMIN_BF16"
#endif

#if defined(ENTMIN_F16) || defined(ENTMIN_BF16)
typedef unsigned short src_t;

__device__ __forceinline__ float widen(unsigned short h) {
#if defined(ENTMIN_F16)
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#else
    return __uint_as_float((unsigned)h << 16);
#endif
}

__device__ __forceinline__ float load_src(const src_t* p, size_t i) {
    return widen(p[i]);
}
#else
typedef float src_t;

__device__ __forceinline__ float load_src(const src_t* p, size_t i) {
    return p[i];
}
#endif

// Elements per 16-byte load: 4 f32 or 8 16-bit values.
#define VEC (16 / (int)sizeof(src_t))

// VEC elements from a 16-byte aligned address, widened to f32.
__device__ __forceinline__ void load_vec(const src_t* p, float* out) {
    const uint4 u = *reinterpret_cast<const uint4*>(p);
#if defined(ENTMIN_F16) || defined(ENTMIN_BF16)
    const unsigned w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        // Element 2i is in the low half (little endian).
        out[2 * i] = widen((unsigned short)(w[i] & 0xffffu));
        out[2 * i + 1] = widen((unsigned short)(w[i] >> 16));
    }
#else
    out[0] = __uint_as_float(u.x);
    out[1] = __uint_as_float(u.y);
    out[2] = __uint_as_float(u.z);
    out[3] = __uint_as_float(u.w);
#endif
}

// Calls f(c, row[c]) for this thread's share of row[0, cols): a scalar head up to the
// first 16-byte boundary, then one 16-byte load per VEC elements, then a scalar tail.
// Each thread sees its columns in increasing order (first-index ties rely on it).
template <typename F>
__device__ __forceinline__ void for_each_src(const src_t* row, unsigned cols, F f) {
    const unsigned tid = threadIdx.x, nt = blockDim.x;
    unsigned head = (unsigned)((16 - ((size_t)row & 15)) & 15) / (unsigned)sizeof(src_t);
    head = min(head, cols);
    if (tid < head) f(tid, load_src(row, tid));
    const unsigned nvec = (cols - head) / VEC;
    for (unsigned i = tid; i < nvec; i += nt) {
        float x[VEC];
        const unsigned c0 = head + i * VEC;
        load_vec(row + c0, x);
#pragma unroll
        for (int e = 0; e < VEC; e++) f(c0 + e, x[e]);
    }
    for (unsigned c = head + nvec * VEC + tid; c < cols; c += nt) f(c, load_src(row, c));
}

// ---------------------------------------------------------------------------------
// Reductions. block_* return the result to every thread, for any blockDim that is a
// multiple of 32 (≤ 1024). Every thread of the block must call them (barriers).

// Butterfly reduction over the 32 lanes of a warp; every lane gets the result.
template <typename T, typename Op>
__device__ __forceinline__ T warp_reduce(T x, Op op) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x = op(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

struct SumOp {
    template <typename T>
    __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
    __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct MinOp {
    __device__ __forceinline__ unsigned operator()(unsigned a, unsigned b) const { return min(a, b); }
};

__device__ __forceinline__ float warp_sum(float x) {
    return warp_reduce(x, SumOp());
}

// Warp results go through shared memory and every warp reduces all of them, so no
// third barrier is needed to broadcast. The leading barrier keeps a call from
// overwriting slots that a previous call's warps are still reading.
#define BLOCK_REDUCE(NAME, T, OP, PAD)                           \
    __device__ __forceinline__ T NAME(T x) {                     \
        __shared__ T part[32];                                   \
        const unsigned lane = threadIdx.x & 31;                  \
        x = warp_reduce(x, OP());                                \
        __syncthreads();                                         \
        if (lane == 0) part[threadIdx.x >> 5] = x;               \
        __syncthreads();                                         \
        x = lane < (blockDim.x >> 5) ? part[lane] : (PAD);       \
        return warp_reduce(x, OP());                             \
    }

// Max and min pad with part[0], which leaves the result unchanged.
BLOCK_REDUCE(block_sum, float, SumOp, 0.0f)
BLOCK_REDUCE(block_max, float, MaxOp, part[0])
BLOCK_REDUCE(block_sum_u32, unsigned, SumOp, 0u)
BLOCK_REDUCE(block_min_u32, unsigned, MinOp, part[0])

// ---------------------------------------------------------------------------------
// Online softmax-entropy of one thread's share of a row (docs/methods.md,
// "Online softmax-entropy"):
// running max m, s = Σ e^{x−m}, t = Σ e^{x−m}(x−m); lse = m + log s, H = log s − t/s.
// Callers skip masked values, so every pushed x is finite.

struct Online {
    float m, s, t;
};

__device__ __forceinline__ Online online_new() {
    Online o;
    o.m = LOWEST;
    o.s = 0.0f;
    o.t = 0.0f;
    return o;
}

__device__ __forceinline__ void online_push(Online& o, float x) {
    if (o.s == 0.0f) {
        o.m = x;
    } else if (x > o.m) {
        const float d = o.m - x;
        const float c = expf(d);
        o.t = c * (o.t + d * o.s);
        o.s = c * o.s;
        o.m = x;
    }
    const float d = x - o.m;
    const float e = expf(d);
    o.s += e;
    o.t += e * d;
}

// (lse, H) of the whole block's row, the same in every thread. Nothing pushed (all
// masked, or empty) gives lse = −inf and H = 0.
__device__ __forceinline__ float2 online_finish(Online o) {
    const float m = block_max(o.s > 0.0f ? o.m : LOWEST);
    float s = 0.0f, t = 0.0f;
    if (o.s > 0.0f) {
        const float d = o.m - m;
        const float c = expf(d);
        s = c * o.s;
        t = c * (o.t + d * o.s);
    }
    const float s_total = block_sum(s);
    const float t_total = block_sum(t);
    if (s_total == 0.0f) return make_float2(NEG_INF, 0.0f);
    const float log_s = logf(s_total);
    const float h = log_s - t_total / s_total;
    // Rounding can leave a tiny negative H on one-hot rows; NaN stays NaN.
    return make_float2(m + log_s, h < 0.0f ? 0.0f : h);
}
