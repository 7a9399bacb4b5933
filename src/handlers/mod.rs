//! Request handling: the per-request envelope and the dispatch from route and method to handler.
//!
//! `handle` is what the server calls for every request. It picks the request id, runs the handler
//! under the request deadline, turns an `Error` into its problem response, stamps the request id,
//! and records the request in the metrics and the log. Handlers themselves only speak HTTP for
//! their route.

mod system;
mod users;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request};

use crate::app::AppState;
use crate::error::Error;
use crate::http::request_id;
use crate::http::response::{HttpResponse, X_CACHE, X_REQUEST_ID};
use crate::router::{self, Route};
use crate::telemetry::log::RequestRecord;

/// The contract's deadline: a request that takes longer gets 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers one request; never fails (every error becomes a response).
pub async fn handle(state: Arc<AppState>, request: Request<Incoming>) -> HttpResponse {
    let started = Instant::now();
    let request_id = request_id::choose(request.headers().get(X_REQUEST_ID));
    let method = request.method().clone();
    let (route, _) = router::resolve(request.uri().path());
    let outcome = match tokio::time::timeout(REQUEST_TIMEOUT, dispatch(&state, route, request)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Error::Timeout),
    };
    let (mut response, failure) = match outcome {
        Ok(response) => (response, None),
        Err(error) => {
            let failure = error.cause().map(|cause| crate::error::chain(cause.as_ref()));
            (error.into_response(), failure)
        }
    };
    let duration = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.record_request(route, &method, status, duration);
    state.logger.request(&RequestRecord {
        method: method.as_str(),
        route: route.template(),
        status,
        duration,
        request_id: request_id.as_bytes(),
        cache: response.headers().get(X_CACHE).map(cache_label),
        error: failure.as_deref(),
    });
    response.headers_mut().insert(X_REQUEST_ID, request_id);
    response
}

fn cache_label(value: &HeaderValue) -> &'static str {
    if value == "HIT" { "HIT" } else { "MISS" }
}

/// Finds the handler for a route and method; 404 and 405 are decided here for every route.
async fn dispatch(state: &AppState, route: Route, request: Request<Incoming>) -> Result<HttpResponse, Error> {
    let (parts, body) = request.into_parts();
    let reads = parts.method == Method::GET || parts.method == Method::HEAD;
    match (route, &parts.method) {
        (Route::Health, _) if reads => Ok(system::health()),
        (Route::Ready, _) if reads => system::ready(state).await,
        (Route::Metrics, _) if reads => Ok(system::metrics(state)),
        (Route::OpenApi, _) if reads => Ok(system::openapi()),
        (Route::Users, _) if reads => users::list(state, parts.uri.query()).await,
        (Route::Users, &Method::POST) => users::create(state, &parts.headers, body).await,
        (Route::User, method) => {
            // The route is `/v1/users/{id}`, so the id is the last segment.
            let id = parts.uri.path().rsplit('/').next().unwrap_or_default();
            match *method {
                Method::GET | Method::HEAD => users::get(state, id).await,
                Method::PATCH => users::update(state, id, &parts.headers, body).await,
                Method::DELETE => users::delete(state, id).await,
                _ => Err(Error::MethodNotAllowed { allow: route.allow() }),
            }
        }
        (Route::Unmatched, _) => Err(Error::NotFound("nothing is served at this path".into())),
        (route, _) => Err(Error::MethodNotAllowed { allow: route.allow() }),
    }
}
