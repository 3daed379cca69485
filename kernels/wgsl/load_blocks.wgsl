// Binding 0 holds ggml block-format weights exactly as a GGUF file stores them (little
// endian, blocks back to back; a row is a whole number of blocks). Each `load_<format>(i)`
// decodes element i in registers from its block: the kernels that read weights through
// `load_src` (embedding, GEMV, matmul) then run unchanged on blocks, and the weights stay
// 2–7× smaller on the device than their f16 / f32 forms. The host appends the line that
// makes one of them `load_src`. Layouts and formulas follow the CPU's dequantisers
// (engine/src/quant), which are the reference the tests compare with.
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
fn load_q4_0(i: u32) -> f32 {
    let b = (i >> 5u) * 18u;
    return f32(i32(nibble_of_32(b + 2u, i & 31u)) - 8) * f16_at(b);
}

// block_q4_1 { f16 d; f16 m; u8 qs[16] }: nibble · d + m.
fn load_q4_1(i: u32) -> f32 {
    let b = (i >> 5u) * 20u;
    return f32(nibble_of_32(b + 4u, i & 31u)) * f16_at(b) + f16_at(b + 2u);
}

// block_q5_0 { f16 d; u8 qh[4]; u8 qs[16] }: (q − 16) · d, q = nibble | fifth bit.
fn load_q5_0(i: u32) -> f32 {
    let b = (i >> 5u) * 22u;
    let j = i & 31u;
    return f32(i32(nibble_of_32(b + 6u, j) | fifth_bit(b + 2u, j)) - 16) * f16_at(b);
}

// block_q5_1 { f16 d; f16 m; u8 qh[4]; u8 qs[16] }: q · d + m.
fn load_q5_1(i: u32) -> f32 {
    let b = (i >> 5u) * 24u;
    let j = i & 31u;
    return f32(nibble_of_32(b + 8u, j) | fifth_bit(b + 4u, j)) * f16_at(b) + f16_at(b + 2u);
}

// block_q8_0 { f16 d; i8 qs[32] }: q · d.
fn load_q8_0(i: u32) -> f32 {
    let b = (i >> 5u) * 34u;
    let q = i32(byte_at(b + 2u + (i & 31u)) << 24u) >> 24u;
    return f32(q) * f16_at(b);
}

// The 6-bit scale and min of sub-block s (0..8) from the 12 packed bytes at byte p
// (ggml's get_scale_min_k4).
fn scale_min_k4(p: u32, s: u32) -> vec2<f32> {
    if s < 4u {
        return vec2<f32>(f32(byte_at(p + s) & 63u), f32(byte_at(p + s + 4u) & 63u));
    }
    let sc = (byte_at(p + s + 4u) & 15u) | ((byte_at(p + s - 4u) >> 6u) << 4u);
    let m = (byte_at(p + s + 4u) >> 4u) | ((byte_at(p + s) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(m));
}

// Where element e (0..256) of a Q4_K / Q5_K super-block sits: each 64 elements share 32
// code bytes (`pair`), low nibbles for the first 32 (`hi` 0), high for the next; `sub`
// is its 32-element sub-block.
struct KSlot {
    pair: u32,
    hi: u32,
    sub: u32,
    l: u32,
}

fn k_slot(e: u32) -> KSlot {
    let pair = e >> 6u;
    let hi = (e >> 5u) & 1u;
    return KSlot(pair, hi, 2u * pair + hi, e & 31u);
}

// d·sc·q − dmin·m with the sub-block's 6-bit scale and min, for a super-block at byte b.
fn k_value(b: u32, sub: u32, q: u32) -> f32 {
    let sm = scale_min_k4(b + 4u, sub);
    return f16_at(b) * sm.x * f32(q) - f16_at(b + 2u) * sm.y;
}

// block_q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128] }: 8 sub-blocks of 32.
fn load_q4_k(i: u32) -> f32 {
    let b = (i >> 8u) * 144u;
    let s = k_slot(i & 255u);
    return k_value(b, s.sub, (byte_at(b + 16u + 32u * s.pair + s.l) >> (4u * s.hi)) & 15u);
}

// block_q5_K { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128] }: as Q4_K with a
// fifth bit per element, bit `sub` of qh[e mod 32].
fn load_q5_k(i: u32) -> f32 {
    let b = (i >> 8u) * 176u;
    let s = k_slot(i & 255u);
    let low = (byte_at(b + 48u + 32u * s.pair + s.l) >> (4u * s.hi)) & 15u;
    let fifth = ((byte_at(b + 16u + s.l) >> s.sub) & 1u) << 4u;
    return k_value(b, s.sub, low | fifth);
}

// block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }: two halves of 128, each
// four quarters of 32 sharing ql / qh bytes; d · scale · (q − 32).
fn load_q6_k(i: u32) -> f32 {
    let b = (i >> 8u) * 210u;
    let e = i & 255u;
    let half = e >> 7u;
    let quarter = (e >> 5u) & 3u;
    let l = e & 31u;
    let low = (byte_at(b + 64u * half + l + 32u * (quarter & 1u)) >> (4u * (quarter >> 1u))) & 15u;
    let high = (byte_at(b + 128u + 32u * half + l) >> (2u * quarter)) & 3u;
    let q = i32(low | (high << 4u)) - 32;
    let scale = i32(byte_at(b + 192u + 8u * half + l / 16u + 2u * quarter) << 24u) >> 24u;
    return f16_at(b + 208u) * f32(scale) * f32(q);
}
