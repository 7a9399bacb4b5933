//! Prometheus metrics kept in fixed arrays of atomics.
//!
//! Every label value is known in advance (route templates, methods, the status codes the service
//! sends), so recording a request is three relaxed atomic additions with no lock, no map lookup
//! and no allocation. `/metrics` renders the text format on demand: these counters, the build,
//! then the process (`process`) and runtime (`runtime`) figures read at that moment.

use std::fmt::{Display, Write as _};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hyper::Method;

use crate::build_info::{REVISION, VERSION};
use crate::http::bearer::REFUSAL_REASONS;
use crate::router::{Route, TEMPLATES};
use crate::telemetry::process::ProcessStats;
use crate::telemetry::runtime;

/// Connection figures of one pool, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PoolStats {
    pub(crate) size: usize,
    pub(crate) connected: usize,
    /// Connected with at least one query in flight (reads) or held by a writer (writes).
    pub(crate) in_use: usize,
    pub(crate) queries_in_flight: usize,
    /// Extra write connections open beside the pool's own (`db::write_pool`); 0 for reads.
    pub(crate) extra: usize,
}

const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PATCH", "DELETE", "OTHER"];
/// Status codes the service sends (414 and 431 only as hyper's refusals, see `server::refusals`);
/// anything else is counted under `other`.
const STATUSES: [u16; 17] = [
    200, 201, 204, 400, 401, 403, 404, 405, 408, 409, 413, 414, 415, 422, 431, 500, 503,
];
/// The method slot of requests whose method is unknown (hyper refused the head) or not listed.
const OTHER_METHOD: usize = METHODS.len() - 1;
const STATUS_SLOTS: usize = STATUSES.len() + 1;
/// Upper bounds in seconds: fine-grained below a millisecond, where cached reads land.
const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The cache's current figures, for `render`.
#[derive(Debug, Clone)]
pub(crate) struct CacheFigures {
    /// `gravity_cache_bad_values_total` by its `kind` label: values that were not a body for
    /// their key (the cache tells them apart and counts them).
    pub(crate) bad_values: Vec<(&'static str, u64)>,
    /// In-process copies held, when they are on.
    pub(crate) local_entries: Option<usize>,
}

/// Authentication's current figures, for `exposition` (when it is on).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuthFigures {
    /// The issuer's keys held (0 until the first fetch succeeds).
    pub(crate) keys: usize,
    pub(crate) tokens_remembered: usize,
}

/// Counters shared by the whole process; what each counts is its family's HELP text in `render`.
#[derive(Default)]
pub(crate) struct Metrics {
    requests: [[[AtomicU64; STATUS_SLOTS]; METHODS.len()]; TEMPLATES.len()],
    durations: [Histogram; TEMPLATES.len()],
    pub(crate) cache_hits: AtomicU64,
    pub(crate) cache_local_hits: AtomicU64,
    pub(crate) cache_misses: AtomicU64,
    pub(crate) cache_errors: AtomicU64,
    pub(crate) cache_bypassed: AtomicU64,
    pub(crate) cache_fences_left: AtomicU64,
    pub(crate) cache_sweeps: AtomicU64,
    pub(crate) connections_open: AtomicU64,
    pub(crate) connections_write_timed_out: AtomicU64,
    pub(crate) connections_evicted: AtomicU64,
    pub(crate) accept_errors: AtomicU64,
    /// One per reason in `http::bearer::REFUSAL_REASONS`.
    auth_refusals: [AtomicU64; REFUSAL_REASONS.len()],
    /// Fetches of the issuer's keys that succeeded, then those that failed.
    auth_key_fetches: [AtomicU64; 2],
}

#[derive(Default)]
struct Histogram {
    /// Per-bucket counts (not cumulative); the last slot is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Metrics {
    /// A request; `method` is `None` when hyper refused its head, so that it is not known.
    pub(crate) fn record_request(&self, route: Route, method: Option<&Method>, status: u16, duration: Duration) {
        let method_slot = method.map_or(OTHER_METHOD, method_slot);
        let status_slot = STATUSES.iter().position(|&known| known == status);
        let counter = &self.requests[route.index()][method_slot][status_slot.unwrap_or(STATUSES.len())];
        counter.fetch_add(1, Relaxed);
        let histogram = &self.durations[route.index()];
        let seconds = duration.as_secs_f64();
        let bucket = BUCKETS.iter().position(|&bound| seconds <= bound);
        histogram.buckets[bucket.unwrap_or(BUCKETS.len())].fetch_add(1, Relaxed);
        histogram.sum_micros.fetch_add(duration.as_micros() as u64, Relaxed);
    }

    /// A request refused for its credentials, by its position in `REFUSAL_REASONS`.
    pub(crate) fn record_auth_refusal(&self, reason: usize) {
        if let Some(counter) = self.auth_refusals.get(reason) {
            counter.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn record_key_fetch(&self, succeeded: bool) {
        self.auth_key_fetches[usize::from(!succeeded)].fetch_add(1, Relaxed);
    }

    /// The whole `/metrics` page: `render`, then the process and runtime figures as they are now.
    pub(crate) fn exposition(
        &self,
        pools: (PoolStats, PoolStats),
        cache: Option<CacheFigures>,
        auth: Option<AuthFigures>,
        waiting_creates: usize,
        dropped_log_lines: u64,
    ) -> String {
        let mut out = self.render(pools, cache, waiting_creates, dropped_log_lines);
        self.render_auth(&mut out, auth);
        ProcessStats::read().render(&mut out);
        runtime::render(&mut out);
        out
    }

    /// The Prometheus text of the service's own figures, with the pools' and the cache's current ones.
    pub(crate) fn render(
        &self,
        pools: (PoolStats, PoolStats),
        cache: Option<CacheFigures>,
        waiting_creates: usize,
        dropped_log_lines: u64,
    ) -> String {
        let mut out = String::with_capacity(8 << 10);
        let _ = writeln!(
            out,
            "# HELP gravity_build_info The running build: its version and source revision (always 1).\n\
             # TYPE gravity_build_info gauge\ngravity_build_info{{version=\"{VERSION}\",revision=\"{REVISION}\"}} 1"
        );
        self.render_requests(&mut out);
        self.render_durations(&mut out);
        #[rustfmt::skip]
        let cache_counters = [
            ("gravity_cache_hits_total", "Cached user reads answered from Redis.", &self.cache_hits),
            ("gravity_cache_local_hits_total", "Cached user reads answered from an in-process copy (CACHE_LOCAL_ENTRIES).", &self.cache_local_hits),
            ("gravity_cache_misses_total", "User reads Redis did not have.", &self.cache_misses),
            ("gravity_cache_errors_total", "Redis calls that failed or timed out.", &self.cache_errors),
            ("gravity_cache_bypassed_total", "User reads that skipped Redis: failing, unreachable, or not yet swept of its past.", &self.cache_bypassed),
            ("gravity_cache_fences_left_total", "Write fences Redis did not confirm lifting in time; each expires by itself.", &self.cache_fences_left),
            ("gravity_cache_sweeps_total", "Removals of every cached body under the prefix from a Redis not recorded as current (restarted, failed over, flushed).", &self.cache_sweeps),
        ];
        for (name, help, value) in cache_counters {
            render_one(&mut out, name, "counter", help, load(value));
        }
        if let Some(cache) = cache {
            let name = "gravity_cache_bad_values_total";
            let help = "Cached values that were not a body for their key, replaced as misses.";
            render_labelled(&mut out, name, "counter", help, "kind", cache.bad_values);
            if let Some(entries) = cache.local_entries {
                let help = "In-process copies (and reservations) held.";
                render_one(&mut out, "gravity_cache_local_entries", "gauge", help, entries);
            }
        }
        self.render_connections(&mut out);
        render_pools(&mut out, pools);
        let help = "Creates waiting for a write connection (they go out together, coalesced).";
        render_one(&mut out, "gravity_creates_waiting", "gauge", help, waiting_creates);
        let name = "gravity_log_lines_dropped_total";
        let help = "Request log lines dropped because stdout could not keep up or refused them.";
        render_one(&mut out, name, "counter", help, dropped_log_lines);
        out
    }

    /// Refusals by reason always (a service with authentication off refuses nothing); the key
    /// fetches and gauges when authentication is on.
    fn render_auth(&self, out: &mut String, auth: Option<AuthFigures>) {
        let help = "Requests refused for their credentials (400, 401, 403; 503 while no keys are held), by reason.";
        let refusals = REFUSAL_REASONS.iter().zip(self.auth_refusals.iter().map(load));
        render_labelled(out, "gravity_auth_refusals_total", "counter", help, "reason", refusals);
        let Some(auth) = auth else {
            return;
        };
        let name = "gravity_auth_key_fetches_total";
        let help = "Fetches of the issuer's key set, by outcome (a failed one keeps the keys held).";
        let fetches = ["ok", "failed"].iter().zip(self.auth_key_fetches.iter().map(load));
        render_labelled(out, name, "counter", help, "outcome", fetches);
        let help = "The issuer's usable keys held (0: none fetched yet, protected routes answer 503; or the issuer lists none usable, tokens are refused).";
        render_one(out, "gravity_auth_keys", "gauge", help, auth.keys);
        let name = "gravity_auth_tokens_remembered";
        let help = "Verified tokens remembered until they expire.";
        render_one(out, name, "gauge", help, auth.tokens_remembered);
    }

    fn render_connections(&self, out: &mut String) {
        let name = "gravity_http_connections_open";
        let help = "Client connections open now (at most MAX_CONNECTIONS).";
        render_one(out, name, "gauge", help, load(&self.connections_open));
        let name = "gravity_http_connections_closed_total";
        let help = "Client connections the service closed, by reason.";
        let closed = [
            ("write_timeout", load(&self.connections_write_timed_out)),
            ("evicted", load(&self.connections_evicted)),
        ];
        render_labelled(out, name, "counter", help, "reason", closed);
        let name = "gravity_http_accept_errors_total";
        let help = "Failed accept calls (out of descriptors or memory, or a client gone).";
        render_one(out, name, "counter", help, load(&self.accept_errors));
    }

    fn render_requests(&self, out: &mut String) {
        let help = "HTTP requests by method, route template and status.";
        render_head(out, "gravity_http_requests_total", "counter", help);
        for (route, template) in TEMPLATES.iter().enumerate() {
            for (method_slot, method) in METHODS.iter().enumerate() {
                for status_slot in 0..STATUS_SLOTS {
                    let count = load(&self.requests[route][method_slot][status_slot]);
                    if count == 0 {
                        continue;
                    }
                    let status = STATUSES.get(status_slot).map_or("other".to_owned(), u16::to_string);
                    let _ = writeln!(
                        out,
                        "gravity_http_requests_total{{method=\"{method}\",route=\"{template}\",status=\"{status}\"}} {count}"
                    );
                }
            }
        }
    }

    fn render_durations(&self, out: &mut String) {
        let name = "gravity_http_request_duration_seconds";
        let help = "Time from request head to response, by route template.";
        render_head(out, name, "histogram", help);
        for (histogram, template) in self.durations.iter().zip(TEMPLATES) {
            let counts: Vec<u64> = histogram.buckets.iter().map(load).collect();
            let total: u64 = counts.iter().sum();
            if total == 0 {
                continue;
            }
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(&counts) {
                cumulative += count;
                let _ = writeln!(out, "{name}_bucket{{route=\"{template}\",le=\"{bound}\"}} {cumulative}");
            }
            let sum = load(&histogram.sum_micros) as f64 / 1e6;
            let _ = writeln!(
                out,
                "{name}_bucket{{route=\"{template}\",le=\"+Inf\"}} {total}\n{name}_sum{{route=\"{template}\"}} {sum}\n\
                 {name}_count{{route=\"{template}\"}} {total}"
            );
        }
    }
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Relaxed)
}

/// The `# HELP` and `# TYPE` lines that open a family.
fn render_head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A family of one series: its help, its type and its figure.
pub(super) fn render_one(out: &mut String, name: &str, kind: &str, help: &str, figure: impl Display) {
    render_head(out, name, kind, help);
    let _ = writeln!(out, "{name} {figure}");
}

/// A family with one label: its help, its type, and one series per value of the label.
pub(super) fn render_labelled(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    label: &str,
    series: impl IntoIterator<Item = (impl Display, impl Display)>,
) {
    render_head(out, name, kind, help);
    for (value, figure) in series {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {figure}");
    }
}

/// The read and the write pool: connections by state, size, and queries in flight.
fn render_pools(out: &mut String, (reads, writes): (PoolStats, PoolStats)) {
    let pools = [("read", reads), ("write", writes)];
    let help = "Postgres connections by pool and state (a read connection is shared by many queries, a write connection held by one write).";
    render_head(out, "gravity_db_pool_connections", "gauge", help);
    for (name, pool) in pools {
        let idle = pool.connected - pool.in_use;
        let down = pool.size - pool.connected;
        for (state, value) in [("in_use", pool.in_use), ("idle", idle), ("down", down)] {
            let _ = writeln!(
                out,
                "gravity_db_pool_connections{{pool=\"{name}\",state=\"{state}\"}} {value}"
            );
        }
    }
    let help = "Postgres connections configured, by pool (DB_POOL_SIZE in all).";
    let sizes = pools.map(|(name, pool)| (name, pool.size));
    render_labelled(out, "gravity_db_pool_size", "gauge", help, "pool", sizes);
    let help = "Queries sent to Postgres and not yet answered (reads), or writes holding a connection.";
    let in_flight = pools.map(|(name, pool)| (name, pool.queries_in_flight));
    render_labelled(out, "gravity_db_queries_in_flight", "gauge", help, "pool", in_flight);
    let help = "Write connections open beside the pool's own: opened while every write connection is stuck (a row lock, a slow statement), closed when their write ends.";
    render_one(out, "gravity_db_write_extra_connections", "gauge", help, writes.extra);
}

/// The method's slot in `METHODS`: one comparison of the method's tag per request, no string.
fn method_slot(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PATCH => 3,
        Method::DELETE => 4,
        _ => OTHER_METHOD,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_template_method_and_status() {
        let metrics = Metrics::default();
        metrics.record_request(Route::User("x"), Some(&Method::GET), 404, Duration::from_micros(300));
        metrics.record_request(Route::User("x"), Some(&Method::GET), 404, Duration::from_micros(300));
        metrics.record_request(Route::Users, Some(&Method::PUT), 405, Duration::from_millis(2));
        metrics.record_request(Route::Unmatched, None, 431, Duration::from_millis(1));
        let text = metrics.render((PoolStats::default(), PoolStats::default()), None, 0, 0);
        assert!(text.contains(r#"gravity_http_requests_total{method="GET",route="/v1/users/{id}",status="404"} 2"#));
        assert!(text.contains(r#"gravity_http_requests_total{method="OTHER",route="unmatched",status="431"} 1"#));
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
            extra: 0,
        };
        let writes = PoolStats {
            extra: 3,
            ..PoolStats::default()
        };
        let text = Metrics::default().render((pool, writes), None, 0, 0);
        assert!(text.contains("gravity_db_pool_connections{pool=\"read\",state=\"in_use\"} 1"));
        assert!(text.contains("gravity_db_pool_connections{pool=\"read\",state=\"idle\"} 2"));
        assert!(text.contains("gravity_db_pool_connections{pool=\"read\",state=\"down\"} 1"));
        assert!(text.contains("gravity_db_write_extra_connections 3\n"));
    }

    #[test]
    fn authentication_is_counted_by_reason_and_its_gauges_shown_only_when_on() {
        let metrics = Metrics::default();
        metrics.record_auth_refusal(0);
        metrics.record_auth_refusal(0);
        metrics.record_key_fetch(false);
        let mut off = String::new();
        metrics.render_auth(&mut off, None);
        assert!(
            off.contains(r#"gravity_auth_refusals_total{reason="no_token"} 2"#),
            "{off}"
        );
        assert!(
            off.contains(r#"gravity_auth_refusals_total{reason="keys_unavailable"} 0"#),
            "{off}"
        );
        assert!(!off.contains("gravity_auth_keys"), "{off}");
        let mut on = String::new();
        let figures = AuthFigures {
            keys: 2,
            tokens_remembered: 7,
        };
        metrics.render_auth(&mut on, Some(figures));
        assert!(
            on.contains(r#"gravity_auth_key_fetches_total{outcome="failed"} 1"#),
            "{on}"
        );
        assert!(
            on.contains("gravity_auth_keys 2\n") && on.contains("gravity_auth_tokens_remembered 7\n"),
            "{on}"
        );
    }

    #[test]
    fn the_build_is_named_by_version_and_revision() {
        let text = Metrics::default().render((PoolStats::default(), PoolStats::default()), None, 0, 0);
        let expected = format!("gravity_build_info{{version=\"{VERSION}\",revision=\"{REVISION}\"}} 1\n");
        assert!(text.contains(&expected), "{text}");
    }
}
