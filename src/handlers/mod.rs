//! Request handling: the per-request envelope (`handle`: the request id, the trace, CORS and its
//! preflights, the deadline, the problem response, `Cache-Control` on user routes, the metrics and
//! the log line) and the dispatch (`Action`, the one table of each route and method's handler and
//! scope; the caller is authorized before its handler runs). Handlers only speak HTTP.

mod system;
mod user_routes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, HeaderValue};
use hyper::{Method, Request};

use crate::auth::{Caller, Scope};
use crate::error::Error;
use crate::http::body::Arrival;
use crate::http::cors::CorsPolicy;
use crate::http::response::{HttpResponse, X_CACHE, X_REQUEST_ID};
use crate::http::trace_context::{TRACEPARENT, TraceContext};
use crate::http::{MAX_TARGET_BYTES, host_problem, request_id};
use crate::router::{self, Route};
use crate::state::AppState;
use crate::telemetry::log::RequestRecord;

/// The contract's deadline: a request that takes longer gets 503.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How much later than the deadline the request-wide timeout fires. Tokio's timer fires its
/// entries in deadline order but wakes tasks in batches, so a timeout at the very instant of a
/// write's own could wake the request first and answer a plain 503 for a write already sent.
const BACKSTOP_SLACK: Duration = Duration::from_millis(20);

/// What a request asks for, once its route and method are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action<'a> {
    Health,
    Ready,
    Metrics,
    OpenApi,
    ListUsers,
    CreateUser,
    GetUser(&'a str),
    UpdateUser(&'a str),
    DeleteUser(&'a str),
}

/// What the envelope takes from a request's head before anything runs, and stamps on its answer.
struct Envelope {
    started: Instant,
    request_id: HeaderValue,
    trace: TraceContext,
    allowed_origin: Option<HeaderValue>,
}

/// Answers one request; never fails (every error becomes a response). `arrival` is its
/// connection, as reading a body needs it.
pub(crate) async fn handle(state: Arc<AppState>, request: Request<Incoming>, arrival: &dyn Arrival) -> HttpResponse {
    let envelope = Envelope::open(&state, &request);
    let (parts, body) = request.into_parts();
    let target_length = parts.uri.path_and_query().map_or(0, |target| target.as_str().len());
    let deadline = tokio::time::Instant::from_std(envelope.started) + REQUEST_TIMEOUT;
    let mut caller = Caller::default();
    let (route, outcome) = if target_length > MAX_TARGET_BYTES {
        (Route::Unmatched, Err(Error::UriTooLong))
    } else {
        let route = router::resolve(parts.uri.path());
        let preflight = envelope
            .allowed_origin
            .as_ref()
            .and_then(|_| CorsPolicy::preflight(&parts.method, &parts.headers, route.allow()));
        match preflight {
            Some(preflight) => (route, Ok(preflight)),
            None => {
                // A write answers at the deadline itself, saying whether it was sent; this is for the
                // rest, and a moment later, so that it never fires before the write's own timer.
                let served = serve(&state, route, &parts, (body, arrival), deadline, &mut caller);
                let outcome = tokio::time::timeout_at(deadline + BACKSTOP_SLACK, served).await;
                (route, outcome.unwrap_or(Err(Error::Timeout)))
            }
        }
    };
    envelope.close(&state, &parts, route, outcome, &caller)
}

/// Answers a request that is not run (`refusal` says why), as any other is answered: logged,
/// counted, with its request id, trace and CORS headers.
pub(crate) fn refuse(state: &AppState, request: Request<Incoming>, refusal: Error) -> HttpResponse {
    let envelope = Envelope::open(state, &request);
    let (parts, _) = request.into_parts();
    let route = router::resolve(parts.uri.path());
    envelope.close(state, &parts, route, Err(refusal), &Caller::default())
}

impl Envelope {
    fn open(state: &AppState, request: &Request<Incoming>) -> Envelope {
        Envelope {
            started: Instant::now(),
            request_id: request_id::choose(request.headers().get_all(X_REQUEST_ID)),
            trace: TraceContext::continue_or_start(request.headers()),
            allowed_origin: state
                .cors
                .as_ref()
                .and_then(|cors| cors.allowed_origin(request.headers())),
        }
    }

    /// Turns an outcome into the response, stamps it, and records the request.
    fn close(
        self,
        state: &AppState,
        parts: &hyper::http::request::Parts,
        route: Route<'_>,
        outcome: Result<HttpResponse, Error>,
        caller: &Caller,
    ) -> HttpResponse {
        let failure = outcome.as_ref().err().and_then(Error::log_cause);
        let mut response = outcome.unwrap_or_else(Error::into_response);
        let duration = self.started.elapsed();
        let (method, status) = (&parts.method, response.status().as_u16());
        state.metrics.record_request(route, Some(method), status, duration);
        state.logger.request(&RequestRecord {
            method: method.as_str(),
            route: route.template(),
            status,
            duration,
            request_id: self.request_id.as_bytes(),
            trace_id: self.trace.trace_id(),
            span_id: self.trace.span_id(),
            cache: response
                .headers()
                .get(X_CACHE)
                .map(|value| if value == "HIT" { "HIT" } else { "MISS" }),
            user_id: caller.user_id(),
            error: failure.as_deref(),
        });
        let headers = response.headers_mut();
        headers.insert(X_REQUEST_ID, self.request_id);
        headers.insert(TRACEPARENT, self.trace.traceparent());
        if matches!(route, Route::Users | Route::User(_)) {
            // A user's data is the caller's alone: no browser or shared cache keeps it.
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        if state.cors.is_some() {
            CorsPolicy::mark(&mut response, self.allowed_origin);
        }
        response
    }
}

/// Checks that the request names its host, authorizes the caller for what it asks, then runs its
/// handler. `caller` is filled in as soon as it is known, so the log line names it even if the
/// handler runs out of time. (The host check sits here rather than beside the 414 in `handle`:
/// there it made the compiled request path copy more, docs/benchmarks/log.md has the figures.)
async fn serve(
    state: &AppState,
    route: Route<'_>,
    parts: &hyper::http::request::Parts,
    body: (Incoming, &dyn Arrival),
    deadline: tokio::time::Instant,
    caller: &mut Caller,
) -> Result<HttpResponse, Error> {
    if let Some(problem) = host_problem(parts.version, &parts.headers) {
        return Err(Error::BadRequest(problem.into()));
    }
    let action = Action::of(route, &parts.method)?;
    if let Some(scope) = action.scope() {
        state.auth.authorize(&parts.headers, scope, caller).await?;
    }
    let subject = caller.subject();
    let headers = &parts.headers;
    match action {
        Action::Health => system::health(state, parts.uri.query()).await,
        Action::Ready => system::ready(state).await,
        Action::Metrics => Ok(system::metrics(state)),
        Action::OpenApi => Ok(system::openapi()),
        Action::ListUsers => user_routes::list(state, parts.uri.query()).await,
        Action::CreateUser => user_routes::create(state, subject, headers, body, deadline).await,
        Action::GetUser(id) => user_routes::get(state, id).await,
        Action::UpdateUser(id) => user_routes::update(state, subject, id, headers, body, deadline).await,
        Action::DeleteUser(id) => user_routes::delete(state, subject, id, headers, deadline).await,
    }
}

impl<'a> Action<'a> {
    /// The action of a route and method; 404 and 405 are decided here for every route.
    fn of(route: Route<'a>, method: &Method) -> Result<Action<'a>, Error> {
        let reads = method == Method::GET || method == Method::HEAD;
        match (route, method) {
            (Route::Health, _) if reads => Ok(Action::Health),
            (Route::Ready, _) if reads => Ok(Action::Ready),
            (Route::Metrics, _) if reads => Ok(Action::Metrics),
            (Route::OpenApi, _) if reads => Ok(Action::OpenApi),
            (Route::Users, _) if reads => Ok(Action::ListUsers),
            (Route::Users, &Method::POST) => Ok(Action::CreateUser),
            (Route::User(id), _) if reads => Ok(Action::GetUser(id)),
            (Route::User(id), &Method::PATCH) => Ok(Action::UpdateUser(id)),
            (Route::User(id), &Method::DELETE) => Ok(Action::DeleteUser(id)),
            (Route::Unmatched, _) => Err(Error::NotFound("nothing is served at this path".into())),
            (route, _) => Err(Error::MethodNotAllowed { allow: route.allow() }),
        }
    }

    /// The scope the caller's token must grant. The operational routes stay open: probes,
    /// scrapers and API tooling carry no user's token, and none of them shows user data.
    fn scope(self) -> Option<Scope> {
        match self {
            Action::Health | Action::Ready | Action::Metrics | Action::OpenApi => None,
            Action::ListUsers | Action::GetUser(_) => Some(Scope::UsersRead),
            Action::CreateUser | Action::UpdateUser(_) | Action::DeleteUser(_) => Some(Scope::UsersWrite),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_user_route_needs_its_scope_and_the_operational_ones_none() {
        let cases = [
            (Route::Health, Method::GET, None),
            (Route::Ready, Method::HEAD, None),
            (Route::Metrics, Method::GET, None),
            (Route::OpenApi, Method::GET, None),
            (Route::Users, Method::GET, Some(Scope::UsersRead)),
            (Route::Users, Method::HEAD, Some(Scope::UsersRead)),
            (Route::Users, Method::POST, Some(Scope::UsersWrite)),
            (Route::User("x"), Method::GET, Some(Scope::UsersRead)),
            (Route::User("x"), Method::PATCH, Some(Scope::UsersWrite)),
            (Route::User("x"), Method::DELETE, Some(Scope::UsersWrite)),
        ];
        for (route, method, scope) in cases {
            assert_eq!(Action::of(route, &method).unwrap().scope(), scope, "{method} {route:?}");
        }
    }

    #[test]
    fn unknown_paths_and_methods_are_refused_before_any_token_is_looked_at() {
        assert!(matches!(
            Action::of(Route::Unmatched, &Method::GET),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            Action::of(Route::Users, &Method::PUT),
            Err(Error::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            Action::of(Route::User("x"), &Method::OPTIONS),
            Err(Error::MethodNotAllowed { .. })
        ));
    }
}
