// The gradients of silu(gate)·up, elementwise, with s = sigmoid(gate):
// d_gate = dy·up·s·(1 + gate·(1 − s)), d_up = dy·gate·s.

struct Params {
    n: u32,
}

@group(0) @binding(0) var<storage, read> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> d_gate: array<f32>;
@group(0) @binding(4) var<storage, read_write> d_up: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(inv: Invocation) {
    let e = group_index(inv) * WG + inv.lid;
    if e >= p.n {
        return;
    }
    let g = gate[e];
    let s = 1.0 / (1.0 + exp(-g));
    d_gate[e] = dy[e] * up[e] * s * (1.0 + g * (1.0 - s));
    d_up[e] = dy[e] * g * s;
}
