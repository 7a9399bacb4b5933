//! `/v1/users` and `/v1/users/{id}`: HTTP in, HTTP out. SQL lives in `db::user_queries`, keys in
//! `cache`, and every write goes through `writes`, which runs it to completion and removes the
//! cached body before the answer.

use hyper::StatusCode;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, LOCATION};
use serde::Serialize;
use tokio::time::Instant;
use uuid::Uuid;

use super::REQUEST_TIMEOUT;
use crate::cache::Lookup;
use crate::db::idempotency_records;
use crate::db::user_queries as store;
use crate::error::Error;
use crate::http::body::{Arrival, read_json_body};
use crate::http::response::{HIT, HttpResponse, MISS, X_CACHE, empty, json};
use crate::state::AppState;
use crate::user::input::{NewUser, UserPatch};
use crate::user::page::PageRequest;
use crate::user::{USER_JSON_CAPACITY, User, parse_user_id};
use crate::writes::{IdempotencyKey, WriteRequest, not_found};

/// Marks a response replayed for its Idempotency-Key.
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

#[derive(Serialize)]
struct Page<'a> {
    items: &'a [User],
    next_cursor: Option<String>,
}

/// The hot path: one Redis read and, on a hit, the stored bytes as the body.
pub(crate) async fn get(state: &AppState, id: &str) -> Result<HttpResponse, Error> {
    let id = parse_user_id(id)?;
    let lease = match &state.cache {
        None => None,
        Some(cache) => match cache.lookup(id).await {
            Lookup::Hit(body) => return Ok(with_cache_status(json(StatusCode::OK, body), HIT)),
            Lookup::Miss(lease) => lease,
        },
    };
    let body = state.lookups.find(id).await?.ok_or_else(|| not_found(id))?;
    if let (Some(cache), Some(lease)) = (&state.cache, lease) {
        cache.fill(id, lease, &body).await;
    }
    Ok(with_cache_status(json(StatusCode::OK, body), MISS))
}

pub(crate) async fn list(state: &AppState, query: Option<&str>) -> Result<HttpResponse, Error> {
    let page = PageRequest::from_query(query)?;
    let found = store::list_users(&state.db, page).await?;
    let body = Page {
        items: &found.users,
        next_cursor: found.next.map(|cursor| cursor.encode()),
    };
    let mut bytes = Vec::with_capacity(64 + found.users.len() * USER_JSON_CAPACITY);
    serde_json::to_writer(&mut bytes, &body).map_err(Error::internal)?;
    Ok(json(StatusCode::OK, bytes))
}

/// `subject` owns the request's Idempotency-Key (the empty subject when nobody is authenticated).
pub(crate) async fn create(
    state: &AppState,
    subject: &str,
    headers: &HeaderMap,
    (body, arrival): (Incoming, &dyn Arrival),
    deadline: Instant,
) -> Result<HttpResponse, Error> {
    let body = read_json_body(headers, body, arrival, deadline - REQUEST_TIMEOUT).await?;
    let new_user = NewUser::parse(body.object)?;
    let key = IdempotencyKey::from_headers(headers, subject, "POST", "/v1/users", &body.bytes)?;
    perform(state, WriteRequest::Create(new_user), key, deadline).await
}

pub(crate) async fn update(
    state: &AppState,
    subject: &str,
    id: &str,
    headers: &HeaderMap,
    (body, arrival): (Incoming, &dyn Arrival),
    deadline: Instant,
) -> Result<HttpResponse, Error> {
    let id = parse_user_id(id)?;
    let body = read_json_body(headers, body, arrival, deadline - REQUEST_TIMEOUT).await?;
    let patch = UserPatch::parse(body.object)?;
    // A malformed key is a 400 even when there is nothing to write.
    let key = IdempotencyKey::from_headers(headers, subject, "PATCH", &user_path(id), &body.bytes)?;
    if patch.is_empty() {
        // `{}` changes nothing, so nothing is written (nor recorded) and `updated_at` stays; a key
        // used for another request is still refused.
        if let Some(key) = &key
            && idempotency_records::used_for_another(&state.db, &key.key, &key.request).await?
        {
            return Err(Error::IdempotencyKeyReused);
        }
        let user = state.lookups.find(id).await?.ok_or_else(|| not_found(id))?;
        return Ok(json(StatusCode::OK, user));
    }
    perform(state, WriteRequest::Update { id, patch }, key, deadline).await
}

pub(crate) async fn delete(
    state: &AppState,
    subject: &str,
    id: &str,
    headers: &HeaderMap,
    deadline: Instant,
) -> Result<HttpResponse, Error> {
    let id = parse_user_id(id)?;
    let key = IdempotencyKey::from_headers(headers, subject, "DELETE", &user_path(id), b"")?;
    perform(state, WriteRequest::Delete { id }, key, deadline).await
}

/// The path of a user in canonical form (lower-case id), as an Idempotency-Key fingerprint sees it.
fn user_path(id: Uuid) -> String {
    format!("/v1/users/{}", id.hyphenated())
}

/// Runs the write to completion (or replays its recorded answer) and answers with its outcome.
async fn perform(
    state: &AppState,
    request: WriteRequest,
    key: Option<IdempotencyKey>,
    deadline: Instant,
) -> Result<HttpResponse, Error> {
    let written = state.writes.perform(request, key, deadline).await?;
    let mut response = if written.body.is_empty() {
        empty(written.status)
    } else {
        json(written.status, written.body)
    };
    let headers = response.headers_mut();
    if let Some(location) = written.location {
        headers.insert(LOCATION, HeaderValue::try_from(location).map_err(Error::internal)?);
    }
    if written.replayed {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

fn with_cache_status(mut response: HttpResponse, status: HeaderValue) -> HttpResponse {
    response.headers_mut().insert(X_CACHE, status);
    response
}
