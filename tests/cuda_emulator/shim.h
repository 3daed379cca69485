// A CPU emulator of the CUDA execution model, just enough to compile entmin's kernels
// (kernels/cuda/*.cu) with g++ and run them where there is no GPU, as in CI. Used by
// kernel_tests.cpp and backward_tests.cpp (through test_util.h), which
// tests/tests/cuda_emulated_kernels.rs compiles and runs.
//
// How: every CUDA thread of a block is a fiber with its own stack, and one OS thread runs
// them in turn. A fiber runs until it reaches __syncthreads or a warp shuffle and waits
// there; when every thread of the block waits at __syncthreads, or all 32 lanes of a warp
// at a shuffle, they go on. The blocks of a grid run one after another.
//
// What it checks (the program exits with status 3 and "EMU ERROR: ..." on stderr):
//   - every __syncthreads is reached by every thread of the block (a barrier in divergent
//     code is undefined behaviour);
//   - every warp shuffle is reached by all 32 lanes of the warp, with the full mask;
//   - blocks have a multiple of 32 threads, at most 1024.
// What it does not model: real concurrency. Between barriers the threads run one after
// another in a fixed order, so a data race (a thread reading memory that another writes
// with no barrier between) gives one deterministic answer and is not reported. Nor does it
// model memory coalescing, bank conflicts, or register and shared-memory limits (the NVRTC
// compile test checks those), and __shared__ memory keeps its contents from one block to
// the next instead of starting undefined.
//
// Fibers are started with makecontext and switched with _setjmp/_longjmp, which do not save
// the signal mask (swapcontext makes a system call to do so each time, and is ~20x slower).
// Fortified glibc rejects a longjmp onto another stack ("longjmp causes uninitialized stack
// frame"), hence the #undef: include this file before any other. Linux only (ucontext).
#pragma once
#undef _FORTIFY_SOURCE
#include <setjmp.h>
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

// ---- CUDA C++ vocabulary used by the kernels --------------------------------------------

#define __global__
#define __device__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// A function-local static is one copy shared by every thread, as __shared__ is within a
// block (blocks run one at a time).
#define __shared__ static

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
static dim3 threadIdx, blockIdx, blockDim, gridDim;
// With CUDA's alignment: a 16-byte load from a misaligned address may crash here too.
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) float2 {
    float x, y;
};
static inline float2 make_float2(float a, float b) { return {a, b}; }
static inline float __int_as_float(int i) {
    float f;
    memcpy(&f, &i, 4);
    return f;
}
static inline float __uint_as_float(unsigned i) {
    float f;
    memcpy(&f, &i, 4);
    return f;
}
static inline unsigned __float_as_uint(float f) {
    unsigned i;
    memcpy(&i, &f, 4);
    return i;
}
template <class T> static inline T min(T a, T b) { return a < b ? a : b; }
template <class T> static inline T max(T a, T b) { return a > b ? a : b; }

// Host replacement of the kernels' only inline PTX, `cvt.f32.f16` in common.cuh's widen():
// the generator of kernels.inc substitutes a call to this for it (see test_util.h).
static float half_to_float_sw(unsigned short h) {
    const unsigned sign = h >> 15, exp = (h >> 10) & 31, mant = h & 1023;
    float f;
    if (exp == 0) f = std::ldexp((float)mant, -24);  // zero and subnormals
    else if (exp == 31) f = __uint_as_float(mant ? 0x7fc00000u : 0x7f800000u);
    else f = std::ldexp((float)(mant | 1024), (int)exp - 25);
    return sign ? -f : f;
}

// ---- The scheduler -----------------------------------------------------------------------

namespace emu {

enum State { RUN, BLOCK_WAIT, WARP_WAIT, DONE };
struct Fiber {
    ucontext_t start;  // entry into trampoline(), on `stack`
    jmp_buf resume;    // where the fiber waits
    std::unique_ptr<char[]> stack;  // uninitialised: pages are only touched if used
    State state;
    bool started;
    unsigned shuffles;  // count, selects the shuffle slots
    dim3 tid;
};
static const unsigned MAX_THREADS = 1024, STACK_BYTES = 256 * 1024;
static Fiber fibers[MAX_THREADS];
static jmp_buf scheduler;  // where the running fiber returns to
static unsigned current;
static std::function<void()> kernel;
static unsigned shuffle_slots[2][MAX_THREADS];  // double-buffered, see __shfl_xor_sync
static long barriers = 0;                       // block barriers passed, for the log

// Set by expect_error: an emulator error jumps back there instead of exiting.
static jmp_buf* error_catcher = nullptr;
static const char* last_error = nullptr;

[[noreturn]] static void fail(const char* what) {
    if (error_catcher) {
        last_error = what;
        longjmp(*error_catcher, 1);
    }
    fprintf(stderr, "EMU ERROR: %s (block %u,%u)\n", what, blockIdx.x, blockIdx.y);
    exit(3);
}

// Called by the running fiber: wait in state s, until the scheduler resumes it.
static void yield(State s) {
    Fiber& f = fibers[current];
    f.state = s;
    if (_setjmp(f.resume) == 0) _longjmp(scheduler, 1);
    threadIdx = f.tid;
}

static void trampoline() {
    kernel();
    fibers[current].state = DONE;
    _longjmp(scheduler, 1);
}

// Runs fiber t until it waits or ends.
static void resume(unsigned t) {
    Fiber& f = fibers[t];
    current = t;
    threadIdx = f.tid;
    if (_setjmp(scheduler) != 0) return;
    if (f.started) _longjmp(f.resume, 1);
    f.started = true;
    setcontext(&f.start);
}

static void run_block(unsigned n) {
    for (unsigned t = 0; t < n; t++) {
        Fiber& f = fibers[t];
        if (!f.stack) f.stack.reset(new char[STACK_BYTES]);
        getcontext(&f.start);
        f.start.uc_stack.ss_sp = f.stack.get();
        f.start.uc_stack.ss_size = STACK_BYTES;
        f.start.uc_link = nullptr;
        makecontext(&f.start, trampoline, 0);
        f.state = RUN;
        f.started = false;
        f.shuffles = 0;
        f.tid = dim3{t % blockDim.x, t / blockDim.x, 0};
    }
    for (;;) {
        bool progress = false;
        for (unsigned t = 0; t < n; t++)
            if (fibers[t].state == RUN) resume(t), progress = true;
        // No fiber runs now. A warp whose 32 lanes all wait at a shuffle goes on; one where
        // only some do (the others wait at __syncthreads, or returned) never would.
        for (unsigned w = 0; w < n; w += 32) {
            unsigned waiting = 0;
            for (unsigned l = w; l < w + 32; l++) waiting += fibers[l].state == WARP_WAIT;
            if (waiting == 32) {
                for (unsigned l = w; l < w + 32; l++) fibers[l].state = RUN;
                progress = true;
            } else if (waiting > 0) {
                fail("warp shuffle not reached by all 32 lanes");
            }
        }
        if (progress) continue;
        // Every thread has returned or waits at __syncthreads.
        unsigned done = 0;
        for (unsigned t = 0; t < n; t++) done += fibers[t].state == DONE;
        if (done == n) return;
        if (done > 0) fail("__syncthreads not reached by threads that returned");
        barriers++;
        for (unsigned t = 0; t < n; t++) fibers[t].state = RUN;
    }
}

// kernel<<<grid, block>>>: f is called once per thread, with threadIdx etc. set.
template <class F> void launch(dim3 grid, dim3 block, F f) {
    const unsigned n = block.x * block.y * block.z;
    if (n == 0 || n % 32 != 0 || n > MAX_THREADS || block.z != 1 || grid.z != 1) fail("unsupported launch shape");
    gridDim = grid;
    blockDim = block;
    kernel = f;
    for (unsigned y = 0; y < grid.y; y++)
        for (unsigned x = 0; x < grid.x; x++) {
            blockIdx = dim3{x, y, 0};
            run_block(n);
        }
}

// Runs f, which must hit an emulator error; returns its message (nullptr if none). Used by
// the emulator's own tests: the abandoned fibers are reset by the next launch.
template <class F> const char* expect_error(F f) {
    jmp_buf catcher;
    last_error = nullptr;
    error_catcher = &catcher;
    if (setjmp(catcher) == 0) f();
    error_catcher = nullptr;
    return last_error;
}

}  // namespace emu

// ---- Barriers ---------------------------------------------------------------------------

static inline void __syncthreads() { emu::yield(emu::BLOCK_WAIT); }

// Each lane publishes its value, waits for all 32, then reads its partner's. Consecutive
// shuffles use alternate slots: a lane writes these slots again two shuffles later, and it
// cannot get there before every lane of its warp has read them (they all meet at the
// shuffle in between).
template <class T> static T __shfl_xor_sync(unsigned mask, T x, int lane_mask) {
    static_assert(sizeof(T) == 4, "32-bit shuffles only");
    if (mask != 0xffffffffu) emu::fail("shuffle with a partial mask");
    const unsigned t = threadIdx.x + threadIdx.y * blockDim.x;
    unsigned* slots = emu::shuffle_slots[emu::fibers[t].shuffles++ & 1];
    memcpy(&slots[t], &x, 4);
    emu::yield(emu::WARP_WAIT);
    T r;
    memcpy(&r, &slots[(t & ~31u) | ((t & 31) ^ (unsigned)lane_mask)], 4);
    return r;
}
