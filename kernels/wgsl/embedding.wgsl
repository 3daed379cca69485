// Gather rows of the table (binding 0, any dtype) for token ids. Large tables are bound
// in windows of rows [row_start, row_start + row_count); each window's dispatch writes
// the ids that fall inside it.

struct Params {
    dim: u32,
    n_ids: u32,
    row_start: u32,
    row_count: u32,
}

@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(inv: Invocation) {
    let e = group_index(inv) * WG + inv.lid;
    if e >= p.n_ids * p.dim {
        return;
    }
    let id = ids[e / p.dim];
    if id < p.row_start || id >= p.row_start + p.row_count {
        return;
    }
    out[e] = load_src((id - p.row_start) * p.dim + e % p.dim);
}
