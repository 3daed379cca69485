// y = x · wᵀ + bias for many rows (prefill): TILE×TILE outputs per workgroup, with the
// x and w tiles staged in workgroup memory so each element read from global memory is
// used TILE times. w (binding 0) may be any dtype; large weights are bound in windows
// of rows whose outputs land at column y_col.

const TILE: u32 = 16u;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    y_stride: u32,
    y_col: u32,
    has_bias: u32,
    tiles_n: u32,
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> x_tile: array<f32, 256>;
var<workgroup> w_tile: array<f32, 256>;

@compute @workgroup_size(WG)
fn main(inv: Invocation) {
    let g = group_index(inv);
    let tiles_m = (p.m + TILE - 1u) / TILE;
    if g >= tiles_m * p.tiles_n {
        return;
    }
    let r = inv.lid / TILE;
    let c = inv.lid % TILE;
    let row0 = (g / p.tiles_n) * TILE;
    let col0 = (g % p.tiles_n) * TILE;
    var acc = 0.0;
    for (var k0 = 0u; k0 < p.k; k0 += TILE) {
        let kk = k0 + c;
        var xv = 0.0;
        if row0 + r < p.m && kk < p.k {
            xv = x[(row0 + r) * p.k + kk];
        }
        x_tile[inv.lid] = xv;
        var wv = 0.0;
        if col0 + r < p.n && kk < p.k {
            wv = load_src((col0 + r) * p.k + kk);
        }
        w_tile[inv.lid] = wv;
        workgroupBarrier();
        for (var t = 0u; t < TILE; t++) {
            acc += x_tile[r * TILE + t] * w_tile[c * TILE + t];
        }
        workgroupBarrier();
    }
    if row0 + r < p.m && col0 + c < p.n {
        var b = 0.0;
        if p.has_bias != 0u {
            b = bias[p.y_col + col0 + c];
        }
        y[(row0 + r) * p.y_stride + p.y_col + col0 + c] = acc + b;
    }
}
