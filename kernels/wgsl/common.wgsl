// Prepended by the host to every entmin WGSL kernel, followed by one of
// reduce_subgroup.wgsl / reduce_shared.wgsl, then (for kernels reading a tensor of any
// storage dtype at binding 0) one of load_f32 / load_f16 / load_bf16, then the kernel.
//
// The −inf sentinel. WGSL lets an implementation assume that floats are finite, so no
// kernel ever computes with −inf: a masked logit is recognised by its bit pattern
// (is_neg_inf) and skipped, and a kernel that must produce −inf writes NEG_INF_BITS.
// Running maxima start at LOWEST (−FLT_MAX), never at −inf.

const WG: u32 = 256u;
const NEG_INF_BITS: u32 = 0xff800000u;
const NAN_BITS: u32 = 0x7fc00000u;
const LOWEST: f32 = -3.4028235e38;

fn is_neg_inf(x: f32) -> bool {
    return bitcast<u32>(x) == NEG_INF_BITS;
}

// NaN or +inf, tested on the bits so that fast-math cannot fold it away.
fn is_bad(x: f32) -> bool {
    let b = bitcast<u32>(x);
    return (b & 0x7fffffffu) >= 0x7f800000u && b != NEG_INF_BITS;
}

// Index of this workgroup when the host spreads a large grid over x and y.
fn group_index(inv: Invocation) -> u32 {
    return inv.wid.y * inv.groups.x + inv.wid.x;
}

fn combine(a: f32, b: f32, is_max: bool) -> f32 {
    return select(a + b, max(a, b), is_max);
}

// The value every invocation of the workgroup gets back from a reduction; read with
// workgroupUniformLoad so that loops on it count as uniform control flow.
var<workgroup> reduce_result: f32;
