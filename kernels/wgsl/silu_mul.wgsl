// silu(gate) * up, elementwise.

struct Params {
    n: u32,
}

@group(0) @binding(0) var<storage, read> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(inv: Invocation) {
    let e = group_index(inv) * WG + inv.lid;
    if e >= p.n {
        return;
    }
    let g = gate[e];
    out[e] = g / (1.0 + exp(-g)) * up[e];
}
