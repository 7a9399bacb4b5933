//! `/v1/users` and `/v1/users/{id}`: HTTP in, HTTP out; SQL lives in `db::users`, keys in `cache`.
//!
//! Writes touch the cache only after their statement has committed, so no read that starts after
//! a successful write can be answered with the old user.

use hyper::StatusCode;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, LOCATION};
use serde::Serialize;
use uuid::Uuid;

use crate::app::AppState;
use crate::cache::Lookup;
use crate::db::users as store;
use crate::error::Error;
use crate::http::body::read_json_object;
use crate::http::response::{HIT, HttpResponse, MISS, X_CACHE, empty, json};
use crate::users::input::{NewUser, UserPatch};
use crate::users::page::PageRequest;
use crate::users::{USER_JSON_CAPACITY, User, parse_user_id};

#[derive(Serialize)]
struct Page<'a> {
    items: &'a [User],
    next_cursor: Option<String>,
}

/// The hot path: one Redis GET and, on a hit, the stored bytes as the body.
pub async fn get(state: &AppState, id: &str) -> Result<HttpResponse, Error> {
    let id = parse_user_id(id)?;
    if let Some(cache) = &state.cache
        && let Lookup::Hit(body) = cache.get(id).await
    {
        return Ok(with_cache_status(json(StatusCode::OK, body), HIT));
    }
    let user = store::find_user(&state.db, id).await?.ok_or_else(|| not_found(id))?;
    let body = user.to_json();
    if let Some(cache) = &state.cache {
        cache.fill(id, &body).await;
    }
    Ok(with_cache_status(json(StatusCode::OK, body), MISS))
}

pub async fn list(state: &AppState, query: Option<&str>) -> Result<HttpResponse, Error> {
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

pub async fn create(state: &AppState, headers: &HeaderMap, body: Incoming) -> Result<HttpResponse, Error> {
    let new_user = NewUser::parse(read_json_object(headers, body).await?)?;
    let user = store::insert_user(&state.db, &new_user).await?;
    let mut response = json(StatusCode::CREATED, user.to_json());
    let location = format!("/v1/users/{}", user.id.hyphenated());
    let location = HeaderValue::try_from(location).map_err(Error::internal)?;
    response.headers_mut().insert(LOCATION, location);
    Ok(response)
}

pub async fn update(state: &AppState, id: &str, headers: &HeaderMap, body: Incoming) -> Result<HttpResponse, Error> {
    let id = parse_user_id(id)?;
    let patch = UserPatch::parse(read_json_object(headers, body).await?)?;
    if patch.is_empty() {
        // `{}` changes nothing, so nothing is written and `updated_at` stays.
        let user = store::find_user(&state.db, id).await?.ok_or_else(|| not_found(id))?;
        return Ok(json(StatusCode::OK, user.to_json()));
    }
    let user = store::update_user(&state.db, id, &patch)
        .await?
        .ok_or_else(|| not_found(id))?;
    if let Some(cache) = &state.cache {
        cache.invalidate(id).await;
    }
    Ok(json(StatusCode::OK, user.to_json()))
}

pub async fn delete(state: &AppState, id: &str) -> Result<HttpResponse, Error> {
    let id = parse_user_id(id)?;
    if !store::delete_user(&state.db, id).await? {
        return Err(not_found(id));
    }
    if let Some(cache) = &state.cache {
        cache.invalidate(id).await;
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

fn with_cache_status(mut response: HttpResponse, status: HeaderValue) -> HttpResponse {
    response.headers_mut().insert(X_CACHE, status);
    response
}

fn not_found(id: Uuid) -> Error {
    Error::NotFound(format!("no user with id {}", id.hyphenated()))
}
