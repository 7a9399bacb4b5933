//! Operational endpoints: liveness (and "ready once since it started"), readiness, metrics and
//! the API description.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use hyper::StatusCode;

use crate::auth::NO_KEYS;
use crate::error::{Cause, Error};
use crate::http::response::{HttpResponse, PROMETHEUS_TEXT, json, with_content_type};
use crate::state::AppState;
use crate::telemetry::log::Logger;

const HEALTHY: &[u8] = br#"{"status":"ok"}"#;

/// The OpenAPI description, converted from `openapi.yaml` to JSON at build time.
const OPENAPI_JSON: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// Liveness: touches nothing, so a slow database never gets the process restarted. With the query
/// parameter `started`, `/ready`'s answer until the process first is ready, then plain liveness
/// again: a rollout waits for readiness, and a later outage restarts no replica (docs/DEPLOY.md).
pub(crate) async fn health(state: &AppState, query: Option<&str>) -> Result<HttpResponse, Error> {
    let started_asked =
        query.is_some_and(|query| query.split('&').any(|pair| pair.split('=').next() == Some("started")));
    if started_asked && !state.has_been_ready.load(Ordering::Acquire) {
        ready(state).await?;
    }
    Ok(json(StatusCode::OK, Bytes::from_static(HEALTHY)))
}

/// Readiness: Postgres must answer, and with authentication on the issuer's keys must have been
/// fetched once (a replica without them could only answer 503); the cache is optional and only
/// reported.
pub(crate) async fn ready(state: &AppState) -> Result<HttpResponse, Error> {
    let (postgres, redis) = tokio::join!(state.db.ping(), async {
        match &state.cache {
            None => "disabled",
            Some(cache) if cache.ping().await => "ok",
            Some(_) => "down",
        }
    });
    let auth = state.auth.readiness();
    let not_ready = |postgres, cause: Cause| Error::NotReady {
        postgres,
        redis,
        auth,
        cause,
    };
    postgres.map_err(|error| match error {
        Error::SchemaBehind(gap) => not_ready("schema_behind", gap.into()),
        error => not_ready("down", Box::new(error)),
    })?;
    if auth == NO_KEYS {
        return Err(not_ready(
            "ok",
            "no usable key of the token issuer is held: none fetched yet, or its key set lists none".into(),
        ));
    }
    state.has_been_ready.store(true, Ordering::Release);
    let body = format!(r#"{{"status":"ready","postgres":"ok","redis":"{redis}","auth":"{auth}"}}"#);
    Ok(json(StatusCode::OK, body))
}

pub(crate) fn metrics(state: &AppState) -> HttpResponse {
    let cache = state.cache.as_ref().map(|cache| cache.figures());
    let text = state.metrics.exposition(
        state.db.stats(),
        cache,
        state.auth.figures(),
        state.writes.waiting_creates(),
        Logger::dropped_lines(),
    );
    with_content_type(StatusCode::OK, PROMETHEUS_TEXT, Bytes::from(text))
}

pub(crate) fn openapi() -> HttpResponse {
    json(StatusCode::OK, Bytes::from_static(OPENAPI_JSON))
}
