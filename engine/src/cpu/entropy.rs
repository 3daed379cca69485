//! Fused single-pass softmax-entropy (docs/methods.md, "Online softmax-entropy").
//!
//! Per row we keep the running max m, s = Σ e^{x−m} and t′ = Σ e^{x−m}(x−m) and
//! finish with lse = m + log s, H = log s − t′/s. The row is walked in blocks of
//! `BLOCK` elements: the block max is found first (the block is then in L1, so
//! memory is still read once), the accumulators are rescaled at most once per
//! block, and the block's exponentials run through a vectorised exp.
//!
//! A row is reduced as a fixed sequence of `SEGMENT`-element segments whose states are
//! merged left to right. The segments of one row can run on different threads (a
//! decode step has one 152k-logit row and two or more cores), and because neither the
//! cut nor the merge order depends on the thread count or on how many rows the call
//! holds, a row's lse and entropy are the same bits in every call.

use rayon::prelude::*;

use super::simd::{exp_f32, prefetch_range, vectorized, Element, LANES};
use super::{dims2, output, CpuStorage, CpuTensor};
use crate::{EngineError, Result};

pub const BLOCK: usize = 512;

/// How many blocks ahead [`segment_state`] prefetches: one block's exponentials take
/// longer than a memory access, so two keeps the next loads in flight.
pub const PREFETCH_BLOCKS: usize = 2;

/// Elements per independently reduced segment: ~19 segments in a 152k row, so two to
/// eight threads stay balanced, and ~10 µs of work each, far above a rayon task's cost.
pub const SEGMENT: usize = 8192;

/// Running state of the online algorithm; `m = −inf` means nothing seen yet, NaN in
/// `s` that the row held NaN.
#[derive(Clone, Copy, Debug)]
pub struct Online {
    m: f32,
    s: f32,
    t: f32,
}

impl Online {
    pub const EMPTY: Online = Online { m: f32::NEG_INFINITY, s: 0.0, t: 0.0 };
    const NAN: Online = Online { m: f32::NAN, s: f32::NAN, t: f32::NAN };

    /// The state of two disjoint parts of a row together.
    pub fn merge(mut self, mut other: Online) -> Online {
        if self.s.is_nan() || other.s.is_nan() {
            return Online::NAN;
        }
        if other.m == f32::NEG_INFINITY {
            return self;
        }
        if self.m == f32::NEG_INFINITY {
            return other;
        }
        let m = self.m.max(other.m);
        self.rescale(m);
        other.rescale(m);
        Online { m, s: self.s + other.s, t: self.t + other.t }
    }

    /// Move the reference point to `m_new` ≥ m: c = e^{m−m′}; t′ ← c(t′ + (m−m′)s); s ← cs.
    #[inline(always)]
    fn rescale(&mut self, m_new: f32) {
        if self.m == f32::NEG_INFINITY {
            self.m = m_new;
            return;
        }
        let d = self.m - m_new;
        let c = d.exp();
        self.t = c * (self.t + d * self.s);
        self.s *= c;
        self.m = m_new;
    }

    /// (lse, entropy).
    pub fn finish(self) -> (f32, f32) {
        if self.m == f32::NEG_INFINITY || self.s == 0.0 {
            // Every logit −inf (fully masked row) or an empty row.
            return (f32::NEG_INFINITY, 0.0);
        }
        let log_s = self.s.ln();
        let h = log_s - self.t / self.s;
        // Rounding can leave a tiny negative H for one-hot rows; NaN must stay NaN.
        (self.m + log_s, if h < 0.0 { 0.0 } else { h })
    }
}

/// (lse, entropy) of softmax(row · inv_temperature), the row's segments spread over
/// rayon's threads. NaN in the row gives NaN.
pub fn softmax_entropy_row<E: Element>(row: &[E], inv_temperature: f32) -> (f32, f32) {
    row_state_parallel(row, inv_temperature).finish()
}

/// The state of a whole row of `row · inv_temperature` from the states of its
/// `SEGMENT`-element segments, computed on rayon's threads and merged in row order.
pub fn row_state_parallel<E: Element>(row: &[E], inv_temperature: f32) -> Online {
    if row.len() <= SEGMENT {
        return vectorized!(segment_state(row, inv_temperature));
    }
    let parts: Vec<Online> = row.par_chunks(SEGMENT).map(|s| vectorized!(segment_state(s, inv_temperature))).collect();
    merge_in_order(parts)
}

/// Left-to-right merge: the one order every caller uses.
pub fn merge_in_order(parts: impl IntoIterator<Item = Online>) -> Online {
    parts.into_iter().fold(Online::EMPTY, Online::merge)
}

/// Σ x and the count of the finite x of a segment, gathered in the walk that builds its
/// online state: the row mean self-certainty needs. In f64, so that neither a huge
/// logit nor 152k terms cost digits.
#[derive(Clone, Copy, Debug, Default)]
pub struct FiniteSum {
    sum: f64,
    n: usize,
}

/// The online state of one segment (at most `SEGMENT` elements) of `row · inv_temperature`.
#[inline(always)]
pub fn segment_state<E: Element>(row: &[E], inv_temperature: f32) -> Online {
    segment_walk::<E, false>(row, inv_temperature).0
}

/// [`segment_state`], and with `SUM` the segment's [`FiniteSum`] from the same walk.
#[inline(always)]
fn segment_walk<E: Element, const SUM: bool>(row: &[E], inv_temperature: f32) -> (Online, FiniteSum) {
    debug_assert!(row.len() <= SEGMENT);
    let mut st = Online::EMPTY;
    let mut finite = FiniteSum::default();
    let mut buf = [0f32; BLOCK];
    for (i, block) in row.chunks(BLOCK).enumerate() {
        prefetch_range(row, (i + PREFETCH_BLOCKS) * BLOCK, BLOCK);
        let xs = &mut buf[..block.len()];
        for (x, z) in xs.iter_mut().zip(block) {
            *x = z.to_f32() * inv_temperature;
        }
        if SUM {
            for &x in xs.iter().filter(|x| x.is_finite()) {
                finite.sum += x as f64;
                finite.n += 1;
            }
        }
        // `max` ignores NaN, so NaN is caught below through the sums instead.
        let block_max = lane_max(xs);
        if block_max == f32::NEG_INFINITY {
            if xs.iter().any(|x| x.is_nan()) {
                return (Online::NAN, finite);
            }
            continue;
        }
        if block_max > st.m {
            st.rescale(block_max);
        }
        let (s, t) = exp_sums(xs, st.m);
        st.s += s;
        st.t += t;
    }
    (st, finite)
}

/// (lse, entropy, self-certainty) of softmax(row · inv_temperature) in one walk of the
/// row (see `Backend::softmax_entropy_certainty`), its segments on rayon's threads.
pub fn softmax_entropy_certainty_row<E: Element>(row: &[E], inv_temperature: f32) -> (f32, f32, f32) {
    let parts: Vec<(Online, FiniteSum)> = if row.len() <= SEGMENT {
        vec![vectorized!(segment_walk::<E, true>(row, inv_temperature))]
    } else {
        row.par_chunks(SEGMENT).map(|s| vectorized!(segment_walk::<E, true>(s, inv_temperature))).collect()
    };
    let st = merge_in_order(parts.iter().map(|p| p.0));
    let (sum, n) = parts.iter().fold((0f64, 0usize), |(sum, n), p| (sum + p.1.sum, n + p.1.n));
    let (lse, h) = st.finish();
    let certainty = if lse.is_nan() || h.is_nan() {
        f32::NAN
    } else if n == 0 || lse == f32::NEG_INFINITY {
        0.0
    } else {
        // lse − mean x = log s − (mean x − m): both terms stay small whatever the logits'
        // offset, where lse − mean x would subtract two large numbers.
        let c = (st.s as f64).ln() - (sum / n as f64 - st.m as f64) - (n as f64).ln();
        c.max(0.0) as f32
    };
    (lse, h, certainty)
}

/// Largest element, NaN ignored, with LANES independent maxima so the loop vectorises.
/// A compare-and-select is one `maxps`; `f32::max` adds a NaN fix-up to every lane.
#[inline(always)]
fn lane_max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            acc[l] = if c[l] > acc[l] { c[l] } else { acc[l] };
        }
    }
    chunks.remainder().iter().fold(acc.iter().copied().fold(f32::NEG_INFINITY, f32::max), |m, &x| m.max(x))
}

/// (Σ e^{x−m}, Σ e^{x−m}(x−m)); masked logits (x = −inf) contribute 0 to both,
/// never 0·(−inf).
#[inline(always)]
fn exp_sums(xs: &[f32], m: f32) -> (f32, f32) {
    let term = |x: f32| {
        let d = x - m;
        let e = exp_f32(d);
        (e, if e > 0.0 { e * d } else { 0.0 })
    };
    let mut s = [0f32; LANES];
    let mut t = [0f32; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            let (e, et) = term(c[l]);
            s[l] += e;
            t[l] += et;
        }
    }
    let (mut s_sum, mut t_sum) = (s.iter().sum::<f32>(), t.iter().sum::<f32>());
    for &x in chunks.remainder() {
        let (e, et) = term(x);
        s_sum += e;
        t_sum += et;
    }
    (s_sum, t_sum)
}

/// [`softmax_entropy`] with each row's self-certainty from the same walk.
pub fn softmax_entropy_certainty(logits: &CpuTensor, inv_t: f32) -> Result<(CpuTensor, CpuTensor, CpuTensor)> {
    let (rows, cols) = dims2("softmax_entropy_certainty", logits)?;
    let mut out = vec![(0f32, 0f32, 0f32); rows];
    fn run<E: Element>(data: &[E], cols: usize, inv_t: f32, out: &mut [(f32, f32, f32)]) {
        out.par_iter_mut().enumerate().for_each(|(r, o)| {
            *o = softmax_entropy_certainty_row(&data[r * cols..(r + 1) * cols], inv_t);
        });
    }
    match logits.storage() {
        CpuStorage::F32(d) => run(d, cols, inv_t, &mut out),
        CpuStorage::F16(d) => run(d, cols, inv_t, &mut out),
        CpuStorage::BF16(d) => run(d, cols, inv_t, &mut out),
        CpuStorage::Blocks(_) => {
            return Err(EngineError::DType { op: "softmax_entropy_certainty", dtype: logits.dtype() })
        }
    }
    let column = |f: fn(&(f32, f32, f32)) -> f32| output(out.iter().map(f).collect(), &[rows]);
    Ok((column(|o| o.0), column(|o| o.1), column(|o| o.2)))
}

pub fn softmax_entropy(logits: &CpuTensor, inv_temperature: f32) -> Result<(CpuTensor, CpuTensor)> {
    let (rows, cols) = dims2("softmax_entropy", logits)?;
    let mut lse = vec![0f32; rows];
    let mut ent = vec![0f32; rows];
    fn run<E: Element>(data: &[E], cols: usize, inv_t: f32, lse: &mut [f32], ent: &mut [f32]) {
        // Rows in parallel and, inside each, segments: one row still uses every core.
        lse.par_iter_mut().zip(ent.par_iter_mut()).enumerate().for_each(|(r, (l, h))| {
            (*l, *h) = softmax_entropy_row(&data[r * cols..(r + 1) * cols], inv_t);
        });
    }
    match logits.storage() {
        CpuStorage::F32(d) => run(d, cols, inv_temperature, &mut lse, &mut ent),
        CpuStorage::F16(d) => run(d, cols, inv_temperature, &mut lse, &mut ent),
        CpuStorage::BF16(d) => run(d, cols, inv_temperature, &mut lse, &mut ent),
        CpuStorage::Blocks(_) => return Err(EngineError::DType { op: "softmax_entropy", dtype: logits.dtype() }),
    }
    Ok((output(lse, &[rows]), output(ent, &[rows])))
}
