//! Prometheus metrics kept in fixed arrays of atomics.
//!
//! Every label value is known in advance (route templates, methods, the status codes the service
//! sends), so recording a request is three relaxed atomic additions with no lock, no map lookup
//! and no allocation. `/metrics` renders the text format on demand.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::Method;

use crate::db::PoolStats;
use crate::router::Route;

const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PATCH", "DELETE", "OTHER"];
/// Status codes the service sends; anything else is counted under `other`.
const STATUSES: [u16; 13] = [200, 201, 204, 400, 404, 405, 408, 409, 413, 415, 422, 500, 503];
const STATUS_SLOTS: usize = STATUSES.len() + 1;
/// Upper bounds in seconds: fine-grained below a millisecond, where cached reads land.
const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const ROUTES: usize = Route::ALL.len();

/// Counters shared by the whole process.
pub struct Metrics {
    requests: [[[AtomicU64; STATUS_SLOTS]; METHODS.len()]; ROUTES],
    durations: [Histogram; ROUTES],
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub cache_errors: AtomicU64,
    /// Reads that skipped Redis because the breaker was open.
    pub cache_bypassed: AtomicU64,
}

struct Histogram {
    /// Per-bucket counts (not cumulative); the last slot is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            requests: std::array::from_fn(|_| std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0)))),
            durations: std::array::from_fn(|_| Histogram {
                buckets: std::array::from_fn(|_| AtomicU64::new(0)),
                sum_micros: AtomicU64::new(0),
            }),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            cache_errors: AtomicU64::new(0),
            cache_bypassed: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub fn record_request(&self, route: Route, method: &Method, status: u16, duration: Duration) {
        let method_slot = method_slot(method);
        let status_slot = STATUSES
            .iter()
            .position(|&known| known == status)
            .unwrap_or(STATUSES.len());
        self.requests[route.index()][method_slot][status_slot].fetch_add(1, Ordering::Relaxed);
        let histogram = &self.durations[route.index()];
        let seconds = duration.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(BUCKETS.len());
        histogram.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        histogram
            .sum_micros
            .fetch_add(duration.as_micros() as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of everything, with the pool's current figures.
    pub fn render(&self, pool: Option<PoolStats>, dropped_log_lines: u64) -> String {
        let mut out = String::with_capacity(8 << 10);
        self.render_requests(&mut out);
        self.render_durations(&mut out);
        let counters = [
            (
                "gravity_cache_hits_total",
                "Cached user reads answered from Redis.",
                &self.cache_hits,
            ),
            (
                "gravity_cache_misses_total",
                "User reads Redis did not have.",
                &self.cache_misses,
            ),
            (
                "gravity_cache_errors_total",
                "Redis calls that failed or timed out.",
                &self.cache_errors,
            ),
            (
                "gravity_cache_bypassed_total",
                "User reads that skipped Redis while it was failing.",
                &self.cache_bypassed,
            ),
        ];
        for (name, help, counter) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", counter.load(Ordering::Relaxed));
        }
        if let Some(pool) = pool {
            let _ = writeln!(
                out,
                "# HELP gravity_db_pool_connections Postgres connections by state (each is shared by many requests).\n\
                 # TYPE gravity_db_pool_connections gauge"
            );
            let idle = pool.connected - pool.in_use;
            let down = pool.size - pool.connected;
            for (state, value) in [("in_use", pool.in_use), ("idle", idle), ("down", down)] {
                let _ = writeln!(out, "gravity_db_pool_connections{{state=\"{state}\"}} {value}");
            }
            let _ = writeln!(
                out,
                "# HELP gravity_db_pool_size Postgres connections configured (DB_POOL_SIZE).\n\
                 # TYPE gravity_db_pool_size gauge\ngravity_db_pool_size {}",
                pool.size
            );
            let _ = writeln!(
                out,
                "# HELP gravity_db_queries_in_flight Queries sent to Postgres and not yet answered.\n\
                 # TYPE gravity_db_queries_in_flight gauge\ngravity_db_queries_in_flight {}",
                pool.queries_in_flight
            );
        }
        let _ = writeln!(
            out,
            "# HELP gravity_log_lines_dropped_total Request log lines dropped because stdout could not keep up.\n\
             # TYPE gravity_log_lines_dropped_total counter\ngravity_log_lines_dropped_total {dropped_log_lines}"
        );
        out
    }

    fn render_requests(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP gravity_http_requests_total HTTP requests by method, route template and status.\n\
             # TYPE gravity_http_requests_total counter"
        );
        for route in Route::ALL {
            for (method_slot, method) in METHODS.iter().enumerate() {
                for status_slot in 0..STATUS_SLOTS {
                    let count = self.requests[route.index()][method_slot][status_slot].load(Ordering::Relaxed);
                    if count == 0 {
                        continue;
                    }
                    let status = STATUSES.get(status_slot).map_or("other".to_owned(), u16::to_string);
                    let _ = writeln!(
                        out,
                        "gravity_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {count}",
                        route.template()
                    );
                }
            }
        }
    }

    fn render_durations(&self, out: &mut String) {
        let name = "gravity_http_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from request head to response, by route template.\n# TYPE {name} histogram"
        );
        for route in Route::ALL {
            let histogram = &self.durations[route.index()];
            let counts: Vec<u64> = histogram
                .buckets
                .iter()
                .map(|bucket| bucket.load(Ordering::Relaxed))
                .collect();
            let total: u64 = counts.iter().sum();
            if total == 0 {
                continue;
            }
            let template = route.template();
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(&counts) {
                cumulative += count;
                let _ = writeln!(out, "{name}_bucket{{route=\"{template}\",le=\"{bound}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_bucket{{route=\"{template}\",le=\"+Inf\"}} {total}");
            let sum = histogram.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "{name}_sum{{route=\"{template}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{route=\"{template}\"}} {total}");
        }
    }
}

fn method_slot(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PATCH => 3,
        Method::DELETE => 4,
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_template_method_and_status() {
        let metrics = Metrics::default();
        metrics.record_request(Route::User, &Method::GET, 404, Duration::from_micros(300));
        metrics.record_request(Route::User, &Method::GET, 404, Duration::from_micros(300));
        metrics.record_request(Route::Users, &Method::PUT, 405, Duration::from_millis(2));
        let text = metrics.render(None, 0);
        assert!(text.contains(r#"gravity_http_requests_total{method="GET",route="/v1/users/{id}",status="404"} 2"#));
        assert!(text.contains(r#"gravity_http_requests_total{method="OTHER",route="/v1/users",status="405"} 1"#));
        assert!(text.contains(r#"gravity_http_request_duration_seconds_bucket{route="/v1/users/{id}",le="0.0005"} 2"#));
        assert!(text.contains(r#"gravity_http_request_duration_seconds_count{route="/v1/users/{id}"} 2"#));
    }

    #[test]
    fn pool_figures_are_rendered() {
        let pool = PoolStats {
            size: 4,
            connected: 3,
            in_use: 1,
            queries_in_flight: 5,
        };
        let text = Metrics::default().render(Some(pool), 0);
        assert!(text.contains("gravity_db_pool_connections{state=\"in_use\"} 1"));
        assert!(text.contains("gravity_db_pool_connections{state=\"idle\"} 2"));
        assert!(text.contains("gravity_db_pool_connections{state=\"down\"} 1"));
    }
}
