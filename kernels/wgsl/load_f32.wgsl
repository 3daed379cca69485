// Binding 0 holds f32 elements.
@group(0) @binding(0) var<storage, read> src: array<f32>;

fn load_src(i: u32) -> f32 {
    return src[i];
}

// Elements i .. i + 8, as the GEMV steps (the block formats decode them together).
fn load_src8(i: u32) -> array<f32, 8> {
    var out: array<f32, 8>;
    for (var e = 0u; e < 8u; e++) {
        out[e] = load_src(i + e);
    }
    return out;
}
