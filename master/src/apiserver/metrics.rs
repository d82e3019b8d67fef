//! Prometheus metrics of the API server: requests by verb, resource and code with a
//! latency histogram per verb and resource, open watches, and the store's commit
//! latency (passed in when rendering).

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.counts[i] += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }
}

/// A store's commit latency, rendered with the API server's metrics.
pub struct CommitStats {
    /// Cumulative (le seconds, count) buckets.
    pub buckets: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
    pub writes: u64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<HashMap<(String, String, u16), u64>>,
    latency: Mutex<HashMap<(String, String), Histogram>>,
    watches: AtomicI64,
}

impl Metrics {
    pub fn observe(&self, verb: &str, resource: &str, code: u16, took: Duration) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((verb.to_string(), resource.to_string(), code))
                .or_default() += 1;
        }
        if let Ok(mut l) = self.latency.lock() {
            l.entry((verb.to_string(), resource.to_string()))
                .or_default()
                .observe(took.as_secs_f64());
        }
    }

    pub fn watch_opened(&self) {
        self.watches.fetch_add(1, Ordering::Relaxed);
    }

    pub fn watch_closed(&self) {
        self.watches.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn open_watches(&self) -> i64 {
        self.watches.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self, store: Option<CommitStats>, store_watchers: Option<u64>) -> String {
        let mut out = String::new();
        out.push_str("# HELP apiserver_request_total Requests by verb, resource and HTTP code.\n");
        out.push_str("# TYPE apiserver_request_total counter\n");
        if let Ok(r) = self.requests.lock() {
            let mut rows: Vec<_> = r.iter().collect();
            rows.sort();
            for ((verb, res, code), n) in rows {
                let _ = writeln!(
                    out,
                    "apiserver_request_total{{verb=\"{verb}\",resource=\"{res}\",code=\"{code}\"}} {n}"
                );
            }
        }
        out.push_str(
            "# HELP apiserver_request_duration_seconds Request latency by verb and resource.\n",
        );
        out.push_str("# TYPE apiserver_request_duration_seconds histogram\n");
        if let Ok(l) = self.latency.lock() {
            let mut rows: Vec<_> = l.iter().collect();
            rows.sort_by(|a, b| a.0.cmp(b.0));
            for ((verb, res), h) in rows {
                for (i, le) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "apiserver_request_duration_seconds_bucket{{verb=\"{verb}\",resource=\"{res}\",le=\"{le}\"}} {}",
                        h.counts.get(i).copied().unwrap_or(0)
                    );
                }
                let _ = writeln!(out, "apiserver_request_duration_seconds_bucket{{verb=\"{verb}\",resource=\"{res}\",le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(out, "apiserver_request_duration_seconds_sum{{verb=\"{verb}\",resource=\"{res}\"}} {}", h.sum);
                let _ = writeln!(out, "apiserver_request_duration_seconds_count{{verb=\"{verb}\",resource=\"{res}\"}} {}", h.count);
            }
        }
        out.push_str("# HELP apiserver_longrunning_requests Open watch requests.\n");
        out.push_str("# TYPE apiserver_longrunning_requests gauge\n");
        let _ = writeln!(
            out,
            "apiserver_longrunning_requests{{verb=\"WATCH\"}} {}",
            self.open_watches()
        );
        if let Some(s) = store {
            out.push_str(
                "# HELP bosun_store_commit_duration_seconds Store commit (fsync) latency.\n",
            );
            out.push_str("# TYPE bosun_store_commit_duration_seconds histogram\n");
            for (le, n) in &s.buckets {
                let _ = writeln!(
                    out,
                    "bosun_store_commit_duration_seconds_bucket{{le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "bosun_store_commit_duration_seconds_bucket{{le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "bosun_store_commit_duration_seconds_sum {}",
                s.sum_seconds
            );
            let _ = writeln!(out, "bosun_store_commit_duration_seconds_count {}", s.count);
            out.push_str("# TYPE bosun_store_writes_total counter\n");
            let _ = writeln!(out, "bosun_store_writes_total {}", s.writes);
        }
        if let Some(w) = store_watchers {
            out.push_str("# TYPE bosun_store_watchers gauge\n");
            let _ = writeln!(out, "bosun_store_watchers {w}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.observe("LIST", "pods", 200, Duration::from_millis(3));
        m.observe("LIST", "pods", 200, Duration::from_millis(30));
        let text = m.render(None, None);
        assert!(text
            .contains("apiserver_request_total{verb=\"LIST\",resource=\"pods\",code=\"200\"} 2"));
        assert!(text.contains("apiserver_request_duration_seconds_bucket{verb=\"LIST\",resource=\"pods\",le=\"0.005\"} 1"));
        assert!(text.contains(
            "apiserver_request_duration_seconds_count{verb=\"LIST\",resource=\"pods\"} 2"
        ));
    }
}
