// Workgroup reductions through workgroup memory: a tree over WG slots. Used when the
// adapter has no SUBGROUP feature, or when the fallback is forced.

struct Invocation {
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
}

var<workgroup> reduce_buf: array<f32, WG>;

fn reduce_tree(x: f32, inv: Invocation, is_max: bool) -> f32 {
    workgroupBarrier();
    reduce_buf[inv.lid] = x;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if inv.lid < s {
            reduce_buf[inv.lid] = combine(reduce_buf[inv.lid], reduce_buf[inv.lid + s], is_max);
        }
        workgroupBarrier();
    }
    if inv.lid == 0u {
        reduce_result = reduce_buf[0];
    }
    return workgroupUniformLoad(&reduce_result);
}

fn wg_sum(x: f32, inv: Invocation) -> f32 {
    return reduce_tree(x, inv, false);
}

fn wg_max(x: f32, inv: Invocation) -> f32 {
    return reduce_tree(x, inv, true);
}
