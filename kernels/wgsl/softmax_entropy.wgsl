// Single-pass softmax-entropy and self-certainty, one workgroup per row of logits
// (binding 0, any dtype): each invocation keeps an online (m, s, t′) state over a strided
// share of the row, with u = Σ (x − m) and the count n of the values it pushed (u is
// shifted by n·(m − m′) when its max moves to m′); the states are merged through
// workgroup reductions. Self-certainty = lse − mean x − log n = log s − u/n − log n,
// with u taken relative to the row max: no large numbers are subtracted. Rows holding
// NaN or +inf give NaN.

struct Params {
    rows: u32,
    cols: u32,
    inv_t: f32,
    row0: u32,
}

@group(0) @binding(1) var<storage, read_write> lse: array<f32>;
@group(0) @binding(2) var<storage, read_write> entropy: array<f32>;
@group(0) @binding(3) var<storage, read_write> certainty: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(inv: Invocation) {
    let r = group_index(inv);
    if r >= p.rows {
        return;
    }
    let base = r * p.cols;
    var st = online_new();
    var u = 0.0;
    var n = 0.0;
    var bad = 0.0;
    for (var c = inv.lid; c < p.cols; c += WG) {
        let z = load_src(base + c);
        if is_bad(z) {
            bad = 1.0;
        } else if !is_neg_inf(z) {
            let x = z * p.inv_t;
            if n > 0.0 && x > st.m {
                u += n * (st.m - x);
            }
            st = online_push(st, x);
            u += x - st.m;
            n += 1.0;
        }
    }
    let any_bad = wg_max(bad, inv);
    let res = online_finish_full(st, inv);
    let n_all = wg_sum(n, inv);
    let u_all = wg_sum(select(0.0, u + n * (st.m - res.m), n > 0.0), inv);
    if inv.lid == 0u {
        let out = p.row0 + r;
        if any_bad > 0.0 {
            lse[out] = bitcast<f32>(NAN_BITS);
            entropy[out] = bitcast<f32>(NAN_BITS);
            certainty[out] = bitcast<f32>(NAN_BITS);
        } else {
            lse[out] = res.lse;
            entropy[out] = res.h;
            var kl = 0.0;
            if n_all > 0.0 {
                kl = max(res.log_s - u_all / n_all - log(n_all), 0.0);
            }
            certainty[out] = kl;
        }
    }
}
