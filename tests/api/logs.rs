//! What the binary writes: one JSON request line per request on stdout, at `warn` for a 5xx with
//! its cause, `debug` for a passing probe and `info` otherwise, under the field names log shippers know; JSON events on stderr
//! whose numbers are JSON numbers.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{Services, TestDatabase, free_port};
use crate::service_process;
use crate::support::http;

const CALLER_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test]
async fn a_503_is_logged_at_warn_with_its_cause_when_only_warnings_are_logged() {
    let closed_port = free_port();
    let service = service_process::start(settings(&[
        ("DB_PORT", &closed_port.to_string()),
        ("REDIS_HOST", ""),
        ("LOG_LEVEL", "warn"),
    ]))
    .await;

    let failed = service.get("/v1/users/5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9d").await;
    let healthy = service.get("/health").await;
    let finished = service.stop_with("TERM").await;

    assert_eq!((failed.status, healthy.status), (503, 200));
    assert!(finished.status.success(), "{:?}", finished.status);
    let lines = finished.request_lines();
    assert_eq!(lines.len(), 1, "only the 503 is logged at warn:\n{}", finished.stdout);
    let line = &lines[0];
    assert_eq!(line["level"], "warn");
    assert_eq!(line["http.response.status_code"], 503);
    assert_eq!(line["http.route"], "/v1/users/{id}");
    let cause = line["error.message"].as_str().expect("the cause is logged");
    assert!(cause.contains("Postgres"), "{cause}");
}

#[tokio::test]
async fn probes_that_pass_are_logged_at_debug_and_probes_that_fail_at_warn() {
    let closed_port = free_port();
    let at = |level: &'static str| {
        settings(&[
            ("DB_PORT", &closed_port.to_string()),
            ("REDIS_HOST", ""),
            ("LOG_LEVEL", level),
        ])
    };
    let service = service_process::start(at("info")).await;
    let passing = service.get("/health").await;
    let failing = service.get("/ready").await;
    let finished = service.stop_with("TERM").await;
    assert_eq!((passing.status, failing.status), (200, 503));
    let routes: Vec<_> = finished
        .request_lines()
        .iter()
        .map(|line| (line["http.route"].clone(), line["level"].clone()))
        .collect();
    assert_eq!(routes, [("/ready".into(), "warn".into())], "{}", finished.stdout);

    let service = service_process::start(at("debug")).await;
    service.get("/health").await;
    let finished = service.stop_with("TERM").await;
    let lines = finished.request_lines();
    let probe = lines
        .iter()
        .find(|line| line["http.route"] == "/health")
        .expect("at debug, the probe is logged");
    assert_eq!(probe["level"], "debug");
}

#[tokio::test]
async fn request_lines_carry_the_callers_trace_under_the_names_shippers_know() {
    let database = TestDatabase::create().await;
    let mut vars = database.services.vars(&database.name, &database.name);
    vars.push(("LOG_LEVEL".into(), "info".into()));
    let service = service_process::start(vars).await;
    let traceparent = format!("00-{CALLER_TRACE_ID}-00f067aa0ba902b7-01");

    let headers = [("traceparent", traceparent.as_str()), ("x-request-id", "logs-1")];
    let answer = http::request(service.port, "GET", "/openapi.json", &headers, None)
        .await
        .unwrap();
    let finished = service.stop_with("TERM").await;

    let sent = answer.header("traceparent").expect("traceparent is returned");
    let [version, trace_id, span_id, flags] = sent.split('-').collect::<Vec<_>>()[..] else {
        panic!("{sent}")
    };
    assert_eq!((version, trace_id, flags), ("00", CALLER_TRACE_ID, "01"));
    let lines = finished.request_lines();
    let line = lines
        .iter()
        .find(|line| line["http.request.id"] == "logs-1")
        .expect("the request is logged");
    let mut fields = line.as_object().unwrap().clone();
    let timestamp = fields.remove("timestamp").expect("timestamp");
    assert!(timestamp.as_str().unwrap().ends_with('Z'), "{timestamp}");
    let duration = fields.remove("event.duration").expect("event.duration");
    assert!(duration.as_u64().unwrap() > 0, "nanoseconds, as a number: {duration}");
    assert_eq!(
        Value::Object(fields),
        serde_json::json!({
            "level": "info",
            "message": "request",
            "http.request.method": "GET",
            "http.route": "/openapi.json",
            "http.response.status_code": 200,
            "http.request.id": "logs-1",
            "trace_id": CALLER_TRACE_ID,
            "span_id": span_id,
        })
    );
}

#[tokio::test]
async fn events_write_numbers_as_json_numbers() {
    // The most MAX_CONNECTIONS allows, more than any descriptor limit leaves room for: a warning.
    let service = service_process::start(settings(&[
        ("LOG_LEVEL", "info"),
        ("REDIS_HOST", ""),
        ("MAX_CONNECTIONS", "1048576"),
    ]))
    .await;
    let port = service.port;
    let finished = service.stop_with("TERM").await;

    assert!(finished.status.success(), "{:?}", finished.status);
    for event in finished.events() {
        assert!(event["timestamp"].is_string() && event["level"].is_string(), "{event}");
        assert!(event["message"].is_string(), "{event}");
    }
    assert_eq!(finished.event("listening")["port"], port);
    let draining = finished.event("shutting down; draining in-flight requests");
    assert_eq!(draining["grace_seconds"], 5);
    let too_many = finished.event("MAX_CONNECTIONS is above what the descriptor limit leaves for clients");
    assert_eq!(too_many["max_connections"], 1_048_576);
    assert!(too_many["descriptor_limit"].is_u64(), "{too_many}");
    assert!(too_many["room_for_clients"].is_u64(), "{too_many}");
}

/// The test settings against the `postgres` database, with some replaced.
#[tokio::test]
async fn request_lines_stdout_refuses_are_counted_as_dropped() {
    let database = TestDatabase::create().await;
    let stderr = std::env::temp_dir().join(format!("gravity-bff-full-stdout-{}", std::process::id()));
    // Passing probes are logged at debug.
    let vars = [("LOG_LEVEL", "debug")];
    let service = crate::support::service::Launch {
        // A disk that is full: every write fails with ENOSPC.
        output: Some(("/dev/full".into(), stderr.clone())),
        ..service_process::launch(&database, &vars)
    }
    .start()
    .await
    .unwrap();
    for _ in 0..20 {
        assert_eq!(service.get("/health").await.status, 200);
    }
    let dropped = crate::helpers::eventually(Duration::from_secs(5), async || {
        let metrics = service.get("/metrics").await.text();
        let line = metrics
            .lines()
            .find(|line| line.starts_with("gravity_log_lines_dropped_total "));
        line.and_then(|line| line.split(' ').nth(1)?.parse::<u64>().ok())
            .is_some_and(|count| count >= 20)
    })
    .await;
    assert!(dropped, "each request line stdout refused is counted");
    let _ = std::fs::remove_file(stderr);
}

fn settings(replaced: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut vars = Services::from_env().vars("postgres", "gravity-logs-test");
    for (name, value) in replaced {
        vars.retain(|(existing, _)| existing != name);
        vars.push(((*name).to_owned(), (*value).to_owned()));
    }
    vars
}
