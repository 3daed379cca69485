// Binding 0 holds ggml block-format weights exactly as a GGUF file stores them (little
// endian, blocks back to back; a row is a whole number of blocks). `load_src(i)` decodes
// element i in registers from its block, so the kernels that read weights through it
// (embedding, GEMV, matmul) run unchanged on blocks, and the weights stay 2–7× smaller on
// the device than their f16 / f32 forms; `load_src8(i)` decodes 8 (the GEMV's step).
//
// Each format has `code_<format>(b, j)`, the integer code of element j of the block at
// byte b, and `affine_<format>(b, j)`, the (scale, offset) its sub-block applies: the
// value is code · scale + offset. The host appends QK, BLOCK_BYTES and the aliases
// `block_code` / `block_affine` for the tensor's format. Layouts and formulas follow the
// CPU's dequantisers (engine/src/quant), which are the reference the tests compare with.
@group(0) @binding(0) var<storage, read> src: array<u32>;

// Blocks are 18, 20, 22, 24, 34, 144, 176 or 210 bytes, so fields sit at any even offset
// and codes at any byte.
fn byte_at(b: u32) -> u32 {
    return (src[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu;
}

// A little-endian f16 at an even byte b. Every block size and every f16 field offset
// is even, so the two bytes always share a word: one load.
fn f16_at(b: u32) -> f32 {
    return unpack2x16float(src[b >> 2u] >> ((b & 2u) * 8u)).x;
}

fn u32_at(b: u32) -> u32 {
    return byte_at(b) | (byte_at(b + 1u) << 8u) | (byte_at(b + 2u) << 16u) | (byte_at(b + 3u) << 24u);
}

// Element j of a 32-element block whose 4-bit codes start at byte q: low nibbles hold
// elements 0..15, high nibbles 16..31.
fn nibble_of_32(q: u32, j: u32) -> u32 {
    return (byte_at(q + (j & 15u)) >> ((j >> 4u) * 4u)) & 15u;
}

// The fifth bit of element j from a block's 32-bit qh field at byte h.
fn fifth_bit(h: u32, j: u32) -> u32 {
    return ((u32_at(h) >> j) & 1u) << 4u;
}

// block_q4_0 { f16 d; u8 qs[16] }: (nibble − 8) · d.
fn code_q4_0(b: u32, j: u32) -> i32 {
    return i32(nibble_of_32(b + 2u, j)) - 8;
}
fn affine_q4_0(b: u32, j: u32) -> vec2<f32> {
    return vec2<f32>(f16_at(b), 0.0);
}

// block_q4_1 { f16 d; f16 m; u8 qs[16] }: nibble · d + m.
fn code_q4_1(b: u32, j: u32) -> i32 {
    return i32(nibble_of_32(b + 4u, j));
}
fn affine_q4_1(b: u32, j: u32) -> vec2<f32> {
    return vec2<f32>(f16_at(b), f16_at(b + 2u));
}

// block_q5_0 { f16 d; u8 qh[4]; u8 qs[16] }: (q − 16) · d, q = nibble | fifth bit.
fn code_q5_0(b: u32, j: u32) -> i32 {
    return i32(nibble_of_32(b + 6u, j) | fifth_bit(b + 2u, j)) - 16;
}
fn affine_q5_0(b: u32, j: u32) -> vec2<f32> {
    return vec2<f32>(f16_at(b), 0.0);
}

// block_q5_1 { f16 d; f16 m; u8 qh[4]; u8 qs[16] }: q · d + m.
fn code_q5_1(b: u32, j: u32) -> i32 {
    return i32(nibble_of_32(b + 8u, j) | fifth_bit(b + 4u, j));
}
fn affine_q5_1(b: u32, j: u32) -> vec2<f32> {
    return vec2<f32>(f16_at(b), f16_at(b + 2u));
}

// block_q8_0 { f16 d; i8 qs[32] }: q · d.
fn code_q8_0(b: u32, j: u32) -> i32 {
    return i32(byte_at(b + 2u + j) << 24u) >> 24u;
}
fn affine_q8_0(b: u32, j: u32) -> vec2<f32> {
    return vec2<f32>(f16_at(b), 0.0);
}

// Q4_K and Q5_K: eight sub-blocks of 32, d·sc·q − dmin·m with sub-block s's 6-bit scale
// and min from the 12 packed bytes at byte b + 4 (ggml's get_scale_min_k4), as
// (d·sc, −dmin·m).
fn affine_k4(b: u32, j: u32) -> vec2<f32> {
    let s = j >> 5u;
    let p = b + 4u;
    var sc: u32;
    var m: u32;
    if s < 4u {
        sc = byte_at(p + s) & 63u;
        m = byte_at(p + s + 4u) & 63u;
    } else {
        sc = (byte_at(p + s + 4u) & 15u) | ((byte_at(p + s - 4u) >> 6u) << 4u);
        m = (byte_at(p + s + 4u) >> 4u) | ((byte_at(p + s) >> 6u) << 4u);
    }
    return vec2<f32>(f16_at(b) * f32(sc), -(f16_at(b + 2u) * f32(m)));
}

// The low 4 bits of element j of a Q4_K / Q5_K super-block whose codes start at byte q:
// each 64 elements share 32 code bytes, low nibbles for the first 32.
fn k_low(q: u32, j: u32) -> u32 {
    return (byte_at(q + 32u * (j >> 6u) + (j & 31u)) >> (4u * ((j >> 5u) & 1u))) & 15u;
}

// block_q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128] }.
fn code_q4_k(b: u32, j: u32) -> i32 {
    return i32(k_low(b + 16u, j));
}
fn affine_q4_k(b: u32, j: u32) -> vec2<f32> {
    return affine_k4(b, j);
}

// block_q5_K { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128] }: as Q4_K with a
// fifth bit per element, bit (j / 32) of qh[j mod 32].
fn code_q5_k(b: u32, j: u32) -> i32 {
    let fifth = ((byte_at(b + 16u + (j & 31u)) >> (j >> 5u)) & 1u) << 4u;
    return i32(k_low(b + 48u, j) | fifth);
}
fn affine_q5_k(b: u32, j: u32) -> vec2<f32> {
    return affine_k4(b, j);
}

// block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }: two halves of 128, each
// four quarters of 32 sharing ql / qh bytes; d · scale · (q − 32), a scale per 16.
fn code_q6_k(b: u32, j: u32) -> i32 {
    let half = j >> 7u;
    let quarter = (j >> 5u) & 3u;
    let l = j & 31u;
    let low = (byte_at(b + 64u * half + l + 32u * (quarter & 1u)) >> (4u * (quarter >> 1u))) & 15u;
    let high = (byte_at(b + 128u + 32u * half + l) >> (2u * quarter)) & 3u;
    return i32(low | (high << 4u)) - 32;
}
fn affine_q6_k(b: u32, j: u32) -> vec2<f32> {
    let half = j >> 7u;
    let quarter = (j >> 5u) & 3u;
    let scale = i32(byte_at(b + 192u + 8u * half + (j & 31u) / 16u + 2u * quarter) << 24u) >> 24u;
    return vec2<f32>(f16_at(b + 208u) * f32(scale), 0.0);
}

fn load_src(i: u32) -> f32 {
    let b = (i / QK) * BLOCK_BYTES;
    let j = i % QK;
    let a = block_affine(b, j);
    return f32(block_code(b, j)) * a.x + a.y;
}

// Elements i .. i + 8 (i a multiple of 8): they share one sub-block's affine pair (a
// K-quant sub-block is 16 or 32 long), looked up once.
fn load_src8(i: u32) -> array<f32, 8> {
    let b = (i / QK) * BLOCK_BYTES;
    let j = i % QK;
    let a = block_affine(b, j);
    var out: array<f32, 8>;
    for (var e = 0u; e < 8u; e++) {
        out[e] = f32(block_code(b, j + e)) * a.x + a.y;
    }
    return out;
}
