// The backward of causal GQA attention for the queries, one workgroup per (query row i,
// head h), with p_j = softmax_j(scale·q·k_j) over keys j ≤ start_pos + i and
// dp_j = dout·v_j. Pass 1 (online over key tiles of WG, as attention.wgsl) finds the
// row's lse and δ = Σ_j p_j·dp_j; pass 2 recomputes the exact p_j and accumulates
// dq = scale·Σ_j p_j·(dp_j − δ)·k_j. Both passes run in fixed workgroup memory, and
// (lse, δ) go to stats for attention_backward_kv.

struct Params {
    q_rows: u32,
    n_heads: u32,
    group: u32,
    head_dim: u32,
    kv_dim: u32,
    start_pos: u32,
    scale: f32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k_cache: array<f32>;
@group(0) @binding(2) var<storage, read> v_cache: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> dq: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

var<workgroup> q_row: array<f32, WG>;
var<workgroup> dout_row: array<f32, WG>;
var<workgroup> ds: array<f32, WG>;

// (scaled score, dout·v) of key j for this workgroup's row and head.
fn score_and_dp(j: u32, kv_off: u32) -> vec2<f32> {
    var qk = 0.0;
    var dv = 0.0;
    let base = j * p.kv_dim + kv_off;
    for (var d = 0u; d < p.head_dim; d++) {
        qk += q_row[d] * k_cache[base + d];
        dv += dout_row[d] * v_cache[base + d];
    }
    return vec2<f32>(qk * p.scale, dv);
}

@compute @workgroup_size(WG)
fn main(inv: Invocation) {
    let g = group_index(inv);
    if g >= p.q_rows * p.n_heads {
        return;
    }
    let i = g / p.n_heads;
    let h = g % p.n_heads;
    let row_off = i * p.n_heads * p.head_dim + h * p.head_dim;
    let kv_off = (h / p.group) * p.head_dim;
    if inv.lid < p.head_dim {
        q_row[inv.lid] = q[row_off + inv.lid];
        dout_row[inv.lid] = dout[row_off + inv.lid];
    }
    workgroupBarrier();
    let n_keys = p.start_pos + i + 1u;
    var m = LOWEST;
    var l = 0.0;
    var weighted_dp = 0.0;
    for (var tile = 0u; tile < n_keys; tile += WG) {
        let j = tile + inv.lid;
        var sd = vec2<f32>(LOWEST, 0.0);
        if j < n_keys {
            sd = score_and_dp(j, kv_off);
        }
        let m_new = max(m, wg_max(sd.x, inv));
        var w = 0.0;
        if j < n_keys {
            w = exp(sd.x - m_new);
        }
        let correction = exp(m - m_new);
        l = l * correction + wg_sum(w, inv);
        weighted_dp = weighted_dp * correction + wg_sum(w * sd.y, inv);
        m = m_new;
    }
    let lse = m + log(l);
    let delta = weighted_dp / l;
    var acc = 0.0;
    for (var tile = 0u; tile < n_keys; tile += WG) {
        let j = tile + inv.lid;
        var v = 0.0;
        if j < n_keys {
            let sd = score_and_dp(j, kv_off);
            v = exp(sd.x - lse) * (sd.y - delta);
        }
        ds[inv.lid] = v;
        workgroupBarrier();
        if inv.lid < p.head_dim {
            let n = min(WG, n_keys - tile);
            for (var jj = 0u; jj < n; jj++) {
                acc += ds[jj] * k_cache[(tile + jj) * p.kv_dim + kv_off + inv.lid];
            }
        }
        workgroupBarrier();
    }
    if inv.lid < p.head_dim {
        dq[row_off + inv.lid] = acc * p.scale;
    }
    if inv.lid == 0u {
        stats[g * 2u] = lse;
        stats[g * 2u + 1u] = delta;
    }
}
