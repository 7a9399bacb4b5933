//! Operational endpoints: liveness, readiness, metrics and the API description.

use bytes::Bytes;
use hyper::StatusCode;

use crate::error::Error;
use crate::http::response::{HttpResponse, PROMETHEUS_TEXT, json, with_content_type};
use crate::state::AppState;
use crate::telemetry::log::Logger;
use crate::telemetry::metrics::CacheFigures;

const HEALTHY: &[u8] = br#"{"status":"ok"}"#;

/// The OpenAPI description, converted from `openapi.yaml` to JSON at build time.
const OPENAPI_JSON: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// Liveness: touches nothing, so a slow database never gets the process restarted.
pub(crate) fn health() -> HttpResponse {
    json(StatusCode::OK, Bytes::from_static(HEALTHY))
}

/// Readiness: Postgres must answer; the cache is optional and only reported.
pub(crate) async fn ready(state: &AppState) -> Result<HttpResponse, Error> {
    let (postgres, redis) = tokio::join!(state.db.ping(), async {
        match &state.cache {
            None => "disabled",
            Some(cache) if cache.ping().await => "ok",
            Some(_) => "down",
        }
    });
    if let Err(error) = postgres {
        return Err(Error::NotReady {
            redis,
            cause: Box::new(error),
        });
    }
    let body = format!(r#"{{"status":"ready","postgres":"ok","redis":"{redis}"}}"#);
    Ok(json(StatusCode::OK, body))
}

pub(crate) fn metrics(state: &AppState) -> HttpResponse {
    let cache = state.cache.as_ref().map(|cache| CacheFigures {
        local_entries: cache.local_entries(),
    });
    let text = state.metrics.exposition(
        state.db.stats(),
        cache,
        state.writes.waiting_creates(),
        Logger::dropped_lines(),
    );
    with_content_type(StatusCode::OK, PROMETHEUS_TEXT, Bytes::from(text))
}

pub(crate) fn openapi() -> HttpResponse {
    json(StatusCode::OK, Bytes::from_static(OPENAPI_JSON))
}
