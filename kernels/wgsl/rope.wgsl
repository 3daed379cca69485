// Rotary embedding in place, Hugging Face rotate-half layout: element i of a head pairs
// with element i + head_dim/2. The host computes (cos, sin) per row and frequency in
// f64, since f32 sin/cos of angles in the thousands of radians lose digits.

struct Params {
    rows: u32,
    cols: u32,
    head_dim: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> cos_sin: array<vec2<f32>>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(inv: Invocation) {
    let e = group_index(inv) * WG + inv.lid;
    let pairs_per_row = p.cols / 2u;
    if e >= p.rows * pairs_per_row {
        return;
    }
    let half = p.head_dim / 2u;
    let row = e / pairs_per_row;
    let head = (e % pairs_per_row) / half;
    let i = e % half;
    let lo = row * p.cols + head * p.head_dim + i;
    let hi = lo + half;
    let cs = cos_sin[row * half + i];
    let a = x[lo];
    let b = x[hi];
    x[lo] = a * cs.x - b * cs.y;
    x[hi] = b * cs.x + a * cs.y;
}
