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
// Storage dtype of the tensor a kernel reads through load_src (its first pointer): one of
// ENTMIN_F32 / F16 / BF16, or, for the weight-reading kernels (embedding, gemv, matmul),
// a ggml block format ENTMIN_Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 / Q4_K / Q5_K / Q6_K.

#if defined(ENTMIN_F32) + defined(ENTMIN_F16) + defined(ENTMIN_BF16) + defined(ENTMIN_Q4_0) + \
        defined(ENTMIN_Q4_1) + defined(ENTMIN_Q5_0) + defined(ENTMIN_Q5_1) + defined(ENTMIN_Q8_0) +  \
        defined(ENTMIN_Q4_K) + defined(ENTMIN_Q5_K) + defined(ENTMIN_Q6_K) >                          \
    1
#error "define at most one storage dtype"
#endif

// An IEEE half's bits to f32 (the F16 dtype and the blocks' scales).
__device__ __forceinline__ float f16_to_f32(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

#if defined(ENTMIN_Q4_0) || defined(ENTMIN_Q4_1) || defined(ENTMIN_Q5_0) || defined(ENTMIN_Q5_1) || \
    defined(ENTMIN_Q8_0) || defined(ENTMIN_Q4_K) || defined(ENTMIN_Q5_K) || defined(ENTMIN_Q6_K)
// Blocks exactly as a GGUF file stores them (little endian, back to back; a row is a
// whole number of blocks, which the host checks). Element j of a block is
// block_code(b, j) · a.x + a.y with a = block_affine(b, j); the affine pair is the same
// for every 8 consecutive elements starting at a multiple of 8 (a K-quant sub-block is
// 16 or 32 long), so load_vec decodes 8 with one lookup. Layouts and formulas follow the
// CPU's dequantisers (engine/src/quant), the reference the tests compare with.
#define SRC_BLOCKS 1
typedef unsigned char src_t;

// Block sizes and every f16 field offset are even: 2-byte loads are aligned.
__device__ __forceinline__ unsigned u16_at(const src_t* b, unsigned at) {
    return *reinterpret_cast<const unsigned short*>(b + at);
}
__device__ __forceinline__ float f16_at(const src_t* b, unsigned at) {
    return f16_to_f32((unsigned short)u16_at(b, at));
}
// Element j of a 32-element block whose 4-bit codes start at byte q: low nibbles hold
// elements 0..15, high nibbles 16..31.
__device__ __forceinline__ int nibble_of_32(const src_t* q, unsigned j) {
    return (q[j & 15] >> ((j >> 4) * 4)) & 15;
}
// The fifth bit of element j from the 32-bit qh field at byte h (2-byte aligned only).
__device__ __forceinline__ int fifth_bit(const src_t* b, unsigned h, unsigned j) {
    const unsigned qh = u16_at(b, h) | (u16_at(b, h + 2) << 16);
    return ((qh >> j) & 1) << 4;
}

#if defined(ENTMIN_Q4_0)
// block_q4_0 { f16 d; u8 qs[16] }: (nibble − 8) · d.
#define QK 32
#define BLOCK_BYTES 18
__device__ __forceinline__ int block_code(const src_t* b, unsigned j) { return nibble_of_32(b + 2, j) - 8; }
__device__ __forceinline__ float2 block_affine(const src_t* b, unsigned) { return make_float2(f16_at(b, 0), 0.0f); }
#elif defined(ENTMIN_Q4_1)
// block_q4_1 { f16 d; f16 m; u8 qs[16] }: nibble · d + m.
#define QK 32
#define BLOCK_BYTES 20
__device__ __forceinline__ int block_code(const src_t* b, unsigned j) { return nibble_of_32(b + 4, j); }
__device__ __forceinline__ float2 block_affine(const src_t* b, unsigned) {
    return make_float2(f16_at(b, 0), f16_at(b, 2));
}
#elif defined(ENTMIN_Q5_0)
// block_q5_0 { f16 d; u8 qh[4]; u8 qs[16] }: (q − 16) · d, q = nibble | fifth bit.
#define QK 32
#define BLOCK_BYTES 22
__device__ __forceinline__ int block_code(const src_t* b, unsigned j) {
    return (nibble_of_32(b + 6, j) | fifth_bit(b, 2, j)) - 16;
}
__device__ __forceinline__ float2 block_affine(const src_t* b, unsigned) { return make_float2(f16_at(b, 0), 0.0f); }
#elif defined(ENTMIN_Q5_1)
// block_q5_1 { f16 d; f16 m; u8 qh[4]; u8 qs[16] }: q · d + m.
#define QK 32
#define BLOCK_BYTES 24
__device__ __forceinline__ int block_code(const src_t* b, unsigned j) {
    return nibble_of_32(b + 8, j) | fifth_bit(b, 4, j);
}
__device__ __forceinline__ float2 block_affine(const src_t* b, unsigned) {
    return make_float2(f16_at(b, 0), f16_at(b, 2));
}
#elif defined(ENTMIN_Q8_0)
// block_q8_0 { f16 d; i8 qs[32] }: q · d.
#define QK 32
#define BLOCK_BYTES 34
__device__ __forceinline__ int block_code(const src_t* b, unsigned j) { return (signed char)b[2 + j]; }
__device__ __forceinline__ float2 block_affine(const src_t* b, unsigned) { return make_float2(f16_at(b, 0), 0.0f); }
#elif defined(ENTMIN_Q4_K) || defined(ENTMIN_Q5_K)
// block_q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128] } and block_q5_K, which adds
// u8 qh[32] before qs: eight sub-blocks of 32, d·sc·q − dmin·m with a 6-bit scale and
// min per sub-block. Each 64 elements share 32 code bytes, low nibbles for the first 32.
#define QK 256
#if defined(ENTMIN_Q4_K)
#define BLOCK_BYTES 144
#define K_CODES 16
#else
#define BLOCK_BYTES 176
#define K_CODES 48
#endif
__device__ __forceinline__ int block_code(const src_t* b, unsigned j) {
    const unsigned pair = j >> 6, hi = (j >> 5) & 1, l = j & 31;
    const int low = (b[K_CODES + 32 * pair + l] >> (4 * hi)) & 15;
#if defined(ENTMIN_Q5_K)
    // The fifth bit of element j is bit `sub` of qh[j mod 32].
    return low | (((b[16 + l] >> (j >> 5)) & 1) << 4);
#else
    return low;
#endif
}
// Sub-block s's 6-bit scale and min from the 12 packed bytes at byte 4 (ggml's
// get_scale_min_k4), as (d·sc, −dmin·m).
__device__ __forceinline__ float2 block_affine(const src_t* b, unsigned j) {
    const unsigned s = j >> 5;
    const src_t* p = b + 4;
    unsigned sc, m;
    if (s < 4) {
        sc = p[s] & 63;
        m = p[s + 4] & 63;
    } else {
        sc = (p[s + 4] & 15) | ((p[s - 4] >> 6) << 4);
        m = (p[s + 4] >> 4) | ((p[s] >> 6) << 4);
    }
    return make_float2(f16_at(b, 0) * (float)sc, -(f16_at(b, 2) * (float)m));
}
#elif defined(ENTMIN_Q6_K)
// block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }: two halves of 128, each
// four quarters of 32 sharing ql / qh bytes; d · scale · (q − 32), a scale per 16.
#define QK 256
#define BLOCK_BYTES 210
__device__ __forceinline__ int block_code(const src_t* b, unsigned j) {
    const unsigned half = j >> 7, quarter = (j >> 5) & 3, l = j & 31;
    const int low = (b[64 * half + l + 32 * (quarter & 1)] >> (4 * (quarter >> 1))) & 15;
    const int high = (b[128 + 32 * half + l] >> (2 * quarter)) & 3;
    return (low | (high << 4)) - 32;
}
__device__ __forceinline__ float2 block_affine(const src_t* b, unsigned j) {
    const unsigned half = j >> 7, quarter = (j >> 5) & 3, l = j & 31;
    const float scale = (float)(signed char)b[192 + 8 * half + l / 16 + 2 * quarter];
    return make_float2(f16_at(b, 208) * scale, 0.0f);
}
#endif

// Element i counted from p, a row or tensor start.
__device__ __forceinline__ float load_src(const src_t* p, size_t i) {
    const src_t* b = p + (i / QK) * BLOCK_BYTES;
    const unsigned j = (unsigned)(i % QK);
    const float2 a = block_affine(b, j);
    return (float)block_code(b, j) * a.x + a.y;
}

// Elements per load_vec: 8 share one block's affine pair.
#define VEC 8
// Byte loads: rows need no alignment.
#define SRC_ALIGN 1

// Elements c .. c + 8 of `row` (c a multiple of 8).
__device__ __forceinline__ void load_vec(const src_t* row, size_t c, float* out) {
    const src_t* b = row + (c / QK) * BLOCK_BYTES;
    const unsigned j = (unsigned)(c % QK);
    const float2 a = block_affine(b, j);
#pragma unroll
    for (unsigned e = 0; e < 8; e++) out[e] = (float)block_code(b, j + e) * a.x + a.y;
}

// Row `row` of a matrix of `cols` columns.
__device__ __forceinline__ const src_t* src_row(const src_t* p, size_t row, unsigned cols) {
    return p + row * (cols / QK) * BLOCK_BYTES;
}
#else
#if defined(ENTMIN_F16) || defined(ENTMIN_BF16)
typedef unsigned short src_t;

__device__ __forceinline__ float widen(unsigned short h) {
#if defined(ENTMIN_F16)
    return f16_to_f32(h);
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
// load_vec reads 16 bytes at once.
#define SRC_ALIGN 16

// VEC elements from c on, widened to f32; row + c must be on a 16-byte boundary.
__device__ __forceinline__ void load_vec(const src_t* row, size_t c, float* out) {
    const uint4 u = *reinterpret_cast<const uint4*>(row + c);
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

// Row `row` of a matrix of `cols` columns.
__device__ __forceinline__ const src_t* src_row(const src_t* p, size_t row, unsigned cols) {
    return p + row * cols;
}

// The row kernels that read logits through for_each_src never see blocks.
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
        load_vec(row, c0, x);
#pragma unroll
        for (int e = 0; e < VEC; e++) f(c0 + e, x[e]);
    }
    for (unsigned c = head + nvec * VEC + tid; c < cols; c += nt) f(c, load_src(row, c));
}
#endif

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

// The whole block's row, the same in every thread: lse, H, the row max m and log s =
// lse − m (exact, where lse − m would round). Nothing pushed (all masked, or empty) gives
// lse = −inf, H = 0, log s = 0 and m = LOWEST.
struct Finished {
    float lse, h, m, log_s;
};

__device__ __forceinline__ Finished online_finish_full(Online o) {
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
    if (s_total == 0.0f) return Finished{NEG_INF, 0.0f, m, 0.0f};
    const float log_s = logf(s_total);
    const float h = log_s - t_total / s_total;
    // Rounding can leave a tiny negative H on one-hot rows; NaN stays NaN.
    return Finished{m + log_s, h < 0.0f ? 0.0f : h, m, log_s};
}

// (lse, H) of the whole block's row, as online_finish_full.
__device__ __forceinline__ float2 online_finish(Online o) {
    const Finished f = online_finish_full(o);
    return make_float2(f.lse, f.h);
}
