// y[m, n] = x[m, k] · w[n, k]ᵀ + bias for many rows (prefill), w of any dtype: a 64×64
// output tile per block, 4×4 per thread, x and w staged through shared memory 16 columns
// of k at a time. Grid (⌈n/64⌉, ⌈m/64⌉) × WG; blockIdx.x is the column tile.

#define TILE 64
#define K_STEP 16
// Tiles are stored k-major so a thread reads its 4 rows (or columns) with one float4;
// the padding spreads the transposing stores over more banks.
#define TILE_PAD (TILE + 4)

extern "C" __global__ void __launch_bounds__(WG)
    matmul(const src_t* w, const float* x, const float* bias, float* y, unsigned m, unsigned n, unsigned k,
           unsigned has_bias) {
    __shared__ __align__(16) float xs[K_STEP][TILE_PAD];
    __shared__ __align__(16) float ws[K_STEP][TILE_PAD];
    const unsigned tid = threadIdx.x;
    const unsigned row0 = blockIdx.y * TILE, col0 = blockIdx.x * TILE;
    const unsigned tr = tid / (TILE / 4), tc = tid % (TILE / 4);
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;

    for (unsigned k0 = 0; k0 < k; k0 += K_STEP) {
        // 16 neighbouring threads read 16 consecutive k of one row.
#pragma unroll
        for (int i = 0; i < TILE * K_STEP / WG; i++) {
            const unsigned e = tid + i * WG;
            const unsigned r = e / K_STEP, kk = e % K_STEP, kg = k0 + kk;
            xs[kk][r] = row0 + r < m && kg < k ? x[(size_t)(row0 + r) * k + kg] : 0.0f;
            ws[kk][r] = col0 + r < n && kg < k ? load_src(w, (size_t)(col0 + r) * k + kg) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int t = 0; t < K_STEP; t++) {
            const float4 a4 = *reinterpret_cast<const float4*>(&xs[t][tr * 4]);
            const float4 b4 = *reinterpret_cast<const float4*>(&ws[t][tc * 4]);
            const float a[4] = {a4.x, a4.y, a4.z, a4.w};
            const float b[4] = {b4.x, b4.y, b4.z, b4.w};
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] += a[i] * b[j];
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
            if (col < n) y[(size_t)row * n + col] = acc[i][j] + (has_bias ? bias[col] : 0.0f);
        }
    }
}
