// ∂H/∂z of H(softmax(z/T)), scaled by the row's upstream gradient:
// −(1/T)·p_i·(x_i − Σ p x) with x = z/T and Σ p x = lse − H from the forward pass;
// with has_logp, also the policy-gradient term of d_logp[r]·log p(targets[r]):
// (1/T)·d_logp·(1[i = target] − p_i). Masked logits and fully masked rows get a zero
// gradient.

struct Params {
    rows: u32,
    cols: u32,
    inv_t: f32,
    row0: u32,
    has_logp: u32,
}

@group(0) @binding(1) var<storage, read> lse: array<f32>;
@group(0) @binding(2) var<storage, read> entropy: array<f32>;
@group(0) @binding(3) var<storage, read> upstream: array<f32>;
@group(0) @binding(4) var<storage, read> targets: array<u32>;
@group(0) @binding(5) var<storage, read> d_logp: array<f32>;
@group(0) @binding(6) var<storage, read_write> grad: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(inv: Invocation) {
    let e = group_index(inv) * WG + inv.lid;
    if e >= p.rows * p.cols {
        return;
    }
    let r = p.row0 + e / p.cols;
    let l = lse[r];
    let z = load_src(e);
    var g = 0.0;
    if !is_neg_inf(l) && !is_neg_inf(z) {
        let x = z * p.inv_t;
        let prob = exp(x - l);
        if prob > 0.0 {
            g = -p.inv_t * upstream[r] * prob * (x - (l - entropy[r]));
        }
        if p.has_logp != 0u {
            g += p.inv_t * d_logp[r] * (select(0.0, 1.0, e % p.cols == targets[r]) - prob);
        }
    }
    grad[e] = g;
}
