//! `GET /metrics`: counters, gauges and histograms in Prometheus' text format (0.0.4),
//! written by hand: a handful of series do not need a metrics crate.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// A histogram with fixed upper bounds.
pub struct Histogram {
    bounds: &'static [f64],
    /// counts[i]: observations ≤ bounds[i] and > bounds[i-1]; the last is +Inf.
    state: Mutex<(Vec<u64>, f64)>,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram { bounds, state: Mutex::new((vec![0; bounds.len() + 1], 0.0)) }
    }

    pub fn observe(&self, v: f64) {
        let i = self.bounds.iter().position(|&b| v <= b).unwrap_or(self.bounds.len());
        let mut s = self.state.lock().expect("metrics lock");
        s.0[i] += 1;
        s.1 += v;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let s = self.state.lock().expect("metrics lock");
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut total = 0;
        for (i, b) in self.bounds.iter().enumerate() {
            total += s.0[i];
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {total}");
        }
        total += s.0[self.bounds.len()];
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}\n{name}_sum {}\n{name}_count {total}", s.1);
    }
}

const SECONDS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
const ROWS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// Everything `/metrics` shows.
pub struct Metrics {
    /// Finished HTTP requests by (endpoint, status).
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    pub prompt_tokens: AtomicU64,
    pub generated_tokens: AtomicU64,
    pub em_inf_steps: AtomicU64,
    /// Jobs sent to the model thread that have not started.
    pub queued: AtomicUsize,
    /// Jobs between start and done.
    pub running: AtomicUsize,
    pub batch_rows: Histogram,
    pub time_to_first_token: Histogram,
    pub token_latency: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::default(),
            prompt_tokens: AtomicU64::new(0),
            generated_tokens: AtomicU64::new(0),
            em_inf_steps: AtomicU64::new(0),
            queued: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            batch_rows: Histogram::new(ROWS),
            time_to_first_token: Histogram::new(SECONDS),
            token_latency: Histogram::new(SECONDS),
        }
    }
}

impl Metrics {
    pub fn request(&self, endpoint: &str, status: u16) {
        *self.requests.lock().expect("metrics lock").entry((endpoint.to_string(), status)).or_default() += 1;
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP entmin_requests_total HTTP requests answered, by endpoint and status.");
        let _ = writeln!(out, "# TYPE entmin_requests_total counter");
        for ((endpoint, status), n) in self.requests.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "entmin_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}");
        }
        let counters = [
            ("entmin_prompt_tokens_total", "Prompt tokens read.", &self.prompt_tokens),
            ("entmin_generated_tokens_total", "Tokens generated.", &self.generated_tokens),
            ("entmin_em_inf_steps_total", "EM-INF Adam steps taken.", &self.em_inf_steps),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
        }
        let gauges = [
            ("entmin_queue_depth", "Requests waiting for a place in the batch.", &self.queued),
            ("entmin_running_requests", "Requests generating.", &self.running),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}", v.load(Ordering::Relaxed));
        }
        self.batch_rows.render(&mut out, "entmin_batch_rows", "Sequences in each decode step.");
        self.time_to_first_token.render(&mut out, "entmin_time_to_first_token_seconds", "From request to first token.");
        self.token_latency.render(
            &mut out,
            "entmin_token_latency_seconds",
            "Between consecutive tokens of a sequence.",
        );
        out
    }
}

impl crate::runtime::StepObserver for &Metrics {
    fn step(&mut self, rows: usize, em_inf_steps: u64) {
        self.batch_rows.observe(rows as f64);
        self.em_inf_steps.fetch_add(em_inf_steps, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        for v in [1.0, 3.0, 3.0, 100.0] {
            m.batch_rows.observe(v);
        }
        let text = m.render();
        for line in [
            "entmin_batch_rows_bucket{le=\"1\"} 1",
            "entmin_batch_rows_bucket{le=\"2\"} 1",
            "entmin_batch_rows_bucket{le=\"4\"} 3",
            "entmin_batch_rows_bucket{le=\"64\"} 3",
            "entmin_batch_rows_bucket{le=\"+Inf\"} 4",
            "entmin_batch_rows_sum 107",
            "entmin_batch_rows_count 4",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }
}
