//! The cache never contradicts an acknowledged write: fills cannot store the past, a write's
//! removal survives every way Redis can fail, and a bad value is one key's problem. Each fault is
//! injected for real, on a `redis-server` (or a proxy in front of one) of the test's own.

use std::time::{Duration, Instant};

use redis::Commands;
use serde_json::{Value, json};

use crate::helpers::{
    OwnRedis, Services, TestApp, TestDatabase, eventually, free_port, http_get_json, http_post_json, http_text, signal,
    spawn_app, spawn_app_with,
};
use crate::service_process::ServiceProcess;
use crate::support::proxy::Proxy;

/// How long a recovered cache may take to serve hits again (the repairer's backoff is at most
/// 500 ms, the breaker's 1 s).
const RECOVERY: Duration = Duration::from_secs(5);

#[tokio::test]
async fn the_next_read_after_a_patch_misses_and_stores_the_new_body_and_the_one_after_hits() {
    let app = spawn_app().await;
    let path = user_path(&app.create_user(json!({"name": "Ada"})).await);
    app.get(&path).await;
    assert_eq!(app.get(&path).await.header("x-cache"), Some("HIT"));

    assert_eq!(app.patch_json(&path, &json!({"name": "Ada King"})).await.status, 200);
    let next = app.get(&path).await;
    assert_eq!(next.header("x-cache"), Some("MISS"));
    assert_eq!(next.json()["name"], "Ada King");
    let stored: Vec<u8> = app.redis().get(app.cache_key(&path[10..])).unwrap();
    assert_eq!(stored, next.body.to_vec(), "the miss stored the new body");
    let after = app.get(&path).await;
    assert_eq!(after.header("x-cache"), Some("HIT"));
    assert_eq!(after.body, next.body);
}

#[tokio::test]
async fn a_read_paused_between_its_row_and_its_fill_while_a_write_commits_stores_nothing() {
    let postgres = Proxy::start(Services::from_env().pg_port).await;
    let app = spawn_app_with(|config| {
        config.database.port = postgres.port;
        // Redis's answers are not what is raced here: a loaded machine must not time out the
        // lease (the reader would then read without one, and there would be nothing to check).
        config.cache.call_timeout = Duration::from_secs(10);
    })
    .await;
    let created = app.create_user(json!({"name": "paused-reader-sees-this"})).await;
    let path = user_path(&created);
    let key = app.cache_key(created["id"].as_str().unwrap());

    // The reader misses, takes its lease, reads the row... and its answer from Postgres is held.
    postgres.hold_reply_containing(b"paused-reader-sees-this");
    let reader = {
        let (address, path) = (app.address.clone(), path.clone());
        tokio::spawn(async move { http_get_json(&address, &path).await })
    };
    postgres.holding().await;
    let lease: Option<String> = app.redis().get(&key).unwrap();
    assert!(
        lease.is_some_and(|value| value.starts_with("lease:")),
        "the reader holds a lease"
    );

    // Meanwhile a write commits and removes the key.
    let written = app.patch_json(&path, &json!({"name": "written meanwhile"})).await;
    assert_eq!(written.status, 200);

    // The reader gets its (old) row and tries to fill: its lease is gone, so nothing is stored.
    postgres.release();
    let (status, body) = reader.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        body["name"], "paused-reader-sees-this",
        "the paused read began before the write"
    );
    let stored: Option<Vec<u8>> = app.redis().get(&key).unwrap();
    assert_eq!(stored, None, "the old body was not stored");
    let next = app.get(&path).await;
    assert_eq!(
        (next.header("x-cache"), next.json()["name"].clone()),
        (Some("MISS"), json!("written meanwhile"))
    );
    assert_eq!(app.get(&path).await.header("x-cache"), Some("HIT"));
}

#[tokio::test]
async fn redis_full_without_eviction_never_serves_an_old_body() {
    let redis = OwnRedis::start_with(free_port(), &["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]);
    let app = on_own_redis(&redis).await;
    let users = cached_users(&app, 5).await;
    let filler_keys = fill_until_out_of_memory(&redis);
    writes_during_a_fault_are_never_contradicted(&app, &users, redis.port, "Redis full (noeviction)", || {
        let mut connection = redis.connection();
        for key in &filler_keys {
            let _: () = connection.del(key).unwrap();
        }
    })
    .await;
}

#[tokio::test]
async fn redis_refusing_writes_for_want_of_replicas_never_serves_an_old_body() {
    let redis = OwnRedis::start();
    let app = on_own_redis(&redis).await;
    let users = cached_users(&app, 5).await;
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "min-replicas-to-write", "1"][..])
        .query(&mut redis.connection())
        .unwrap();
    writes_during_a_fault_are_never_contradicted(&app, &users, redis.port, "NOREPLICAS", || {
        let _: () = redis::cmd("CONFIG")
            .arg(&["SET", "min-replicas-to-write", "0"][..])
            .query(&mut redis.connection())
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn redis_killed_during_writes_and_restarted_with_its_data_never_serves_an_old_body() {
    let mut redis = OwnRedis::start_with(free_port(), &["--appendonly", "yes", "--appendfsync", "always"]);
    let app = on_own_redis(&redis).await;
    let users = cached_users(&app, 5).await;
    redis.kill();
    // Back with the bodies it had persisted before the writes.
    let port = redis.port;
    writes_during_a_fault_are_never_contradicted(&app, &users, port, "Redis killed, restarted with its AOF", || {
        redis.restart()
    })
    .await;
}

#[tokio::test]
async fn redis_restarted_from_a_snapshot_older_than_a_confirmed_removal_never_serves_the_old_body() {
    let mut redis = OwnRedis::start_with(free_port(), &[]);
    let app = on_own_redis(&redis).await;
    let users = cached_users(&app, 5).await;
    // A snapshot holding the bodies; then acknowledged writes whose removals Redis confirms, after
    // which Redis dies without saving again: it comes back with the old bodies.
    let () = redis::cmd("SAVE").query(&mut redis.connection()).unwrap();
    for path in &users {
        let written = app.patch_json(path, &json!({"name": "after the snapshot"})).await;
        assert_eq!(written.status, 200);
    }
    redis.restart();
    let id = users[0].rsplit('/').next().unwrap();
    let stored: Option<Vec<u8>> = redis.connection().get(app.cache_key(id)).unwrap();
    assert!(
        stored.is_some_and(|body| String::from_utf8_lossy(&body).contains("old 0")),
        "Redis is back with the old body"
    );

    // From then on no read shows a user older than its write, while the service notices the
    // restart (another run_id) and removes every body under its prefix before serving any.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        for path in &users {
            let read = app.get(path).await;
            assert_eq!(
                read.json()["name"],
                "after the snapshot",
                "{path}: {:?}",
                read.header("x-cache")
            );
        }
    }
    let cached_again = eventually(Duration::from_secs(5), async || {
        app.get(&users[0]).await.header("x-cache") == Some("HIT")
    })
    .await;
    assert!(cached_again, "bodies are cached again once the sweep is done");
    assert_eq!(app.get(&users[0]).await.json()["name"], "after the snapshot");
}

#[tokio::test]
async fn a_stalled_connection_to_redis_never_serves_an_old_body() {
    let redis = OwnRedis::start();
    let proxy = Proxy::start(redis.port).await;
    let app = spawn_app_with(|config| config.cache.redis.as_mut().unwrap().port = proxy.port).await;
    let users = cached_users(&app, 5).await;
    proxy.stall();
    writes_during_a_fault_are_never_contradicted(&app, &users, redis.port, "stalled connection", || proxy.resume())
        .await;
}

#[tokio::test]
async fn a_frozen_redis_never_serves_an_old_body() {
    let redis = OwnRedis::start();
    let app = on_own_redis(&redis).await;
    let users = cached_users(&app, 5).await;
    signal(redis.pid(), "STOP");
    writes_during_a_fault_are_never_contradicted(&app, &users, redis.port, "Redis frozen (SIGSTOP)", || {
        signal(redis.pid(), "CONT")
    })
    .await;
}

#[tokio::test]
async fn a_value_of_another_redis_type_is_a_miss_replaced_and_counted_that_never_disables_the_cache() {
    let app = spawn_app().await;
    let other = user_path(&app.create_user(json!({"name": "Other"})).await);
    app.get(&other).await;
    let created = app.create_user(json!({"name": "Ada"})).await;
    let path = user_path(&created);
    let _: () = app
        .redis()
        .rpush(app.cache_key(created["id"].as_str().unwrap()), "a list")
        .unwrap();
    for _ in 0..20 {
        let read = app.get(&path).await;
        assert_eq!((read.status.as_u16(), read.json()["name"].clone()), (200, json!("Ada")));
        assert_eq!(
            app.get(&other).await.header("x-cache"),
            Some("HIT"),
            "other users stay cached"
        );
    }
    assert_eq!(
        app.get(&path).await.header("x-cache"),
        Some("HIT"),
        "the bad value was replaced"
    );
    let metrics = metrics_of(&app).await;
    assert!(
        metrics.contains("gravity_cache_bad_values_total{kind=\"wrong_type\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("gravity_cache_errors_total 0"), "{metrics}");
}

#[tokio::test]
async fn bytes_that_are_not_a_body_for_the_id_are_a_miss_replaced_and_counted() {
    let app = spawn_app().await;
    let ada = app.create_user(json!({"name": "Ada"})).await;
    let grace = app.create_user(json!({"name": "Grace"})).await;
    let grace_body = app.get(&user_path(&grace)).await.body.to_vec();
    let ada_key = app.cache_key(ada["id"].as_str().unwrap());
    for foreign in [b"hello".to_vec(), b"{}".to_vec(), grace_body] {
        let _: () = app.redis().set(&ada_key, foreign).unwrap();
        let read = app.get(&user_path(&ada)).await;
        assert_eq!(
            (read.header("x-cache"), read.json()["name"].clone()),
            (Some("MISS"), json!("Ada"))
        );
        assert_eq!(app.get(&user_path(&ada)).await.header("x-cache"), Some("HIT"));
    }
    assert!(
        metrics_of(&app)
            .await
            .contains("gravity_cache_bad_values_total{kind=\"foreign\"} 3")
    );
}

#[tokio::test]
async fn a_bad_value_that_became_a_fence_while_it_was_being_read_is_left_in_place() {
    let proxy = Proxy::start(Services::from_env().redis_port).await;
    let app = spawn_app_with(|config| {
        config.cache.redis.as_mut().unwrap().port = proxy.port;
        config.cache.call_timeout = Duration::from_secs(10);
    })
    .await;
    let created = app.create_user(json!({"name": "Ada"})).await;
    let path = user_path(&created);
    let key = app.cache_key(created["id"].as_str().unwrap());
    let _: () = app.redis().set(&key, "planted, not a body").unwrap();

    // The reader finds the bad value... and meanwhile a write whose outcome is unknown fences
    // the key (a lease nobody holds, for as long as that write may still commit).
    proxy.hold_reply_containing(b"planted, not a body");
    let read = {
        let address = app.address.clone();
        tokio::spawn(async move { http_get_json(&address, &path).await })
    };
    proxy.holding().await;
    let fence = "lease:0123456789abcdef";
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(fence)
        .arg("PX")
        .arg(10_000)
        .query(&mut app.redis())
        .unwrap();
    proxy.release();

    let (status, body) = read.await.unwrap();
    assert_eq!((status, body["name"].clone()), (200, json!("Ada")));
    let stored: String = app.redis().get(&key).unwrap();
    assert_eq!(stored, fence, "the reader's lease (and fill) did not replace the fence");
}

#[tokio::test]
async fn an_empty_value_or_a_lease_planted_without_expiry_never_keeps_a_user_out_of_the_cache() {
    let app = spawn_app().await;
    let ada = app.create_user(json!({"name": "Ada"})).await;
    let path = user_path(&ada);
    let key = app.cache_key(ada["id"].as_str().unwrap());
    // An empty string reads like no key at all; a lease-shaped value with no time to live looks
    // like another reader's fill that would never end.
    for planted in ["", "lease:0123456789abcdef"] {
        let _: () = app.redis().set(&key, planted).unwrap();
        let read = app.get(&path).await;
        assert_eq!(
            (read.header("x-cache"), read.json()["name"].clone()),
            (Some("MISS"), json!("Ada")),
            "{planted:?}"
        );
        assert_eq!(
            app.get(&path).await.header("x-cache"),
            Some("HIT"),
            "{planted:?} was replaced by the next fill"
        );
    }
}

#[tokio::test]
async fn a_200_mb_value_is_a_miss_and_never_read_into_memory() {
    let database = TestDatabase::create().await;
    let service = ServiceProcess::on(&database, &[], None).await;
    let address = format!("http://127.0.0.1:{}", service.port);
    let created = http_post_json(&address, "/v1/users", &json!({"name": "Ada"})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let mut redis = redis::Client::open(database.services.redis_url())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis
        .set(format!("{}:user:{id}", database.name), vec![b'x'; 200 << 20])
        .unwrap();

    for _ in 0..5 {
        let (status, body) = http_get_json(&address, &format!("/v1/users/{id}")).await;
        assert_eq!((status, body["name"].clone()), (200, json!("Ada")));
    }
    let resident_kib = resident_kib(service.id());
    let metrics = http_text(&address, "/metrics").await;
    drop(service);
    assert!(
        resident_kib < 32 * 1024,
        "resident memory {resident_kib} KiB after a 200 MB value"
    );
    assert!(
        metrics.contains("gravity_cache_bad_values_total{kind=\"oversized\"} 1"),
        "{metrics}"
    );
}

/// Writes made while Redis misbehaves, and reads after each: none may see an old body, before or
/// after `recover`, and hits must resume once Redis is well. Prints how long after `recover` an
/// old body was still in Redis (where another replica could read it), for docs/RELIABILITY.md.
async fn writes_during_a_fault_are_never_contradicted(
    app: &TestApp,
    users: &[String],
    redis_port: u16,
    fault: &str,
    recover: impl FnOnce(),
) {
    let (deleted, patched) = users.split_first().unwrap();
    let faulted = Instant::now();
    let mut slowest_write = Duration::ZERO;
    let started = Instant::now();
    assert_eq!(app.delete(deleted).await.status, 204);
    slowest_write = slowest_write.max(started.elapsed());
    for (number, path) in patched.iter().enumerate() {
        let started = Instant::now();
        let written = app.patch_json(path, &json!({"name": format!("new {number}")})).await;
        slowest_write = slowest_write.max(started.elapsed());
        assert_eq!(written.status, 200, "{}", String::from_utf8_lossy(&written.body));
    }
    for _ in 0..3 {
        every_read_sees_the_writes(app, deleted, patched).await;
    }
    let fault_lasted = faulted.elapsed();
    recover();
    let recovered = Instant::now();
    let keys: Vec<String> = users.iter().map(|path| app.cache_key(&path[10..])).collect();
    let old_bodies_gone = eventually(RECOVERY, async || old_bodies_in(redis_port, &keys) == Some(0)).await;
    assert!(
        old_bodies_gone,
        "the old bodies were removed from Redis after it recovered"
    );
    let removed_after = recovered.elapsed();
    let resumed = eventually(RECOVERY, async || {
        every_read_sees_the_writes(app, deleted, patched).await;
        app.get(&patched[0]).await.header("x-cache") == Some("HIT")
    })
    .await;
    assert!(resumed, "cache hits resume once Redis is well again");
    every_read_sees_the_writes(app, deleted, patched).await;
    println!(
        "cache fault | {fault} | slowest write answer {:.0} ms | fault lasted {:.0} ms | old bodies left in Redis \
         {:.0} ms after recovery | hits again {:.0} ms after recovery",
        slowest_write.as_secs_f64() * 1e3,
        fault_lasted.as_secs_f64() * 1e3,
        removed_after.as_secs_f64() * 1e3,
        recovered.elapsed().as_secs_f64() * 1e3
    );
}

/// How many of `keys` hold an old body (one written before the fault: its name starts `old`);
/// `None` while Redis does not answer.
fn old_bodies_in(port: u16, keys: &[String]) -> Option<usize> {
    let mut connection = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .ok()?
        .get_connection_with_timeout(Duration::from_millis(200))
        .ok()?;
    let mut old = 0;
    for key in keys {
        let value: Option<Vec<u8>> = connection.get(key).ok()?;
        if value.is_some_and(|body| body.windows(11).any(|part| part == b"\"name\":\"old")) {
            old += 1;
        }
    }
    Some(old)
}

async fn every_read_sees_the_writes(app: &TestApp, deleted: &str, patched: &[String]) {
    app.get(deleted).await.problem(404);
    for (number, path) in patched.iter().enumerate() {
        let read = app.get(path).await;
        assert_eq!(read.status, 200);
        assert_eq!(
            read.json()["name"],
            format!("new {number}"),
            "{path} served an old body ({:?})",
            read.header("x-cache")
        );
    }
}

async fn on_own_redis(redis: &OwnRedis) -> TestApp {
    let port = redis.port;
    spawn_app_with(move |config| config.cache.redis.as_mut().unwrap().port = port).await
}

/// `count` users, each read twice so that Redis holds their bodies.
async fn cached_users(app: &TestApp, count: usize) -> Vec<String> {
    let mut paths = Vec::with_capacity(count);
    for number in 0..count {
        let path = user_path(&app.create_user(json!({"name": format!("old {number}")})).await);
        app.get(&path).await;
        assert_eq!(app.get(&path).await.header("x-cache"), Some("HIT"));
        paths.push(path);
    }
    paths
}

/// Writes filler keys until Redis refuses a write for want of memory; returns their names.
fn fill_until_out_of_memory(redis: &OwnRedis) -> Vec<String> {
    let mut connection = redis.connection();
    let chunk = vec![b'f'; 64 * 1024];
    let mut keys = Vec::new();
    for number in 0.. {
        let key = format!("filler:{number}");
        match connection.set::<_, _, ()>(&key, &chunk) {
            Ok(()) => keys.push(key),
            Err(error) if error.code() == Some("OOM") => return keys,
            Err(error) => panic!("filling Redis failed: {error}"),
        }
    }
    unreachable!()
}

fn user_path(user: &Value) -> String {
    format!("/v1/users/{}", user["id"].as_str().unwrap())
}

async fn metrics_of(app: &TestApp) -> String {
    String::from_utf8(app.get("/metrics").await.body.to_vec()).unwrap()
}

fn resident_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
