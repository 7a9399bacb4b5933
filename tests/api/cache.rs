//! The cache rules: cache-aside on `GET /v1/users/{id}`, exact bodies, no stale reads after writes.

use std::time::Duration;

use redis::Commands;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_first_read_misses_and_the_second_hits() {
    let app = spawn_app().await;
    let created = app.create_user(json!({"name": "Ada"})).await;
    let path = format!("/v1/users/{}", created["id"].as_str().unwrap());
    let first = app.get(&path).await;
    assert_eq!(first.header("x-cache"), Some("MISS"));
    let second = app.get(&path).await;
    assert_eq!(second.header("x-cache"), Some("HIT"));
    assert_eq!(second.status, 200);
    assert_eq!(second.header("content-type"), Some("application/json; charset=utf-8"));
    assert_eq!(second.body, first.body, "a hit sends the very bytes of the miss");
}

#[tokio::test]
async fn the_cache_holds_the_exact_body_under_the_contract_key_with_the_ttl() {
    let app = spawn_app().await;
    let created = app.create_user(json!({"name": "Ada"})).await;
    let id = created["id"].as_str().unwrap();
    let body = app.get(&format!("/v1/users/{id}")).await.body;
    let mut redis = app.redis();
    let stored: Vec<u8> = redis.get(app.cache_key(id)).unwrap();
    assert_eq!(stored, body.to_vec());
    let ttl: i64 = redis.ttl(app.cache_key(id)).unwrap();
    assert!((290..=300).contains(&ttl), "ttl {ttl}");
}

#[tokio::test]
async fn no_read_after_a_patch_returns_the_old_user() {
    let app = spawn_app().await;
    let created = app.create_user(json!({"name": "Ada"})).await;
    let path = format!("/v1/users/{}", created["id"].as_str().unwrap());
    app.get(&path).await;
    assert_eq!(app.get(&path).await.header("x-cache"), Some("HIT"));
    let patched = app.patch_json(&path, &json!({"name": "Ada King"})).await;
    assert_eq!(patched.status, 200);
    let mut redis = app.redis();
    let exists: bool = redis.exists(app.cache_key(created["id"].as_str().unwrap())).unwrap();
    assert!(!exists, "the write removed the cached body");
    for _ in 0..3 {
        let read = app.get(&path).await;
        assert_eq!(read.json()["name"], "Ada King");
    }
}

#[tokio::test]
async fn no_read_after_a_delete_returns_the_user() {
    let app = spawn_app().await;
    let created = app.create_user(json!({"name": "Ada"})).await;
    let path = format!("/v1/users/{}", created["id"].as_str().unwrap());
    app.get(&path).await;
    assert_eq!(app.get(&path).await.header("x-cache"), Some("HIT"));
    assert_eq!(app.delete(&path).await.status, 204);
    app.get(&path).await.problem(404);
}

#[tokio::test]
async fn a_read_racing_a_write_cannot_put_the_old_user_back() {
    let app = spawn_app().await;
    let created = app.create_user(json!({"name": "v0"})).await;
    let path = format!("/v1/users/{}", created["id"].as_str().unwrap());
    for round in 1..=20 {
        let name = format!("v{round}");
        let patch = json!({"name": name});
        let (_, _, written) = tokio::join!(app.get(&path), app.get(&path), app.patch_json(&path, &patch));
        assert_eq!(written.status, 200);
        let after = app.get(&path).await;
        assert_eq!(
            after.json()["name"],
            name.as_str(),
            "round {round}: {}",
            after.header("x-cache").unwrap()
        );
    }
}

#[tokio::test]
async fn a_zero_ttl_caches_nothing_but_its_writes_still_fence_other_replicas_caches() {
    let cached = spawn_app().await;
    let uncached = cached.spawn_replica(|config| config.cache.ttl = Duration::ZERO).await;
    let created = uncached.create_user(json!({"name": "Ada"})).await;
    let path = format!("/v1/users/{}", created["id"].as_str().unwrap());
    assert_eq!(uncached.get(&path).await.header("x-cache"), Some("MISS"));
    assert_eq!(uncached.get(&path).await.header("x-cache"), Some("MISS"));
    let mut redis = uncached.redis();
    let exists: bool = redis
        .exists(uncached.cache_key(created["id"].as_str().unwrap()))
        .unwrap();
    assert!(!exists, "a replica with a zero lifetime stores nothing");

    // A replica with a lifetime caches the user; the uncached replica's write still removes it.
    cached.get(&path).await;
    assert_eq!(cached.get(&path).await.header("x-cache"), Some("HIT"));
    let patched = uncached.patch_json(&path, &json!({"name": "Grace"})).await;
    assert_eq!(patched.status, 200);
    let read = cached.get(&path).await;
    assert_eq!(read.json()["name"], "Grace");
    assert_eq!(read.header("x-cache"), Some("MISS"));
}

#[tokio::test]
async fn hits_and_misses_are_counted() {
    let app = spawn_app().await;
    let created = app.create_user(json!({"name": "Ada"})).await;
    let path = format!("/v1/users/{}", created["id"].as_str().unwrap());
    app.get(&path).await;
    app.get(&path).await;
    app.get(&path).await;
    let metrics = String::from_utf8(app.get("/metrics").await.body.to_vec()).unwrap();
    let value = |series| crate::support::metric_value(&metrics, series);
    assert_eq!(value("gravity_cache_hits_total"), Some(2.0), "{metrics}");
    assert_eq!(value("gravity_cache_misses_total"), Some(1.0), "{metrics}");
}
