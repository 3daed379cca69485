// Binding 0 holds bf16 elements packed two per u32 (element 2j in the low half):
// a bf16 is the top half of an f32.
@group(0) @binding(0) var<storage, read> src: array<u32>;

fn load_src(i: u32) -> f32 {
    let word = src[i >> 1u];
    return bitcast<f32>(select(word << 16u, word & 0xffff0000u, (i & 1u) == 1u));
}

// Elements i .. i + 8, as the GEMV steps (the block formats decode them together).
fn load_src8(i: u32) -> array<f32, 8> {
    var out: array<f32, 8>;
    for (var e = 0u; e < 8u; e++) {
        out[e] = load_src(i + e);
    }
    return out;
}
