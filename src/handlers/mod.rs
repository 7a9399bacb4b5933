//! Request handling: the per-request envelope and the dispatch from route and method to handler.
//!
//! `handle` is what the server calls for every request. It picks the request id, continues or
//! starts the trace, runs the handler under the request deadline, turns an `Error` into its
//! problem response, stamps the request id and `traceparent`, and records the request in the
//! metrics and the log. Handlers themselves only speak HTTP for their route.

mod system;
mod user_routes;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request};

use crate::error::Error;
use crate::http::body::Arrival;
use crate::http::response::{HttpResponse, X_CACHE, X_REQUEST_ID};
use crate::http::trace_context::{TRACEPARENT, TraceContext};
use crate::http::{MAX_TARGET_BYTES, request_id};
use crate::router::{self, Route};
use crate::state::AppState;
use crate::telemetry::log::RequestRecord;
use crate::writes::WriteWatch;

/// The contract's deadline: a request that takes longer gets 503.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers one request; never fails (every error becomes a response). `arrival` is its
/// connection, as reading a body needs it.
pub(crate) async fn handle(state: Arc<AppState>, request: Request<Incoming>, arrival: &dyn Arrival) -> HttpResponse {
    let started = Instant::now();
    let request_id = request_id::choose(request.headers().get(X_REQUEST_ID));
    let trace = TraceContext::continue_or_start(request.headers());
    let (parts, body) = request.into_parts();
    let target_length = parts.uri.path_and_query().map_or(0, |target| target.as_str().len());
    let deadline = tokio::time::Instant::from_std(started) + REQUEST_TIMEOUT;
    let watch = WriteWatch::new(deadline);
    let (route, outcome) = if target_length > MAX_TARGET_BYTES {
        (Route::Unmatched, Err(Error::UriTooLong))
    } else {
        let route = router::resolve(parts.uri.path());
        let handled = dispatch(&state, route, &parts, body, &watch, arrival);
        match tokio::time::timeout_at(deadline, handled).await {
            Ok(outcome) => (route, outcome),
            Err(_) => (route, Err(watch.timed_out())),
        }
    };
    respond(&state, &parts, started, route, outcome, (request_id, trace))
}

/// Answers a request that is not run (`refusal` says why), as any other is answered: logged,
/// counted, with its request id and trace.
pub(crate) fn refuse(state: &AppState, request: Request<Incoming>, refusal: Error) -> HttpResponse {
    let started = Instant::now();
    let request_id = request_id::choose(request.headers().get(X_REQUEST_ID));
    let trace = TraceContext::continue_or_start(request.headers());
    let (parts, _) = request.into_parts();
    let route = router::resolve(parts.uri.path());
    respond(state, &parts, started, route, Err(refusal), (request_id, trace))
}

/// Turns an outcome into the response, stamps it, and records the request.
fn respond(
    state: &AppState,
    parts: &hyper::http::request::Parts,
    started: Instant,
    route: Route<'_>,
    outcome: Result<HttpResponse, Error>,
    (request_id, trace): (HeaderValue, TraceContext),
) -> HttpResponse {
    let (mut response, failure) = match outcome {
        Ok(response) => (response, None),
        Err(error) => {
            let failure = failure_cause(&error);
            (error.into_response(), failure)
        }
    };
    let duration = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.record_request(route, &parts.method, status, duration);
    state.logger.request(&RequestRecord {
        method: parts.method.as_str(),
        route: route.template(),
        status,
        duration,
        request_id: request_id.as_bytes(),
        trace_id: trace.trace_id(),
        span_id: trace.span_id(),
        cache: response.headers().get(X_CACHE).map(cache_label),
        error: failure.as_deref(),
    });
    response.headers_mut().insert(X_REQUEST_ID, request_id);
    response.headers_mut().insert(TRACEPARENT, trace.traceparent());
    response
}

/// Why a request failed, for its log line: the source chain behind a 5xx, never sent to the client.
fn failure_cause(error: &Error) -> Option<Cow<'static, str>> {
    match error {
        Error::Timeout => Some(Cow::Borrowed("the request ran past its 10 s deadline")),
        Error::NoRoom => Some(Cow::Borrowed(
            "the connection was chosen to close for room as the request arrived",
        )),
        _ => error
            .cause()
            .map(|cause| Cow::Owned(crate::error::chain(cause.as_ref()))),
    }
}

fn cache_label(value: &HeaderValue) -> &'static str {
    if value == "HIT" { "HIT" } else { "MISS" }
}

/// Finds the handler for a route and method; 404 and 405 are decided here for every route.
async fn dispatch(
    state: &AppState,
    route: Route<'_>,
    parts: &hyper::http::request::Parts,
    body: Incoming,
    watch: &WriteWatch,
    arrival: &dyn Arrival,
) -> Result<HttpResponse, Error> {
    let reads = parts.method == Method::GET || parts.method == Method::HEAD;
    match (route, &parts.method) {
        (Route::Health, _) if reads => Ok(system::health()),
        (Route::Ready, _) if reads => system::ready(state).await,
        (Route::Metrics, _) if reads => Ok(system::metrics(state)),
        (Route::OpenApi, _) if reads => Ok(system::openapi()),
        (Route::Users, _) if reads => user_routes::list(state, parts.uri.query()).await,
        (Route::Users, &Method::POST) => user_routes::create(state, &parts.headers, (body, arrival), watch).await,
        (Route::User(id), _) if reads => user_routes::get(state, id).await,
        (Route::User(id), &Method::PATCH) => {
            user_routes::update(state, id, &parts.headers, (body, arrival), watch).await
        }
        (Route::User(id), &Method::DELETE) => user_routes::delete(state, id, &parts.headers, watch).await,
        (Route::Unmatched, _) => Err(Error::NotFound("nothing is served at this path".into())),
        (route, _) => Err(Error::MethodNotAllowed { allow: route.allow() }),
    }
}
