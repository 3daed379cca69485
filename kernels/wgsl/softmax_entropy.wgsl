// Single-pass softmax-entropy, one workgroup per row of logits (binding 0, any dtype):
// each invocation keeps an online (m, s, t′) state over a strided share of the row, the
// states are merged through two workgroup reductions. Rows holding NaN or +inf give NaN.

struct Params {
    rows: u32,
    cols: u32,
    inv_t: f32,
    row0: u32,
}

@group(0) @binding(1) var<storage, read_write> lse: array<f32>;
@group(0) @binding(2) var<storage, read_write> entropy: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(inv: Invocation) {
    let r = group_index(inv);
    if r >= p.rows {
        return;
    }
    let base = r * p.cols;
    var st = online_new();
    var bad = 0.0;
    for (var c = inv.lid; c < p.cols; c += WG) {
        let z = load_src(base + c);
        if is_bad(z) {
            bad = 1.0;
        } else if !is_neg_inf(z) {
            st = online_push(st, z * p.inv_t);
        }
    }
    let any_bad = wg_max(bad, inv);
    let res = online_finish(st, inv);
    if inv.lid == 0u {
        let out = p.row0 + r;
        if any_bad > 0.0 {
            lse[out] = bitcast<f32>(NAN_BITS);
            entropy[out] = bitcast<f32>(NAN_BITS);
        } else {
            lse[out] = res.x;
            entropy[out] = res.y;
        }
    }
}
