// Causal grouped-query attention over the KV cache, one workgroup per (query row, head).
// Keys are visited in tiles of WG with an online softmax (running max and sum), so any
// context length runs in fixed workgroup memory; invocation d accumulates output
// dimension d (head_dim ≤ WG).

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
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> q_row: array<f32, WG>;
var<workgroup> probs: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(inv: Invocation) {
    let g = group_index(inv);
    if g >= p.q_rows * p.n_heads {
        return;
    }
    let i = g / p.n_heads;
    let h = g % p.n_heads;
    let q_dim = p.n_heads * p.head_dim;
    let kv_off = (h / p.group) * p.head_dim;
    if inv.lid < p.head_dim {
        q_row[inv.lid] = q[i * q_dim + h * p.head_dim + inv.lid];
    }
    workgroupBarrier();
    let n_keys = p.start_pos + i + 1u;
    var m = LOWEST;
    var l = 0.0;
    var acc = 0.0;
    for (var tile = 0u; tile < n_keys; tile += WG) {
        let j = tile + inv.lid;
        var score = LOWEST;
        if j < n_keys {
            var dot = 0.0;
            let kb = j * p.kv_dim + kv_off;
            for (var d = 0u; d < p.head_dim; d++) {
                dot += q_row[d] * k_cache[kb + d];
            }
            score = dot * p.scale;
        }
        let m_new = max(m, wg_max(score, inv));
        var w = 0.0;
        if j < n_keys {
            w = exp(score - m_new);
        }
        probs[inv.lid] = w;
        let tile_sum = wg_sum(w, inv);
        let correction = exp(m - m_new);
        l = l * correction + tile_sum;
        if inv.lid < p.head_dim {
            var o = 0.0;
            let n = min(WG, n_keys - tile);
            for (var jj = 0u; jj < n; jj++) {
                o += probs[jj] * v_cache[(tile + jj) * p.kv_dim + kv_off + inv.lid];
            }
            acc = acc * correction + o;
        }
        m = m_new;
        workgroupBarrier();
    }
    if inv.lid < p.head_dim {
        out[i * q_dim + h * p.head_dim + inv.lid] = acc / l;
    }
}
