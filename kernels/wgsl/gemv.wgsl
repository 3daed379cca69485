// y = x · wᵀ + bias for a few rows of x (decoding): each workgroup computes COLS output
// columns, SLICES neighbouring invocations sharing one column's dot product (they read
// consecutive weights), so the weight row (binding 0, any dtype) is read once for all
// rows of x and the workgroup synchronises once. Large weights are bound in windows of
// rows; a window's outputs land at column y_col. The pipeline is specialised per row
// count (ROWS, ≤ MAX_ROWS) so that the accumulator loops have constant bounds and the
// accumulators live in registers.

const MAX_ROWS: u32 = 8u;
override ROWS: u32;
const SLICES: u32 = 4u;
const COLS: u32 = WG / SLICES;

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

var<workgroup> partial: array<f32, MAX_ROWS * WG>;

@compute @workgroup_size(WG)
fn main(inv: Invocation) {
    let slice = inv.lid % SLICES;
    let j = group_index(inv) * COLS + inv.lid / SLICES;
    var acc: array<f32, MAX_ROWS>;
    if j < p.n && p.k % 8u == 0u {
        // 8 consecutive weights per slice and step: a block format decodes them with
        // one scale lookup.
        for (var kk = slice * 8u; kk < p.k; kk += SLICES * 8u) {
            let w = load_src8(j * p.k + kk);
            for (var r = 0u; r < ROWS; r++) {
                for (var e = 0u; e < 8u; e++) {
                    acc[r] += w[e] * x[r * p.k + kk + e];
                }
            }
        }
    } else if j < p.n {
        for (var kk = slice; kk < p.k; kk += SLICES) {
            let w = load_src(j * p.k + kk);
            for (var r = 0u; r < ROWS; r++) {
                acc[r] += w * x[r * p.k + kk];
            }
        }
    }
    for (var r = 0u; r < ROWS; r++) {
        partial[r * WG + inv.lid] = acc[r];
    }
    workgroupBarrier();
    if slice == 0u && j < p.n {
        var b = 0.0;
        if p.has_bias != 0u {
            b = bias[p.y_col + j];
        }
        for (var r = 0u; r < ROWS; r++) {
            var total = 0.0;
            for (var s = 0u; s < SLICES; s++) {
                total += partial[r * WG + inv.lid + s];
            }
            y[r * p.y_stride + p.y_col + j] = total + b;
        }
    }
}
