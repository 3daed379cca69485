// c[m, n] (+)= a[m, k] · b[k, n] in f32 where every operand is addressed through element
// strides: a[i, p] = a[i·a_rs + p·a_cs], b[p, j] = b[p·b_rs + j·b_cs], c[i, j] = c[i·c_rs + j],
// so either operand may be a transposed view (or a broadcast one, with stride 0). The
// backward of a linear layer: dx = dy·w, dw += dyᵀ·x, dbias += 1ᵀ·dy. accumulate = 1 adds
// onto c, 0 overwrites it (k = 0 then gives zeros).
// As matmul.cu: a 64×64 output tile per block, 4×4 per thread, a and b staged through
// shared memory ST_K columns of k at a time. Grid (⌈n/64⌉, ⌈m/64⌉) × WG; blockIdx.x is
// the column tile.

#define ST_TILE 64
#define ST_K 16
// k-major tiles, padded as in matmul.cu.
#define ST_PAD (ST_TILE + 4)

extern "C" __global__ void __launch_bounds__(WG)
    matmul_strided(const float* a, const float* b, float* c, unsigned m, unsigned n, unsigned k, unsigned a_rs,
                   unsigned a_cs, unsigned b_rs, unsigned b_cs, unsigned c_rs, unsigned accumulate) {
    __shared__ __align__(16) float as[ST_K][ST_PAD];
    __shared__ __align__(16) float bs[ST_K][ST_PAD];
    const unsigned tid = threadIdx.x;
    const unsigned row0 = blockIdx.y * ST_TILE, col0 = blockIdx.x * ST_TILE;
    const unsigned tr = tid / (ST_TILE / 4), tc = tid % (ST_TILE / 4);
    // Neighbouring threads load neighbouring addresses where an operand has a unit
    // stride: along k when a_cs (b_rs) is 1, else along the tile's rows (columns).
    const bool a_k_fast = a_cs == 1 || a_rs != 1;
    const bool b_k_fast = b_rs == 1 && b_cs != 1;
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;

    for (unsigned k0 = 0; k0 < k; k0 += ST_K) {
#pragma unroll
        for (int i = 0; i < ST_TILE * ST_K / WG; i++) {
            const unsigned e = tid + i * WG;
            unsigned r = a_k_fast ? e / ST_K : e % ST_TILE, kk = a_k_fast ? e % ST_K : e / ST_TILE;
            as[kk][r] = row0 + r < m && k0 + kk < k ? a[(size_t)(row0 + r) * a_rs + (size_t)(k0 + kk) * a_cs] : 0.0f;
            r = b_k_fast ? e / ST_K : e % ST_TILE, kk = b_k_fast ? e % ST_K : e / ST_TILE;
            bs[kk][r] = col0 + r < n && k0 + kk < k ? b[(size_t)(k0 + kk) * b_rs + (size_t)(col0 + r) * b_cs] : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int t = 0; t < ST_K; t++) {
            const float4 a4 = *reinterpret_cast<const float4*>(&as[t][tr * 4]);
            const float4 b4 = *reinterpret_cast<const float4*>(&bs[t][tc * 4]);
            const float av[4] = {a4.x, a4.y, a4.z, a4.w};
            const float bv[4] = {b4.x, b4.y, b4.z, b4.w};
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] += av[i] * bv[j];
        }
        // The next step overwrites the tiles.
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < 4; i++) {
        const unsigned row = row0 + tr * 4 + i;
        if (row >= m) break;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const unsigned col = col0 + tc * 4 + j;
            if (col < n) {
                float* dst = c + (size_t)row * c_rs + col;
                *dst = accumulate ? *dst + acc[i][j] : acc[i][j];
            }
        }
    }
}
