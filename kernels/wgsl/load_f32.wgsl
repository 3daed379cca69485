// Binding 0 holds f32 elements.
@group(0) @binding(0) var<storage, read> src: array<f32>;

fn load_src(i: u32) -> f32 {
    return src[i];
}
