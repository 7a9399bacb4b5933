//! W3C Trace Context: a valid `traceparent` is continued with a span of the service's own, an
//! invalid one is replaced by a new trace, and every response names its span in `traceparent`.

use hyper::Method;

use crate::helpers::{TestResponse, spawn_app};

const CALLER_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

/// The response's `traceparent`, split into version, trace id, span id and flags, each checked.
fn returned_traceparent(response: &TestResponse) -> (String, String, String, String) {
    let value = response
        .header("traceparent")
        .expect("every response carries traceparent");
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    let lower_hex = |text: &str, len: usize| {
        text.len() == len
            && text
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
    };
    assert_eq!(parts[0], "00", "{value}");
    assert!(lower_hex(parts[1], 32) && parts[1] != "0".repeat(32), "{value}");
    assert!(lower_hex(parts[2], 16) && parts[2] != "0".repeat(16), "{value}");
    assert!(lower_hex(parts[3], 2), "{value}");
    (
        parts[0].to_owned(),
        parts[1].to_owned(),
        parts[2].to_owned(),
        parts[3].to_owned(),
    )
}

#[tokio::test]
async fn a_valid_traceparent_is_continued_with_a_new_span_id() {
    let app = spawn_app().await;
    for flags in ["01", "00"] {
        let traceparent = format!("00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-{flags}");
        let response = app
            .request(Method::GET, "/health", &[("traceparent", traceparent.as_str())], "")
            .await;
        let (_, trace_id, span_id, returned_flags) = returned_traceparent(&response);
        assert_eq!(trace_id, CALLER_TRACE_ID);
        assert_ne!(span_id, CALLER_SPAN_ID, "the service's span is its own");
        assert_eq!(returned_flags, flags, "the caller's sampling decision is kept");
    }
}

#[tokio::test]
async fn an_invalid_traceparent_is_replaced_by_a_new_trace() {
    let app = spawn_app().await;
    let cases = [
        ("version ff", format!("ff-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01")),
        (
            "all-zero trace id",
            format!("00-{}-{CALLER_SPAN_ID}-01", "0".repeat(32)),
        ),
        (
            "all-zero parent id",
            format!("00-{CALLER_TRACE_ID}-{}-01", "0".repeat(16)),
        ),
        (
            "short trace id",
            format!("00-{}-{CALLER_SPAN_ID}-01", &CALLER_TRACE_ID[1..]),
        ),
        ("long parent id", format!("00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}0-01")),
        (
            "upper-case hex",
            format!("00-{}-{CALLER_SPAN_ID}-01", CALLER_TRACE_ID.to_uppercase()),
        ),
        ("not hex", format!("00-{}x-{CALLER_SPAN_ID}-01", &CALLER_TRACE_ID[1..])),
        (
            "version 00 with a fifth field",
            format!("00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01-00"),
        ),
        ("garbage", "not a traceparent".to_owned()),
    ];
    for (why, traceparent) in cases {
        let response = app
            .request(Method::GET, "/health", &[("traceparent", traceparent.as_str())], "")
            .await;
        assert_eq!(response.status, 200, "{why}: the request itself is served");
        let (_, trace_id, _, flags) = returned_traceparent(&response);
        assert_ne!(trace_id, CALLER_TRACE_ID, "{why}: {traceparent}");
        assert_eq!(flags, "00", "{why}: a new trace is not sampled by the service");
    }
}

#[tokio::test]
async fn without_a_traceparent_every_response_starts_a_trace_of_its_own() {
    let app = spawn_app().await;
    let mut trace_ids = Vec::new();
    for (method, path) in [
        (Method::GET, "/health"),
        (Method::GET, "/nowhere"),
        (Method::PUT, "/health"),
        (Method::GET, "/v1/users/not-a-uuid"),
    ] {
        let response = app.request(method, path, &[], "").await;
        trace_ids.push(returned_traceparent(&response).1);
    }
    trace_ids.sort();
    trace_ids.dedup();
    assert_eq!(trace_ids.len(), 4, "each request is a trace of its own");
}
