// Binding 0 holds f16 elements packed two per u32 (element 2j in the low half).
// unpack2x16float is core WGSL, so f16 storage needs no SHADER_F16 feature.
@group(0) @binding(0) var<storage, read> src: array<u32>;

fn load_src(i: u32) -> f32 {
    let word = src[i >> 1u];
    return unpack2x16float(select(word & 0xffffu, word >> 16u, (i & 1u) == 1u)).x;
}

// Elements i .. i + 8, as the GEMV steps (the block formats decode them together).
fn load_src8(i: u32) -> array<f32, 8> {
    var out: array<f32, 8>;
    for (var e = 0u; e < 8u; e++) {
        out[e] = load_src(i + e);
    }
    return out;
}
