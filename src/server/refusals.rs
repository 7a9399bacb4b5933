//! Requests hyper refuses before the service sees them, so that they are counted and logged too.
//!
//! When a request head cannot be parsed, hyper 1 answers by itself and then ends the connection
//! with the parse error: the service's handler never runs, so without this module such requests
//! would leave no log line and no metric. What that answer is, and why it cannot be changed:
//! docs/API.md (Operations, refusals before routing).

use std::time::Duration;

use hyper::StatusCode;
use hyper::header::HeaderMap;

use crate::http::trace_context::TraceContext;
use crate::router::Route;
use crate::state::AppState;
use crate::telemetry::log::RequestRecord;

/// The status hyper answered a refused request with, or `None` if the error is not a refusal
/// (the client went away, a timeout, an I/O error) or hyper sent nothing.
pub(crate) fn refusal_status(error: &hyper::Error) -> Option<StatusCode> {
    if !error.is_parse() || error.is_parse_version_h2() {
        return None;
    }
    if error.is_parse_too_large() {
        // hyper's API tells a long target (414) from a large head (431) only by its message. Only
        // 431 occurs with today's buffer (pinned by tests/api/refusals.rs), 414 once it passes 64 KiB.
        return Some(if error.to_string().contains("URI too long") {
            StatusCode::URI_TOO_LONG
        } else {
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        });
    }
    // hyper answers every other parse error of a request head with 400, except its own internal
    // errors, which its message names.
    (!error.to_string().contains("internal error")).then_some(StatusCode::BAD_REQUEST)
}

/// Counts and logs a refused request as a request of the `unmatched` route: its method is unknown
/// (`-`), it carried no request id hyper could read (empty), it starts a trace of its own (no
/// `traceparent` could be read either), and its duration runs from its head's first byte.
pub(crate) fn record(state: &AppState, status: StatusCode, error: &hyper::Error, duration: Duration) {
    let status = status.as_u16();
    state.metrics.record_request(Route::Unmatched, None, status, duration);
    let reason = error.to_string();
    let trace = TraceContext::continue_or_start(&HeaderMap::new());
    state.logger.request(&RequestRecord {
        method: "-",
        route: Route::Unmatched.template(),
        status,
        duration,
        request_id: b"",
        trace_id: trace.trace_id(),
        span_id: trace.span_id(),
        cache: None,
        user_id: None,
        error: Some(&reason),
    });
}
