// The whole EM-INF loop for one row in one workgroup (docs/methods.md, "EM-INF"): Adam on z′
// minimising H(softmax(z′)) + λ·KL(softmax(z) ‖ softmax(z′)), at most max_steps steps,
// stopping once H < threshold. z′ lives in the output row, the Adam moments in the
// row's scratch (m then v), the original logits stay at binding 0. Each step is one
// pass: gradient and update per element, feeding the online entropy of the new z′.
//
// ∂/∂z′_i = −q_i (z′_i − Σ q z′) + λ (q_i − p_i), Σ q z′ = lse − H.

struct Params {
    rows: u32,
    cols: u32,
    threshold: f32,
    lr: f32,
    max_steps: u32,
    kl_weight: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    row0: u32,
}

@group(0) @binding(1) var<storage, read_write> z: array<f32>;
@group(0) @binding(2) var<storage, read_write> moments: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(inv: Invocation) {
    let r = group_index(inv);
    if r >= p.rows {
        return;
    }
    let base = r * p.cols;
    let m_base = 2u * base;
    let v_base = m_base + p.cols;
    var st = online_new();
    var bad = 0.0;
    for (var c = inv.lid; c < p.cols; c += WG) {
        let z0 = load_src(base + c);
        z[base + c] = z0;
        moments[m_base + c] = 0.0;
        moments[v_base + c] = 0.0;
        if is_bad(z0) {
            bad = 1.0;
        } else if !is_neg_inf(z0) {
            st = online_push(st, z0);
        }
    }
    let any_bad = wg_max(bad, inv);
    let start = online_finish(st, inv);
    let lse0 = start.x;
    var lse = start.x;
    var h = start.y;
    var steps = 0u;
    if any_bad == 0.0 && !is_neg_inf(lse0) {
        while steps < p.max_steps && h >= p.threshold {
            steps += 1u;
            let t = f32(steps);
            let step = p.lr / (1.0 - pow(p.beta1, t));
            let inv_sqrt_bc2 = 1.0 / sqrt(1.0 - pow(p.beta2, t));
            let mean = lse - h;
            st = online_new();
            for (var c = inv.lid; c < p.cols; c += WG) {
                var x = z[base + c];
                if !is_neg_inf(x) {
                    let q = exp(x - lse);
                    var g = 0.0;
                    if q > 0.0 {
                        g = -q * (x - mean) + p.kl_weight * (q - exp(load_src(base + c) - lse0));
                    }
                    let m = p.beta1 * moments[m_base + c] + (1.0 - p.beta1) * g;
                    let v = p.beta2 * moments[v_base + c] + (1.0 - p.beta2) * g * g;
                    moments[m_base + c] = m;
                    moments[v_base + c] = v;
                    x -= step * m / (sqrt(v) * inv_sqrt_bc2 + p.eps);
                    z[base + c] = x;
                    st = online_push(st, x);
                }
            }
            let res = online_finish(st, inv);
            lse = res.x;
            h = res.y;
        }
    }
    if inv.lid == 0u {
        let out = 3u * (p.row0 + r);
        stats[out] = f32(steps);
        stats[out + 1u] = select(start.y, bitcast<f32>(NAN_BITS), any_bad > 0.0);
        stats[out + 2u] = h;
    }
}
