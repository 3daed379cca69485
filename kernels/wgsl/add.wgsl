// x += y, elementwise (the residual connection).

struct Params {
    n: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(inv: Invocation) {
    let e = group_index(inv) * WG + inv.lid;
    if e >= p.n {
        return;
    }
    x[e] += y[e];
}
