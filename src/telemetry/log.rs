//! JSON log lines: one per request on stdout, operational events on stderr.
//!
//! The contract keeps stdout for request lines alone, so shippers parse it without filtering;
//! `stdout_sink` writes them in batches. A request line's level is docs/API.md's (`LOG_LEVEL`):
//! a storm of 4xx from a misbehaving client stays at `info`, and passing probes (the HEALTHCHECK
//! every 5 s, the load balancer's checks) are `debug`, not to drown the rest.
//!
//! Field names are the ones shippers and their index templates already know; docs/OPERATIONS.md
//! (Logs) lists each field, its meaning and the standard it is from.
//!
//! Nothing logged carries a body, a password, a token, or any client text other than a sanitised
//! request id (and `user.id`, which the issuer signed). The request line is built in a buffer
//! each thread keeps, so writing it allocates nothing.

use std::cell::RefCell;
use std::time::Duration;

use crate::telemetry::json_writer::{FieldValue, write_json};
use crate::telemetry::stdout_sink::sink;

/// A request line is usually under 400 bytes; one with a long error chain grows the buffer.
const LINE_CAPACITY: usize = 512;
/// A buffer grown past this by an unusual line is given back rather than kept for every request.
const MAX_KEPT_CAPACITY: usize = 16 << 10;

/// The least severe events written (`LOG_LEVEL`), in order of severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// The service's logger; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Logger {
    level: LogLevel,
}

/// The facts of one request, as its log line records them.
pub(crate) struct RequestRecord<'a> {
    pub(crate) method: &'a str,
    pub(crate) route: &'a str,
    pub(crate) status: u16,
    pub(crate) duration: Duration,
    pub(crate) request_id: &'a [u8],
    /// 32 lower-case hex digits.
    pub(crate) trace_id: &'a [u8],
    /// 16 lower-case hex digits: this request's span.
    pub(crate) span_id: &'a [u8],
    /// `HIT` or `MISS` on cached routes.
    pub(crate) cache: Option<&'static str>,
    /// `sub` of the request's verified token.
    pub(crate) user_id: Option<&'a str>,
    /// Why a 5xx happened (never sent to the client).
    pub(crate) error: Option<&'a str>,
}

/// An event's fields: names, and values of any `FieldValue` type (`&"text"`, `&port`, `&true`).
pub(crate) type Fields<'a> = &'a [(&'a str, &'a dyn FieldValue)];

impl Logger {
    pub(crate) fn new(level: LogLevel) -> Logger {
        Logger { level }
    }

    pub(crate) fn enabled(&self, level: LogLevel) -> bool {
        level >= self.level
    }

    /// The request line: `warn` for a 5xx, `info` otherwise.
    pub(crate) fn request(&self, record: &RequestRecord<'_>) {
        let level = request_level(record.route, record.status);
        if !self.enabled(level) {
            return;
        }
        thread_local! {
            static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(LINE_CAPACITY));
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            write_request_line(line, level, record);
            sink().append(line);
            if line.capacity() > MAX_KEPT_CAPACITY {
                *line = Vec::with_capacity(LINE_CAPACITY);
            }
        });
    }

    pub(crate) fn debug(&self, message: &str, fields: Fields<'_>) {
        self.event(LogLevel::Debug, message, fields);
    }

    pub(crate) fn info(&self, message: &str, fields: Fields<'_>) {
        self.event(LogLevel::Info, message, fields);
    }

    pub(crate) fn warn(&self, message: &str, fields: Fields<'_>) {
        self.event(LogLevel::Warn, message, fields);
    }

    /// An operational event on stderr; rare, so written at once.
    fn event(&self, level: LogLevel, message: &str, fields: Fields<'_>) {
        if !self.enabled(level) {
            return;
        }
        let mut line = Vec::with_capacity(160);
        write_event_line(&mut line, level, message, fields);
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), &line);
    }

    /// Writes out pending request lines now (at shutdown), waiting at most `patience` for stdout
    /// to take them: a stalled stdout (a full pipe nobody reads) must not keep a stopping process
    /// alive. `false` if it did not.
    pub(crate) fn flush_within(&self, patience: Duration) -> bool {
        let (flushed, done) = std::sync::mpsc::channel();
        let flusher = std::thread::Builder::new().name("log-flush".into()).spawn(move || {
            sink().flush();
            let _ = flushed.send(());
        });
        flusher.is_ok() && done.recv_timeout(patience).is_ok()
    }

    /// Request lines dropped because stdout could not keep up.
    pub(crate) fn dropped_lines() -> u64 {
        sink().dropped()
    }
}

fn request_level(route: &str, status: u16) -> LogLevel {
    match (route, status) {
        (_, 500..) => LogLevel::Warn,
        ("/health" | "/ready", 200) => LogLevel::Debug,
        _ => LogLevel::Info,
    }
}

fn write_request_line(line: &mut Vec<u8>, level: LogLevel, record: &RequestRecord<'_>) {
    write_head(line, level);
    line.extend_from_slice(b",\"message\":\"request\",\"http.request.method\":");
    write_json(line, record.method);
    line.extend_from_slice(b",\"http.route\":\"");
    line.extend_from_slice(record.route.as_bytes());
    line.extend_from_slice(b"\",\"http.response.status_code\":");
    write_json(line, &record.status);
    line.extend_from_slice(b",\"event.duration\":");
    write_json(line, &u64::try_from(record.duration.as_nanos()).unwrap_or(u64::MAX));
    // Request ids are either ours or passed `request_id::is_sane`, and trace ids are hex digits:
    // nothing to escape.
    line.extend_from_slice(b",\"http.request.id\":\"");
    line.extend_from_slice(record.request_id);
    line.extend_from_slice(b"\",\"trace_id\":\"");
    line.extend_from_slice(record.trace_id);
    line.extend_from_slice(b"\",\"span_id\":\"");
    line.extend_from_slice(record.span_id);
    line.push(b'"');
    if let Some(cache) = record.cache {
        line.extend_from_slice(b",\"gravity.cache\":\"");
        line.extend_from_slice(cache.as_bytes());
        line.push(b'"');
    }
    if let Some(user_id) = record.user_id {
        line.extend_from_slice(b",\"user.id\":");
        write_json(line, user_id);
    }
    if let Some(error) = record.error {
        line.extend_from_slice(b",\"error.message\":");
        write_json(line, error);
    }
    line.extend_from_slice(b"}\n");
}

fn write_event_line(line: &mut Vec<u8>, level: LogLevel, message: &str, fields: Fields<'_>) {
    write_head(line, level);
    line.extend_from_slice(b",\"message\":");
    write_json(line, message);
    for (name, value) in fields {
        line.push(b',');
        write_json(line, name);
        line.push(b':');
        value.write_json(line);
    }
    line.extend_from_slice(b"}\n");
}

/// `{"timestamp":"…","level":"…"`, the start of every line.
fn write_head(line: &mut Vec<u8>, level: LogLevel) {
    line.extend_from_slice(b"{\"timestamp\":\"");
    crate::timestamp::write_now(line);
    line.extend_from_slice(b"\",\"level\":\"");
    line.extend_from_slice(level_name(level).as_bytes());
    line.push(b'"');
}

/// A match, not an index by discriminant: reordering `LogLevel` cannot misname a level.
fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn record(status: u16, error: Option<&str>) -> RequestRecord<'_> {
        RequestRecord {
            method: "GET",
            route: "/v1/users/{id}",
            status,
            duration: Duration::from_micros(1_234),
            request_id: b"req-1",
            trace_id: b"4bf92f3577b34da6a3ce929d0e0e4736",
            span_id: b"00f067aa0ba902b7",
            cache: Some("MISS"),
            user_id: Some("auth0|5f7c\"quoted\""),
            error,
        }
    }

    fn request_line(record: &RequestRecord<'_>) -> Value {
        let mut line = Vec::new();
        write_request_line(&mut line, request_level(record.route, record.status), record);
        assert_eq!(line.last(), Some(&b'\n'), "one line");
        serde_json::from_slice(&line).expect("the line is JSON")
    }

    #[test]
    fn levels_filter_from_the_configured_one_up() {
        let logger = Logger::new(LogLevel::Warn);
        assert!(!logger.enabled(LogLevel::Info));
        assert!(logger.enabled(LogLevel::Warn));
        assert!(logger.enabled(LogLevel::Error));
    }

    #[test]
    fn a_5xx_is_a_warning_a_passing_probe_is_debug_and_anything_else_is_info() {
        let cases = [
            ("/v1/users/{id}", 200, LogLevel::Info),
            ("/v1/users/{id}", 404, LogLevel::Info),
            ("/v1/users", 499, LogLevel::Info),
            ("/v1/users", 500, LogLevel::Warn),
            ("/v1/users/{id}", 503, LogLevel::Warn),
            ("/health", 200, LogLevel::Debug),
            ("/ready", 200, LogLevel::Debug),
            ("/ready", 503, LogLevel::Warn),
            ("/metrics", 200, LogLevel::Info),
        ];
        for (route, status, level) in cases {
            assert_eq!(request_level(route, status), level, "{route} {status}");
        }
    }

    #[test]
    fn the_request_line_uses_the_names_shippers_know_and_numbers_as_numbers() {
        let line = request_line(&record(200, None));
        let timestamp = line["timestamp"].as_str().unwrap();
        assert_eq!(timestamp.len(), 27, "{timestamp}");
        let mut fields = line.as_object().unwrap().clone();
        fields.remove("timestamp");
        assert_eq!(
            Value::Object(fields),
            json!({
                "level": "info",
                "message": "request",
                "http.request.method": "GET",
                "http.route": "/v1/users/{id}",
                "http.response.status_code": 200,
                "event.duration": 1_234_000,
                "http.request.id": "req-1",
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "span_id": "00f067aa0ba902b7",
                "gravity.cache": "MISS",
                "user.id": "auth0|5f7c\"quoted\"",
            })
        );
    }

    #[test]
    fn a_5xx_line_is_a_warning_with_its_cause() {
        let line = request_line(&record(503, Some("db error: connection refused \"quoted\"")));
        assert_eq!(line["level"], "warn");
        assert_eq!(line["http.response.status_code"], 503);
        assert_eq!(line["error.message"], "db error: connection refused \"quoted\"");
        assert!(
            line.get("error").is_none(),
            "no top-level `error` to clash with ECS's object"
        );
    }

    #[test]
    fn event_fields_keep_their_json_types() {
        let mut line = Vec::new();
        let port: u16 = 18777;
        let host = String::from("db");
        write_event_line(
            &mut line,
            LogLevel::Warn,
            "postgres is not reachable yet",
            &[
                ("host", &host),
                ("port", &port),
                ("attempts", &20u64),
                ("tls", &false),
                ("operation", &"get"),
            ],
        );
        let line: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(line["level"], "warn");
        assert_eq!(line["message"], "postgres is not reachable yet");
        assert_eq!(line["host"], "db");
        assert_eq!(line["port"], 18777);
        assert_eq!(line["attempts"], 20);
        assert_eq!(line["tls"], false);
        assert_eq!(line["operation"], "get");
    }
}
