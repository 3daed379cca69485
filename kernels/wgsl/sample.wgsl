// Token sampling on the GPU, one workgroup per row of logits (binding 0, any dtype).
// Filters: banned ids (a bit mask), temperature, top-k, top-p, min-p; then an inverse
// CDF draw in id order with the row's uniform number u, which the host draws from the
// row's generator (so a seed reproduces a generation on every backend).
//
// No sort: top-k and top-p become thresholds on the logit, found by bisection on the
// order-preserving integer key of the float (32 counting passes each, exact).
// Output per row: status (0 ok, 1 NaN/+inf, 2 nothing left to sample), token, log-prob
// and entropy of softmax(z/T) over the unbanned tokens, before the other filters (T = 1
// when greedy); the entropy comes free with the log-sum-exp.

struct Params {
    rows: u32,
    cols: u32,
    inv_t: f32,
    greedy: u32,
    top_k: u32,
    top_p: f32,
    min_p: f32,
    has_banned: u32,
}

@group(0) @binding(1) var<storage, read> banned_bits: array<u32>;
@group(0) @binding(2) var<storage, read> uniforms: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> chunk_mass: array<f32, WG>;
var<workgroup> chosen_chunk: u32;
var<workgroup> chosen_rest: f32;

// Order-preserving map of finite floats to u32.
fn key(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// The scaled logit of column c, or LOWEST when c is masked or banned.
fn scaled(base: u32, c: u32) -> f32 {
    let z = load_src(base + c);
    if is_neg_inf(z) || is_bad(z) {
        return LOWEST;
    }
    if p.has_banned != 0u && ((banned_bits[c >> 5u] >> (c & 31u)) & 1u) == 1u {
        return LOWEST;
    }
    return z * p.inv_t;
}

fn usable(x: f32) -> bool {
    return x > LOWEST;
}

// Tokens with key ≥ k: (count, Σ e^{x − m}).
fn above(base: u32, k: u32, m: f32, inv: Invocation) -> vec2<f32> {
    var n = 0.0;
    var mass = 0.0;
    for (var c = inv.lid; c < p.cols; c += WG) {
        let x = scaled(base, c);
        if usable(x) && key(x) >= k {
            n += 1.0;
            mass += exp(x - m);
        }
    }
    return vec2<f32>(wg_sum(n, inv), wg_sum(mass, inv));
}

fn finish(row: u32, status: u32, token: u32, logprob: f32, entropy: f32, inv: Invocation) {
    if inv.lid == 0u {
        out[4u * row] = status;
        out[4u * row + 1u] = token;
        out[4u * row + 2u] = bitcast<u32>(logprob);
        out[4u * row + 3u] = bitcast<u32>(entropy);
    }
}

@compute @workgroup_size(WG)
fn main(inv: Invocation) {
    let r = group_index(inv);
    if r >= p.rows {
        return;
    }
    let base = r * p.cols;
    var st = online_new();
    var bad = 0.0;
    var best_x = LOWEST;
    var best_c = p.cols;
    for (var c = inv.lid; c < p.cols; c += WG) {
        if is_bad(load_src(base + c)) {
            bad = 1.0;
        }
        let x = scaled(base, c);
        if usable(x) {
            st = online_push(st, x);
            if x > best_x {
                best_x = x;
                best_c = c;
            }
        }
    }
    let any_bad = wg_max(bad, inv);
    let lse_h = online_finish(st, inv);
    let lse = lse_h.x;
    let m = wg_max(best_x, inv);
    // Lowest column holding the maximum: the argmax, first on ties.
    let first = -wg_max(select(-f32(p.cols), -f32(best_c), best_x == m && best_c < p.cols), inv);
    let argmax = u32(first);
    if any_bad > 0.0 {
        finish(r, 1u, 0u, 0.0, 0.0, inv);
        return;
    }
    if is_neg_inf(lse) {
        finish(r, 2u, 0u, 0.0, 0.0, inv);
        return;
    }
    if p.greedy != 0u {
        finish(r, 0u, argmax, m - lse, lse_h.y, inv);
        return;
    }
    // Threshold key: every kept token has key(x) ≥ floor_key.
    var floor_key = 0u;
    if p.top_k > 0u {
        // Largest k with count(key ≥ k) ≥ top_k.
        var lo = 0u;
        var hi = 0xffffffffu;
        while lo < hi {
            let mid = lo + (hi - lo) / 2u + 1u;
            if above(base, mid, m, inv).x >= f32(p.top_k) {
                lo = mid;
            } else {
                hi = mid - 1u;
            }
        }
        floor_key = lo;
    }
    if p.top_p < 1.0 {
        // Largest k whose head {key ≥ k} holds top_p of the candidates' mass.
        let want = p.top_p * above(base, floor_key, m, inv).y;
        var lo = floor_key;
        var hi = 0xffffffffu;
        while lo < hi {
            let mid = lo + (hi - lo) / 2u + 1u;
            if above(base, mid, m, inv).y >= want {
                lo = mid;
            } else {
                hi = mid - 1u;
            }
        }
        floor_key = lo;
    }
    // min-p: e^{x−m} ≥ min_p, i.e. x ≥ m + ln(min_p).
    var min_x = LOWEST;
    if p.min_p > 0.0 {
        min_x = m + log(p.min_p);
    }
    // Inverse CDF in id order: contiguous chunks, chunk masses scanned by one invocation,
    // then the chosen chunk walked by its owner.
    let chunk = (p.cols + WG - 1u) / WG;
    let c0 = min(inv.lid * chunk, p.cols);
    let c1 = min(c0 + chunk, p.cols);
    var mass = 0.0;
    for (var c = c0; c < c1; c++) {
        let x = scaled(base, c);
        if usable(x) && key(x) >= floor_key && x >= min_x {
            mass += exp(x - m);
        }
    }
    chunk_mass[inv.lid] = mass;
    workgroupBarrier();
    if inv.lid == 0u {
        var total = 0.0;
        for (var j = 0u; j < WG; j++) {
            total += chunk_mass[j];
        }
        var target_mass = uniforms[r] * total;
        var pick = WG;
        var last = 0u;
        for (var j = 0u; j < WG; j++) {
            if chunk_mass[j] > 0.0 {
                last = j;
                if pick == WG {
                    if target_mass < chunk_mass[j] {
                        pick = j;
                    } else {
                        target_mass -= chunk_mass[j];
                    }
                }
            }
        }
        if pick == WG {
            // Rounding left u just above the total: the last kept token.
            pick = last;
            target_mass = chunk_mass[last];
        }
        chosen_chunk = pick;
        chosen_rest = target_mass;
    }
    workgroupBarrier();
    if inv.lid == chosen_chunk {
        var acc = 0.0;
        var token = c0;
        for (var c = c0; c < c1; c++) {
            let x = scaled(base, c);
            if usable(x) && key(x) >= floor_key && x >= min_x {
                acc += exp(x - m);
                token = c;
                if chosen_rest < acc {
                    break;
                }
            }
        }
        out[4u * r] = 0u;
        out[4u * r + 1u] = token;
        out[4u * r + 2u] = bitcast<u32>(scaled(base, token) - lse);
        out[4u * r + 3u] = bitcast<u32>(lse_h.y);
    }
}
