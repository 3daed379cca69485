// Workgroup reductions with subgroup operations: one subgroupAdd / subgroupMax, then
// the per-subgroup results combined through workgroup memory. The subgroup size is
// whatever the adapter runs (4 to 128), never assumed.

struct Invocation {
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(num_subgroups) sg_count: u32,
}

var<workgroup> reduce_buf: array<f32, WG>;

fn across_subgroups(part: f32, inv: Invocation, is_max: bool) -> f32 {
    workgroupBarrier();
    if inv.sg_lane == 0u {
        reduce_buf[inv.sg_id] = part;
    }
    workgroupBarrier();
    if inv.lid == 0u {
        var acc = reduce_buf[0];
        for (var i = 1u; i < inv.sg_count; i++) {
            acc = combine(acc, reduce_buf[i], is_max);
        }
        reduce_result = acc;
    }
    return workgroupUniformLoad(&reduce_result);
}

fn wg_sum(x: f32, inv: Invocation) -> f32 {
    return across_subgroups(subgroupAdd(x), inv, false);
}

fn wg_max(x: f32, inv: Invocation) -> f32 {
    return across_subgroups(subgroupMax(x), inv, true);
}
