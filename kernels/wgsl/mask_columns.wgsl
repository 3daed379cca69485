// Set the listed columns of every row to −inf (tokens that must never be chosen).

struct Params {
    rows: u32,
    cols: u32,
    n_ids: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(inv: Invocation) {
    let e = group_index(inv) * WG + inv.lid;
    if e >= p.rows * p.n_ids {
        return;
    }
    x[(e / p.n_ids) * p.cols + ids[e % p.n_ids]] = bitcast<f32>(NEG_INF_BITS);
}
