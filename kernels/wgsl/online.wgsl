// Online softmax-entropy of one invocation's share of a row (docs/methods.md,
// "Online softmax-entropy"):
// running max m, s = Σ e^{x−m}, t = Σ e^{x−m}(x−m); lse = m + log s, H = log s − t/s.
// Callers skip masked values, so every argument here is finite.

struct Online {
    m: f32,
    s: f32,
    t: f32,
}

fn online_new() -> Online {
    return Online(LOWEST, 0.0, 0.0);
}

fn online_push(st: Online, x: f32) -> Online {
    var o = st;
    if o.s == 0.0 {
        o.m = x;
    } else if x > o.m {
        let d = o.m - x;
        let c = exp(d);
        o.t = c * (o.t + d * o.s);
        o.s = c * o.s;
        o.m = x;
    }
    let d = x - o.m;
    let e = exp(d);
    o.s += e;
    o.t += e * d;
    return o;
}

// The whole workgroup's row, the same in every invocation: lse, H, the row max m and
// log s = lse − m (exact, where lse − m would round). A row with nothing pushed (all
// masked, or empty) gives lse = −inf (NEG_INF_BITS), H = 0, log s = 0 and m = LOWEST.
struct Finished {
    lse: f32,
    h: f32,
    m: f32,
    log_s: f32,
}

fn online_finish_full(st: Online, inv: Invocation) -> Finished {
    let m = wg_max(select(LOWEST, st.m, st.s > 0.0), inv);
    var s = 0.0;
    var t = 0.0;
    if st.s > 0.0 {
        let d = st.m - m;
        let c = exp(d);
        s = c * st.s;
        t = c * (st.t + d * st.s);
    }
    let s_total = wg_sum(s, inv);
    let t_total = wg_sum(t, inv);
    if s_total == 0.0 {
        return Finished(bitcast<f32>(NEG_INF_BITS), 0.0, m, 0.0);
    }
    let log_s = log(s_total);
    // Rounding can leave a tiny negative H on one-hot rows.
    return Finished(m + log_s, max(log_s - t_total / s_total, 0.0), m, log_s);
}

// (lse, H) of the whole workgroup's row, as online_finish_full.
fn online_finish(st: Online, inv: Invocation) -> vec2<f32> {
    let f = online_finish_full(st, inv);
    return vec2<f32>(f.lse, f.h);
}
