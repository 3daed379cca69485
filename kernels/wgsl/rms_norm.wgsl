// x / rms(x) * weight, one workgroup per row.

struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(inv: Invocation) {
    let row = group_index(inv);
    if row >= p.rows {
        return;
    }
    let base = row * p.cols;
    var squares = 0.0;
    for (var c = inv.lid; c < p.cols; c += WG) {
        let v = x[base + c];
        squares += v * v;
    }
    let scale = 1.0 / sqrt(wg_sum(squares, inv) / f32(p.cols) + p.eps);
    for (var c = inv.lid; c < p.cols; c += WG) {
        out[base + c] = x[base + c] * scale * weight[c];
    }
}
