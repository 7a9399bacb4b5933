//! No replica contradicts an acknowledged write: fills cannot store the past, a write fences the
//! key before it can commit or is refused, and a bad value is one key's problem. Each fault is
//! injected for real, on a `redis-server` (or a proxy in front of one) of the test's own, with a
//! second replica reading the same Redis wherever another replica could see the fault.

use std::time::{Duration, Instant};

use redis::Commands;
use serde_json::{Value, json};

use crate::helpers::{
    OwnRedis, Services, TestApp, TestDatabase, eventually, free_port, http_get_json, http_patch_json, http_post_json,
    http_text, signal, spawn_app, spawn_app_with,
};
use crate::service_process;
use crate::support::proxy::Proxy;

/// How long a recovered cache may take to serve hits again: the reconnect backoff is at most
/// 500 ms, the breaker's 1 s, and a restarted Redis is swept first; on a loaded machine a reader's
/// lease whose answer came too late keeps its user from being filled for the lease's 10 s. Far
/// less than the 40 s a fence left in place lives.
const RECOVERY: Duration = Duration::from_secs(12);

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
async fn redis_full_without_eviction_never_lets_a_replica_serve_an_old_body() {
    let redis = OwnRedis::start_with(free_port(), &["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]);
    let (writer, reader) = two_replicas_on(&redis, redis.port).await;
    let users = cached_users(&writer, &reader, 5).await;
    let filler_keys = fill_until_out_of_memory(&redis);
    let fault = "Redis full (noeviction)";
    let refused = no_replica_contradicts_an_acknowledged_write(&writer, &reader, &users, fault, || {
        let mut connection = redis.connection();
        for key in &filler_keys {
            let _: () = connection.del(key).unwrap();
        }
    })
    .await;
    // The fences (a few dozen bytes each) still fit where the bodies do not.
    assert_eq!(refused, 0, "{fault}");
}

#[tokio::test]
async fn redis_refusing_writes_for_want_of_replicas_never_lets_a_replica_serve_an_old_body() {
    let redis = OwnRedis::start();
    let (writer, reader) = two_replicas_on(&redis, redis.port).await;
    let users = cached_users(&writer, &reader, 5).await;
    config_set(&redis, "min-replicas-to-write", "1");
    let refused = no_replica_contradicts_an_acknowledged_write(&writer, &reader, &users, "NOREPLICAS", || {
        config_set(&redis, "min-replicas-to-write", "0")
    })
    .await;
    assert_eq!(refused, users.len(), "no fence could be placed");
}

#[tokio::test]
async fn redis_killed_during_writes_and_restarted_with_its_data_never_lets_a_replica_serve_an_old_body() {
    let mut redis = OwnRedis::start_with(free_port(), &["--appendonly", "yes", "--appendfsync", "always"]);
    let (writer, reader) = two_replicas_on(&redis, redis.port).await;
    let users = cached_users(&writer, &reader, 5).await;
    redis.kill();
    // Back with the bodies it had persisted before the writes.
    let fault = "Redis killed, restarted with its AOF";
    let refused =
        no_replica_contradicts_an_acknowledged_write(&writer, &reader, &users, fault, || redis.restart()).await;
    assert_eq!(refused, users.len(), "no fence could be placed");
}

#[tokio::test]
async fn redis_restarted_from_a_snapshot_older_than_acknowledged_writes_serves_no_replica_the_old_body() {
    let mut redis = OwnRedis::start_with(free_port(), &[]);
    let (writer, reader) = two_replicas_on(&redis, redis.port).await;
    let users = cached_users(&writer, &reader, 5).await;
    // A snapshot holding the bodies; then acknowledged writes, after which Redis dies without
    // saving again: it comes back with the old bodies.
    let () = redis::cmd("SAVE").query(&mut redis.connection()).unwrap();
    for path in &users {
        let written = writer.patch_json(path, &json!({"name": "after the snapshot"})).await;
        assert_eq!(written.status, 200);
    }
    redis.restart();
    let id = users[0].rsplit('/').next().unwrap();
    let stored: Option<Vec<u8>> = redis.connection().get(writer.cache_key(id)).unwrap();
    assert!(
        stored.is_some_and(|body| String::from_utf8_lossy(&body).contains("old 0")),
        "Redis is back with the old body"
    );

    // Neither the replicas that knew the Redis before, nor one that starts now and never knew it,
    // serves an old body: whoever reaches the restarted Redis first sweeps it, and no replica
    // serves from it before that.
    let newcomer = writer.spawn_replica(|_| {}).await;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        for app in [&writer, &reader, &newcomer] {
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
    }
    for app in [&writer, &reader, &newcomer] {
        let cached_again = eventually(RECOVERY, async || {
            app.get(&users[0]).await.header("x-cache") == Some("HIT")
        })
        .await;
        assert!(cached_again, "bodies are cached again once the sweep is done");
        assert_eq!(app.get(&users[0]).await.json()["name"], "after the snapshot");
    }
}

#[tokio::test]
async fn the_writers_path_to_redis_stalled_while_other_replicas_reach_it_never_lets_them_serve_an_old_body() {
    let redis = OwnRedis::start();
    let proxy = Proxy::start(redis.port).await;
    let (writer, reader) = two_replicas_on(&redis, proxy.port).await;
    let users = cached_users(&writer, &reader, 5).await;
    proxy.stall();
    let fault = "the writer's path to Redis stalled";
    let refused =
        no_replica_contradicts_an_acknowledged_write(&writer, &reader, &users, fault, || proxy.resume()).await;
    assert_eq!(refused, users.len(), "no fence could be placed");
}

#[tokio::test]
async fn a_fence_redis_took_without_answering_keeps_no_replica_from_caching_the_user() {
    let redis = OwnRedis::start();
    let proxy = Proxy::start(redis.port).await;
    let (writer, reader) = two_replicas_on(&redis, proxy.port).await;
    let created = writer.create_user(json!({"name": "created"})).await;
    let path = user_path(&created);
    let id = created["id"].as_str().unwrap();
    // A first write, so that Redis knows the fence's script and runs it when named by its hash.
    assert_eq!(writer.patch_json(&path, &json!({"name": "before"})).await.status, 200);

    // The raise is the only call of a write that names its user: Redis gets it, and the
    // connection is cut before its answer comes back.
    proxy.cut_after_client_sends(id.as_bytes());
    let refused = writer.patch_json(&path, &json!({"name": "never written"})).await;
    proxy.cut_done().await;
    let detail = refused.problem(503)["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("nothing was written"), "{detail}");

    // The fence Redis took lives 40 s; the refused write lifts it, so both replicas cache the
    // user again within seconds.
    let cached_again = every_replica_hits_again(&[&writer, &reader], &path, "name", "before").await;
    assert!(cached_again, "the user is cached again after the refused write");
}

#[tokio::test]
async fn a_write_that_wrote_nothing_lifts_its_fence_once_redis_is_back_so_no_replica_is_kept_from_caching_the_user() {
    let redis = OwnRedis::start();
    let to_redis = Proxy::start(redis.port).await;
    let postgres = Proxy::start(Services::from_env().pg_port).await;
    let writer = spawn_app_with(|config| {
        config.database.port = postgres.port;
        config.cache.redis.as_mut().unwrap().port = to_redis.port;
    })
    .await;
    let reader = writer
        .spawn_replica(|config| {
            config.database.port = Services::from_env().pg_port;
            config.cache.redis.as_mut().unwrap().port = redis.port;
        })
        .await;
    let path = user_path(
        &writer
            .create_user(json!({"name": "Ada", "email": "ada@example.com"}))
            .await,
    );
    writer
        .create_user(json!({"name": "Grace", "email": "grace@example.com"}))
        .await;

    // The PATCH takes Grace's email. Its fence is raised, its statement is held on its way to
    // Postgres while the writer's path to Redis is cut, and then it fails (the email is taken):
    // the lift finds no connection until the path is back.
    postgres.hold_request_containing(b"grace@example.com");
    let taken = json!({"email": "grace@example.com"});
    let write = writer.patch_json(&path, &taken);
    let meanwhile = async {
        postgres.holding().await;
        to_redis.cut();
        postgres.release();
        tokio::time::sleep(Duration::from_millis(300)).await;
        to_redis.restore();
    };
    let (answer, ()) = tokio::join!(write, meanwhile);
    assert_eq!(answer.status, 409, "{:?}", answer.body);

    // The lift waited for the connection: both replicas cache the user again within seconds,
    // rather than after the fence's 40 s.
    let cached_again = every_replica_hits_again(&[&writer, &reader], &path, "email", "ada@example.com").await;
    assert!(
        cached_again,
        "the user is cached again after the write that wrote nothing"
    );
}

#[tokio::test]
async fn a_write_arriving_while_the_cache_connection_is_reopened_waits_for_it_instead_of_being_refused() {
    let redis = OwnRedis::start();
    let proxy = Proxy::start(redis.port).await;
    let app = spawn_app_with(|config| {
        config.cache.redis.as_mut().unwrap().port = proxy.port;
        // The fence waits up to the call timeout for a connection being opened.
        config.cache.call_timeout = Duration::from_secs(5);
    })
    .await;
    let path = user_path(&app.create_user(json!({"name": "before"})).await);

    // The connection is lost; the next one is held at its first check of the Redis it reached.
    proxy.cut();
    proxy.restore();
    proxy.hold_reply_containing(b"run_id:");
    app.get(&path).await; // finds the connection lost, which starts the reconnection
    proxy.holding().await;
    let write = {
        let (address, path) = (app.address.clone(), path.clone());
        tokio::spawn(async move { http_patch_json(&address, &path, &json!({"name": "after"})).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!write.is_finished(), "the write waits for the connection being opened");

    proxy.release();
    let (status, body) = write.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.get(&path).await.json()["name"], "after");
}

#[tokio::test]
async fn a_frozen_redis_never_lets_a_replica_serve_an_old_body() {
    let redis = OwnRedis::start();
    let (writer, reader) = two_replicas_on(&redis, redis.port).await;
    let users = cached_users(&writer, &reader, 5).await;
    signal(redis.pid(), "STOP");
    let refused =
        no_replica_contradicts_an_acknowledged_write(&writer, &reader, &users, "Redis frozen (SIGSTOP)", || {
            signal(redis.pid(), "CONT")
        })
        .await;
    assert_eq!(refused, users.len(), "no fence could be placed");
}

#[tokio::test]
async fn writers_of_one_user_on_two_replicas_share_its_fence_so_one_lifting_never_exposes_the_others_write() {
    let redis = OwnRedis::start();
    let b_to_redis = Proxy::start(redis.port).await;
    let b_to_postgres = Proxy::start(Services::from_env().pg_port).await;
    let redis_port = redis.port;
    let a = spawn_app_with(move |config| config.cache.redis.as_mut().unwrap().port = redis_port).await;
    let b = a
        .spawn_replica(|config| {
            config.cache.redis.as_mut().unwrap().port = b_to_redis.port;
            config.database.port = b_to_postgres.port;
        })
        .await;
    let created = a.create_user(json!({"name": "v0"})).await;
    let path = user_path(&created);
    let key = a.cache_key(created["id"].as_str().unwrap());
    a.get(&path).await;
    assert_eq!(a.get(&path).await.header("x-cache"), Some("HIT"));

    // B fences the user, and its statement is slow to reach Postgres.
    b_to_postgres.hold_request_containing(b"written by b");
    let b_write = {
        let (address, path) = (b.address.clone(), path.clone());
        tokio::spawn(async move { http_patch_json(&address, &path, &json!({"name": "written by b"})).await })
    };
    b_to_postgres.holding().await;
    let fence: String = redis.connection().get(&key).unwrap();
    assert!(fence.starts_with("fence:") && fence.len() == 22, "B's fence: {fence}");

    // Meanwhile A writes the same user and lifts its own part of the fence: B's part stays.
    let a_write = a.patch_json(&path, &json!({"name": "written by a"})).await;
    assert_eq!(a_write.status, 200);
    let still: String = redis.connection().get(&key).unwrap();
    assert_eq!(still, fence, "A's lift left B's fence in place");
    let read = a.get(&path).await;
    assert_eq!(
        (read.header("x-cache"), read.json()["name"].clone()),
        (Some("MISS"), json!("written by a"))
    );

    // B's statement commits, but B cannot reach Redis to lift its fence; it answers anyway, and
    // its fence, still in place, keeps every replica reading Postgres.
    b_to_redis.stall();
    b_to_postgres.release();
    let (status, body) = b_write.await.unwrap();
    assert_eq!((status, body["name"].clone()), (200, json!("written by b")));
    for _ in 0..3 {
        let read = a.get(&path).await;
        assert_eq!(read.json()["name"], "written by b", "{:?}", read.header("x-cache"));
    }
    let left: String = redis.connection().get(&key).unwrap();
    assert_eq!(left, fence, "B's fence waits to expire");
    b_to_redis.resume();

    // Once it expires, the next read fills the key again.
    let _: () = redis::cmd("PEXPIRE")
        .arg(&key)
        .arg(1)
        .query(&mut redis.connection())
        .unwrap();
    let cached = eventually(Duration::from_secs(2), async || {
        a.get(&path).await;
        a.get(&path).await.header("x-cache") == Some("HIT")
    })
    .await;
    assert!(cached, "the key fills again");
    assert_eq!(a.get(&path).await.json()["name"], "written by b");
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
    let value = |series| crate::support::metric_value(&metrics, series);
    assert_eq!(
        value("gravity_cache_bad_values_total{kind=\"wrong_type\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(value("gravity_cache_errors_total"), Some(0.0), "{metrics}");
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

    // The reader finds the bad value... and meanwhile a write fences the key.
    proxy.hold_reply_containing(b"planted, not a body");
    let read = {
        let address = app.address.clone();
        tokio::spawn(async move { http_get_json(&address, &path).await })
    };
    proxy.holding().await;
    let fence = "fence:0123456789abcdef";
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
    // An empty string reads like no key at all; a lease- or fence-shaped value with no time to
    // live looks like another reader's fill, or a write, that would never end.
    for planted in ["", "lease:0123456789abcdef", "fence:0123456789abcdef"] {
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
    let service = service_process::on(&database, &[], None).await;
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
    let resident_kib = resident_kib(service.pid());
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

/// Writes through `writer` while Redis misbehaves, and reads through both replicas after each:
/// every write is either acknowledged, and then no read through either replica returns the user
/// as it was before it, or refused with "nothing was written", and then the database is unchanged.
/// After `recover`, writes succeed again and hits resume. Prints the figures for
/// docs/RELIABILITY.md; returns how many writes were refused, so the caller can check that the
/// fault took effect.
async fn no_replica_contradicts_an_acknowledged_write(
    writer: &TestApp,
    reader: &TestApp,
    users: &[String],
    fault: &str,
    recover: impl FnOnce(),
) -> usize {
    let mut expected: Vec<Option<String>> = (0..users.len()).map(|number| Some(format!("old {number}"))).collect();
    let (mut acknowledged, mut refused) = (0, 0);
    let faulted = Instant::now();
    for (number, path) in users.iter().enumerate() {
        let written = if number == 0 {
            writer.delete(path).await
        } else {
            writer.patch_json(path, &json!({"name": format!("new {number}")})).await
        };
        match written.status.as_u16() {
            200 | 204 => {
                acknowledged += 1;
                expected[number] = (number != 0).then(|| format!("new {number}"));
            }
            503 => {
                refused += 1;
                let detail = written.problem(503)["detail"].as_str().unwrap().to_owned();
                assert!(detail.contains("nothing was written"), "{detail}");
                assert_eq!(written.header("retry-after"), Some("1"));
            }
            other => panic!("{fault}: a write answered {other}: {:?}", written.body),
        }
        for app in [writer, reader] {
            every_read_agrees(app, users, &expected).await;
        }
    }
    database_agrees(writer, users, &expected).await;
    let fault_lasted = faulted.elapsed();
    recover();
    let recovered = Instant::now();
    let writes_again = eventually(RECOVERY, async || {
        writer
            .patch_json(&users[1], &json!({"name": "after recovery"}))
            .await
            .status
            == 200
    })
    .await;
    assert!(writes_again, "{fault}: writes succeed again once Redis is well");
    expected[1] = Some("after recovery".to_owned());
    let resumed = eventually(RECOVERY, async || {
        for app in [writer, reader] {
            every_read_agrees(app, users, &expected).await;
        }
        reader.get(&users[1]).await.header("x-cache") == Some("HIT")
    })
    .await;
    assert!(resumed, "{fault}: cache hits resume once Redis is well again");
    println!(
        "cache fault | {fault} | writes acknowledged {acknowledged}, refused {refused} | fault lasted {:.0} ms | \
         writes and hits again {:.0} ms after recovery",
        fault_lasted.as_secs_f64() * 1e3,
        recovered.elapsed().as_secs_f64() * 1e3
    );
    refused
}

/// Whether each of `apps` serves `path` from the cache again within `RECOVERY`; every read
/// meanwhile shows `field` as `value`.
async fn every_replica_hits_again(apps: &[&TestApp], path: &str, field: &str, value: &str) -> bool {
    for app in apps {
        let hit = eventually(RECOVERY, async || {
            let read = app.get(path).await;
            assert_eq!(read.json()[field], value, "{path}");
            read.header("x-cache") == Some("HIT")
        })
        .await;
        if !hit {
            return false;
        }
    }
    true
}

/// Every user read through `app` is as `expected` (a name, or gone).
async fn every_read_agrees(app: &TestApp, users: &[String], expected: &[Option<String>]) {
    for (path, expected) in users.iter().zip(expected) {
        let read = app.get(path).await;
        match expected {
            None => assert_eq!(
                read.status,
                404,
                "{path} was deleted, yet served ({:?})",
                read.header("x-cache")
            ),
            Some(name) => assert_eq!(
                read.json()["name"],
                name.as_str(),
                "{path} served an older user ({:?})",
                read.header("x-cache")
            ),
        }
    }
}

/// The database holds exactly what the answers said.
async fn database_agrees(app: &TestApp, users: &[String], expected: &[Option<String>]) {
    for (path, expected) in users.iter().zip(expected) {
        let id: uuid::Uuid = path.rsplit('/').next().unwrap().parse().unwrap();
        let row = app
            .database
            .client
            .query_opt("SELECT name FROM users WHERE id = $1", &[&id])
            .await
            .unwrap();
        let name: Option<String> = row.map(|row| row.get(0));
        assert_eq!(&name, expected, "{path} in the database");
    }
}

/// Two replicas on one database and one Redis: the writer reaches Redis at `writer_redis_port`
/// (Redis itself, or a proxy in front of it), the reader at Redis itself.
async fn two_replicas_on(redis: &OwnRedis, writer_redis_port: u16) -> (TestApp, TestApp) {
    let redis_port = redis.port;
    let writer = spawn_app_with(move |config| config.cache.redis.as_mut().unwrap().port = writer_redis_port).await;
    let reader = writer
        .spawn_replica(move |config| config.cache.redis.as_mut().unwrap().port = redis_port)
        .await;
    (writer, reader)
}

fn config_set(redis: &OwnRedis, name: &str, value: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", name, value][..])
        .query(&mut redis.connection())
        .unwrap();
}

/// `count` users created through `writer`, each read until both replicas hit.
async fn cached_users(writer: &TestApp, reader: &TestApp, count: usize) -> Vec<String> {
    let mut paths = Vec::with_capacity(count);
    for number in 0..count {
        let path = user_path(&writer.create_user(json!({"name": format!("old {number}")})).await);
        for app in [writer, reader] {
            app.get(&path).await;
            assert_eq!(app.get(&path).await.header("x-cache"), Some("HIT"));
        }
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
