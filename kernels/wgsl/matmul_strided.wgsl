// c = (accumulate ? c : 0) + a · b for f32 operands given by element strides, so that
// either may be read transposed: a[i, p] = a[a_off + i·a_rs + p·a_cs], b[p, j] =
// b[b_off + p·b_rs + j·b_cs], c[i, j] = c[i·c_rs + j]. The training GEMMs: linear's
// dx = dy·w, dw += dyᵀ·x, dbias += 1ᵀ·dy. Tiled like matmul.wgsl: a TILE×TILE block
// of c per workgroup, 4×4 per invocation, K_STEP columns of a staged at a time.
// Split-K: workgroups are spread over chunks of k_chunk of the reduction as well, chunk
// z writing its partial product at c[z·c_chunk + …] (the host then sums the chunks),
// so a long reduction (the head's dx sums over the vocabulary) runs in parallel.

const TILE: u32 = 64u;
const K_STEP: u32 = 16u;
const PER: u32 = 4u;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    a_off: u32,
    a_rs: u32,
    a_cs: u32,
    b_off: u32,
    b_rs: u32,
    b_cs: u32,
    c_rs: u32,
    accumulate: u32,
    tiles_n: u32,
    k_chunk: u32,
    c_chunk: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> a_tile: array<f32, TILE * K_STEP>;
var<workgroup> b_tile: array<f32, TILE * K_STEP>;

@compute @workgroup_size(WG)
fn main(inv: Invocation) {
    let tiles = ((p.m + TILE - 1u) / TILE) * p.tiles_n;
    let chunk = group_index(inv) / tiles;
    let g = group_index(inv) % tiles;
    let k_begin = chunk * p.k_chunk;
    if k_begin >= max(p.k, 1u) {
        return;
    }
    let k_end = min(p.k, k_begin + p.k_chunk);
    let row0 = (g / p.tiles_n) * TILE;
    let col0 = (g % p.tiles_n) * TILE;
    let tr = inv.lid / (TILE / PER);
    let tc = inv.lid % (TILE / PER);
    var acc: array<array<f32, PER>, PER>;
    for (var k0 = k_begin; k0 < k_end; k0 += K_STEP) {
        for (var i = 0u; i < TILE * K_STEP / WG; i++) {
            let e = inv.lid + i * WG;
            // Neighbouring invocations read neighbouring addresses: along k where that is
            // the unit stride, along the tile's rows / columns otherwise.
            let along_k = e % K_STEP;
            let along_tile = e / K_STEP;
            let a_r = select(e % TILE, along_tile, p.a_cs == 1u);
            let a_k = select(e / TILE, along_k, p.a_cs == 1u);
            var av = 0.0;
            if row0 + a_r < p.m && k0 + a_k < k_end {
                av = a[p.a_off + (row0 + a_r) * p.a_rs + (k0 + a_k) * p.a_cs];
            }
            a_tile[a_r * K_STEP + a_k] = av;
            let b_c = select(e % TILE, along_tile, p.b_rs == 1u);
            let b_k = select(e / TILE, along_k, p.b_rs == 1u);
            var bv = 0.0;
            if col0 + b_c < p.n && k0 + b_k < k_end {
                bv = b[p.b_off + (k0 + b_k) * p.b_rs + (col0 + b_c) * p.b_cs];
            }
            b_tile[b_c * K_STEP + b_k] = bv;
        }
        workgroupBarrier();
        for (var t = 0u; t < K_STEP; t++) {
            var av: array<f32, PER>;
            var bv: array<f32, PER>;
            for (var i = 0u; i < PER; i++) {
                av[i] = a_tile[(tr * PER + i) * K_STEP + t];
                bv[i] = b_tile[(tc * PER + i) * K_STEP + t];
            }
            for (var i = 0u; i < PER; i++) {
                for (var j = 0u; j < PER; j++) {
                    acc[i][j] += av[i] * bv[j];
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
                let at = chunk * p.c_chunk + row * p.c_rs + col;
                var base = 0.0;
                if p.accumulate != 0u {
                    base = c[at];
                }
                c[at] = base + acc[i][j];
            }
        }
    }
}
