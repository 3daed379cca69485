// log p(target) of each row under softmax(z·inv_t): z[r, target]·inv_t − lse[r], one
// invocation per row; −inf (as bits) for a masked target. Logits of any storage dtype
// (binding 0), bound in windows of rows starting at row0.

struct Params {
    rows: u32,
    cols: u32,
    inv_t: f32,
    row0: u32,
}

@group(0) @binding(1) var<storage, read> lse: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(inv: Invocation) {
    let r = group_index(inv) * WG + inv.lid;
    if r >= p.rows {
        return;
    }
    let row = p.row0 + r;
    let z = load_src(r * p.cols + targets[row]);
    var bits = NEG_INF_BITS;
    if !is_neg_inf(z) && !is_neg_inf(lse[row]) {
        bits = bitcast<u32>(fma(z, p.inv_t, -lse[row]));
    }
    out[row] = bits;
}
