// The backward of causal GQA attention for the cached keys and values, one workgroup
// per (cache row j, kv head): over the (query row i, head h of the group) pairs that
// see key j (start_pos + i ≥ j), in tiles of WG pairs, invocation e computes its pair's
// p = exp(scale·q_ih·k_j − lse_ih) and ds = p·(dout_ih·v_j − δ_ih) (lse and δ from
// attention_backward_query), then invocation d adds Σ p·dout_ih[d] into dv and
// scale·Σ ds·q_ih[d] into dk. Rows no query sees get zeros.

struct Params {
    q_rows: u32,
    n_heads: u32,
    group: u32,
    head_dim: u32,
    kv_dim: u32,
    start_pos: u32,
    scale: f32,
    kv_rows: u32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k_cache: array<f32>;
@group(0) @binding(2) var<storage, read> v_cache: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read> stats: array<f32>;
@group(0) @binding(5) var<storage, read_write> dk: array<f32>;
@group(0) @binding(6) var<storage, read_write> dv: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

var<workgroup> k_row: array<f32, WG>;
var<workgroup> v_row: array<f32, WG>;
var<workgroup> probs: array<f32, WG>;
var<workgroup> ds: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(inv: Invocation) {
    let n_kv_heads = p.n_heads / p.group;
    let wg = group_index(inv);
    if wg >= p.kv_rows * n_kv_heads {
        return;
    }
    let j = wg / n_kv_heads;
    let kv_head = wg % n_kv_heads;
    let kv_at = j * p.kv_dim + kv_head * p.head_dim;
    if inv.lid < p.head_dim {
        k_row[inv.lid] = k_cache[kv_at + inv.lid];
        v_row[inv.lid] = v_cache[kv_at + inv.lid];
    }
    workgroupBarrier();
    // The first query row that sees key j, and how many (row, head) pairs do.
    let first = max(j, p.start_pos) - p.start_pos;
    var pairs = 0u;
    if j < p.start_pos + p.q_rows {
        pairs = (p.q_rows - first) * p.group;
    }
    let q_dim = p.n_heads * p.head_dim;
    var dk_acc = 0.0;
    var dv_acc = 0.0;
    for (var tile = 0u; tile < pairs; tile += WG) {
        let e = tile + inv.lid;
        var pr = 0.0;
        var d_s = 0.0;
        if e < pairs {
            let i = first + e / p.group;
            let h = kv_head * p.group + e % p.group;
            let at = i * q_dim + h * p.head_dim;
            var qk = 0.0;
            var dov = 0.0;
            for (var d = 0u; d < p.head_dim; d++) {
                qk += q[at + d] * k_row[d];
                dov += dout[at + d] * v_row[d];
            }
            let s = (i * p.n_heads + h) * 2u;
            pr = exp(qk * p.scale - stats[s]);
            d_s = pr * (dov - stats[s + 1u]);
        }
        probs[inv.lid] = pr;
        ds[inv.lid] = d_s;
        workgroupBarrier();
        if inv.lid < p.head_dim {
            let n = min(WG, pairs - tile);
            for (var ee = 0u; ee < n; ee++) {
                let i = first + (tile + ee) / p.group;
                let h = kv_head * p.group + (tile + ee) % p.group;
                let at = i * q_dim + h * p.head_dim + inv.lid;
                dv_acc += probs[ee] * dout[at];
                dk_acc += ds[ee] * q[at];
            }
        }
        workgroupBarrier();
    }
    if inv.lid < p.head_dim {
        dk[kv_at + inv.lid] = dk_acc * p.scale;
        dv[kv_at + inv.lid] = dv_acc;
    }
}
