// The embedding's gradient: invocation c adds column c of each row of dy into the row
// ids[t] of d_table, tokens in order, so repeated ids accumulate deterministically and
// without atomics. d_table is bound in windows of rows [row0, row0 + rows): ids outside
// the window are left to the window that holds them.

struct Params {
    dim: u32,
    n_ids: u32,
    row0: u32,
    rows: u32,
}

@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> d_table: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(inv: Invocation) {
    let c = group_index(inv) * WG + inv.lid;
    if c >= p.dim {
        return;
    }
    for (var t = 0u; t < p.n_ids; t++) {
        let id = ids[t];
        if id >= p.row0 && id < p.row0 + p.rows {
            let at = (id - p.row0) * p.dim + c;
            d_table[at] = d_table[at] + dy[t * p.dim + c];
        }
    }
}
