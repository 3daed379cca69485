// y = x · wᵀ + bias for a few rows of x (decoding), one workgroup per output column:
// the weight row (binding 0, any dtype) is read once for all the rows of x. Large
// weights are bound in windows of rows; the window's outputs land at column y_col.

const MAX_ROWS: u32 = 8u;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    y_stride: u32,
    y_col: u32,
    has_bias: u32,
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(inv: Invocation) {
    let j = group_index(inv);
    if j >= p.n {
        return;
    }
    var acc: array<f32, MAX_ROWS>;
    for (var kk = inv.lid; kk < p.k; kk += WG) {
        let w = load_src(j * p.k + kk);
        for (var r = 0u; r < p.m; r++) {
            acc[r] += w * x[r * p.k + kk];
        }
    }
    var b = 0.0;
    if p.has_bias != 0u {
        b = bias[p.y_col + j];
    }
    for (var r = 0u; r < p.m; r++) {
        let total = wg_sum(acc[r], inv);
        if inv.lid == 0u {
            y[r * p.y_stride + p.y_col + j] = total + b;
        }
    }
}
