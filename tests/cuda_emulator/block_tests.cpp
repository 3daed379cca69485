// The weight kernels (embedding, gemv, matmul) reading ggml blocks, for the one block
// format this program is built for (-DENTMIN_Q4_0 … -DENTMIN_Q6_K), against the engine's
// reference dequantisation of the same blocks. tests/tests/cuda_emulated_kernels.rs writes
// both before building: <FORMAT>.blocks holds random blocks from engine::quant::random_blocks
// (every code and scale pattern the format allows, f16 scales of either sign), and
// <FORMAT>.values their elements as quant::dequantize gives them, f32 little endian. The
// matrices here are runs of those blocks, so every reference value is the Rust one.
//
// Checks: embedding rows equal the reference values exactly (the same f32 operations in
// the same order; the emulator is host code without FMA contraction); GEMV and matmul
// agree with the f64 dot of the reference values and f32 activations within
// 1e-5·Σ|w·x| (f32 accumulation), with outputs poisoned first, sizes not multiples of the
// block or tile, both GEMV paths (16-byte aligned activations, and misaligned ones that
// take the scalar loop) and 1–8 rows.
#define KERNELS_INC "weight_kernels.inc"
#include "test_util.h"

#include <fstream>
#include <iterator>

#if defined(ENTMIN_Q4_0)
#define FORMAT "Q4_0"
#elif defined(ENTMIN_Q4_1)
#define FORMAT "Q4_1"
#elif defined(ENTMIN_Q5_0)
#define FORMAT "Q5_0"
#elif defined(ENTMIN_Q5_1)
#define FORMAT "Q5_1"
#elif defined(ENTMIN_Q8_0)
#define FORMAT "Q8_0"
#elif defined(ENTMIN_Q4_K)
#define FORMAT "Q4_K"
#elif defined(ENTMIN_Q5_K)
#define FORMAT "Q5_K"
#elif defined(ENTMIN_Q6_K)
#define FORMAT "Q6_K"
#else
#error "compile with one block format"
#endif

// The pool of reference blocks and their values.
static std::vector<unsigned char> pool_bytes;
static std::vector<float> pool_values;
static size_t pool_blocks = 0;

static bool read_pool() {
    std::ifstream blocks(FORMAT ".blocks", std::ios::binary), values(FORMAT ".values", std::ios::binary);
    if (!blocks || !values) return false;
    pool_bytes.assign(std::istreambuf_iterator<char>(blocks), {});
    std::vector<char> raw{std::istreambuf_iterator<char>(values), {}};
    pool_values.resize(raw.size() / 4);
    memcpy(pool_values.data(), raw.data(), pool_values.size() * 4);
    pool_blocks = pool_bytes.size() / BLOCK_BYTES;
    return pool_blocks > 0 && pool_bytes.size() == pool_blocks * BLOCK_BYTES &&
           pool_values.size() == pool_blocks * QK;
}

// A rows × cols matrix of blocks (cols a multiple of QK) starting at pool block `first`,
// wrapping around the pool, and its reference values.
struct Matrix {
    Buf<unsigned char> bytes;
    std::vector<float> values;
    Matrix(unsigned rows, unsigned cols, size_t first) : bytes((size_t)rows * cols / QK * BLOCK_BYTES) {
        const size_t n_blocks = (size_t)rows * cols / QK;
        values.resize((size_t)rows * cols);
        for (size_t i = 0; i < n_blocks; i++) {
            const size_t from = (first + i) % pool_blocks;
            memcpy(bytes.p + i * BLOCK_BYTES, &pool_bytes[from * BLOCK_BYTES], BLOCK_BYTES);
            memcpy(&values[i * QK], &pool_values[from * QK], QK * 4);
        }
    }
};

static void test_decode_matches_reference() {
    // Every element of the pool through load_src, and 8 at a time through load_vec.
    for (size_t i = 0; i < pool_values.size(); i++)
        CHECK(load_src(pool_bytes.data(), i) == pool_values[i], "load_src %zu: %g vs %g", i,
              load_src(pool_bytes.data(), i), pool_values[i]);
    for (size_t c = 0; c < pool_values.size(); c += 8) {
        float out[8];
        load_vec(pool_bytes.data(), c, out);
        for (int e = 0; e < 8; e++)
            CHECK(out[e] == pool_values[c + e], "load_vec %zu + %d: %g vs %g", c, e, out[e], pool_values[c + e]);
    }
}

static void test_embedding() {
    for (unsigned blocks_per_row : {1u, 3u}) {
        const unsigned vocab = 37, dim = blocks_per_row * QK, n_ids = 9;
        Matrix table(vocab, dim, 5);
        Buf<unsigned> ids(n_ids);
        for (unsigned i = 0; i < n_ids; i++) ids[i] = (unsigned)(rng() % vocab);
        ids[0] = vocab - 1;
        Buf<float> out(n_ids * dim, 0, 777.f);
        emu::launch({cdiv(n_ids * dim, WG)}, {WG}, [&] { embedding(table.bytes.p, ids.p, out.p, dim, n_ids); });
        for (unsigned i = 0; i < n_ids; i++)
            for (unsigned d = 0; d < dim; d++)
                CHECK(out[i * dim + d] == table.values[(size_t)ids[i] * dim + d], "embedding dim%u id%u d%u: %g vs %g",
                      dim, ids[i], d, out[i * dim + d], table.values[(size_t)ids[i] * dim + d]);
    }
}

// y = x·Wᵀ (+ bias), W of n rows of k in blocks, x of m rows of k in f32.
static void test_linear(bool use_gemv) {
    struct Case {
        unsigned m, n, blocks_per_row;
        size_t offset;
    };
    // 37 blocks of 32 or 5 of 256: more than one 256-element stride of a warp's lanes,
    // and a partial last stride.
    const unsigned long_row = QK == 32 ? 37 : 5;
    std::vector<Case> cases;
    if (use_gemv) {
        for (unsigned m : {1u, 3u, 8u})
            for (unsigned kb : {1u, 3u, long_row})
                for (size_t offset : {0, 1}) cases.push_back({m, 21, kb, offset});
    } else {
        cases = {{70, 67, 3, 0}, {64, 64, 2, 0}, {1, 5, 1, 0}, {130, 65, long_row, 1}};
    }
    int case_index = 0;
    for (auto [m, n, kb, offset] : cases) {
        const unsigned k = kb * QK;
        Matrix w(n, k, 11 * case_index);
        Buf<float> x(m * k, offset), bias(n), y(m * n, 0, 777.f);
        for (size_t i = 0; i < x.n; i++) x[i] = nrand(1);
        for (size_t i = 0; i < n; i++) bias[i] = nrand(1);
        const unsigned has_bias = case_index++ % 2;
        if (use_gemv)
            emu::launch({cdiv(n, WG / 32)}, {WG}, [&] { gemv(w.bytes.p, x.p, bias.p, y.p, m, n, k, has_bias); });
        else
            emu::launch({cdiv(n, 64), cdiv(m, 64)}, {WG},
                        [&] { matmul(w.bytes.p, x.p, bias.p, y.p, m, n, k, has_bias); });
        for (unsigned r = 0; r < m; r++)
            for (unsigned j = 0; j < n; j++) {
                double dot = has_bias ? bias[j] : 0, magnitude = std::fabs(dot);
                for (unsigned c = 0; c < k; c++) {
                    const double t = (double)w.values[(size_t)j * k + c] * x[r * k + c];
                    dot += t;
                    magnitude += std::fabs(t);
                }
                CHECK(std::fabs(y[r * n + j] - dot) <= 1e-5 * magnitude + 1e-6,
                      "%s m%u n%u k%u offset%zu r%u j%u: %g vs %g", use_gemv ? "gemv" : "matmul", m, n, k, offset, r, j,
                      y[r * n + j], dot);
            }
    }
}

int main(int argc, char** argv) {
    if (!read_pool()) {
        printf("cannot read " FORMAT ".blocks / " FORMAT ".values, or their sizes disagree\n");
        return 3;
    }
    return run_tests(argc, argv,
                     {
                         {"decode", test_decode_matches_reference},
                         {"embedding", test_embedding},
                         {"gemv", [] { test_linear(true); }},
                         {"matmul", [] { test_linear(false); }},
                     });
}
