// y = x · wᵀ + bias for many rows (prefill): a TILE×TILE block of outputs per
// workgroup, 4×4 per invocation, with x and w staged through workgroup memory K_STEP
// columns at a time, so each element read from global memory is used TILE times and
// the workgroup synchronises twice per K_STEP. w (binding 0) may be any dtype; large
// weights are bound in windows of rows whose outputs land at column y_col.

const TILE: u32 = 64u;
const K_STEP: u32 = 16u;
const PER: u32 = 4u;

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

var<workgroup> x_tile: array<f32, TILE * K_STEP>;
var<workgroup> w_tile: array<f32, TILE * K_STEP>;

@compute @workgroup_size(WG)
fn main(inv: Invocation) {
    let g = group_index(inv);
    let tiles_m = (p.m + TILE - 1u) / TILE;
    if g >= tiles_m * p.tiles_n {
        return;
    }
    let row0 = (g / p.tiles_n) * TILE;
    let col0 = (g % p.tiles_n) * TILE;
    // This invocation's 4×4 outputs: rows tr·4.., columns tc·4.. of the tile.
    let tr = inv.lid / (TILE / PER);
    let tc = inv.lid % (TILE / PER);
    var acc: array<array<f32, PER>, PER>;
    for (var k0 = 0u; k0 < p.k; k0 += K_STEP) {
        for (var i = 0u; i < TILE * K_STEP / WG; i++) {
            let e = inv.lid + i * WG;
            let r = e / K_STEP;
            let kk = k0 + e % K_STEP;
            var xv = 0.0;
            if row0 + r < p.m && kk < p.k {
                xv = x[(row0 + r) * p.k + kk];
            }
            x_tile[e] = xv;
            var wv = 0.0;
            if col0 + r < p.n && kk < p.k {
                wv = load_src((col0 + r) * p.k + kk);
            }
            w_tile[e] = wv;
        }
        workgroupBarrier();
        for (var t = 0u; t < K_STEP; t++) {
            var a: array<f32, PER>;
            var b: array<f32, PER>;
            for (var i = 0u; i < PER; i++) {
                a[i] = x_tile[(tr * PER + i) * K_STEP + t];
                b[i] = w_tile[(tc * PER + i) * K_STEP + t];
            }
            for (var i = 0u; i < PER; i++) {
                for (var j = 0u; j < PER; j++) {
                    acc[i][j] += a[i] * b[j];
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < PER; i++) {
        let row = row0 + tr * PER + i;
        for (var j = 0u; j < PER; j++) {
            let col = col0 + tc * PER + j;
            if row < p.m && col < p.n {
                var b = 0.0;
                if p.has_bias != 0u {
                    b = bias[p.y_col + col];
                }
                y[row * p.y_stride + p.y_col + col] = acc[i][j] + b;
            }
        }
    }
}
