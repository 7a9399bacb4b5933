//! In-process copies (`CACHE_LOCAL_ENTRIES`): served without a round trip, dropped by the
//! process's own writes before it answers, dropped by Redis's invalidations when another replica
//! writes, and all dropped when the tracking connection is lost or stops answering, or Redis is flushed.

use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::json;

use crate::helpers::{
    OwnRedis, Services, TestApp, eventually, http_get_json, lock_rows, send_keyed, spawn_app_with, wait_for_lock_waits,
};
use crate::support::proxy::Proxy;

const ENTRIES: usize = 1_000;
/// The service's own bound on a Redis call (`config::OPERATION_TIMEOUT`).
const SERVICE_CALL_TIMEOUT: Duration = Duration::from_millis(100);

async fn metric(app: &TestApp, name: &str) -> u64 {
    let text = String::from_utf8(app.get("/metrics").await.body.to_vec()).unwrap();
    crate::support::metric_value(&text, name).unwrap_or_else(|| panic!("{name} is not in /metrics")) as u64
}

/// Reads `path` until the replica serves it from its own memory.
async fn until_local_hit(app: &TestApp, path: &str) {
    let served_locally = eventually(Duration::from_secs(5), async || {
        let before = metric(app, "gravity_cache_local_hits_total").await;
        app.get(path).await;
        metric(app, "gravity_cache_local_hits_total").await > before
    })
    .await;
    assert!(served_locally, "{path} was never served from a local copy");
}

/// The path of a new user named `name`, once `reader` serves it from a local copy.
async fn a_copied_user(reader: &TestApp, name: &str) -> String {
    let created = reader.create_user(json!({ "name": name })).await;
    let path = format!("/v1/users/{}", created["id"].as_str().unwrap());
    until_local_hit(reader, &path).await;
    path
}

/// A replica keeping local copies whose Redis connections all go through a proxy the test can
/// stall or cut, with `call_timeout` as its bound on a Redis call, and a replica without copies
/// that reaches the same Redis directly.
async fn reader_behind_a_proxy_and_a_direct_writer(call_timeout: Duration) -> (OwnRedis, Proxy, TestApp, TestApp) {
    let redis = OwnRedis::start();
    let proxy = Proxy::start(redis.port).await;
    let reader = spawn_app_with(|config| {
        config.cache.local_entries = ENTRIES;
        config.cache.call_timeout = call_timeout;
        config.cache.redis.as_mut().unwrap().port = proxy.port;
    })
    .await;
    let writer = reader
        .spawn_replica(|config| {
            config.cache.local_entries = 0;
            config.cache.redis.as_mut().unwrap().port = redis.port;
        })
        .await;
    (redis, proxy, reader, writer)
}

#[tokio::test]
async fn a_copy_is_served_locally_and_a_write_of_this_replica_drops_it_before_answering() {
    let app = spawn_app_with(|config| config.cache.local_entries = ENTRIES).await;
    let path = format!(
        "/v1/users/{}",
        app.create_user(json!({"name": "Ada"})).await["id"].as_str().unwrap()
    );
    until_local_hit(&app, &path).await;
    let local = app.get(&path).await;
    assert_eq!(
        (local.header("x-cache"), local.json()["name"].clone()),
        (Some("HIT"), json!("Ada"))
    );

    for round in 0..20 {
        let name = format!("Ada {round}");
        assert_eq!(app.patch_json(&path, &json!({"name": name})).await.status, 200);
        assert_eq!(app.get(&path).await.json()["name"], name.as_str(), "round {round}");
    }
}

#[tokio::test]
async fn another_replicas_acknowledged_write_is_never_contradicted_by_this_replicas_copy() {
    let reader = spawn_app_with(|config| config.cache.local_entries = ENTRIES).await;
    let writer = reader.spawn_replica(|_| {}).await;
    let path = format!(
        "/v1/users/{}",
        reader.create_user(json!({"name": "v0"})).await["id"].as_str().unwrap()
    );
    for round in 1..=20 {
        until_local_hit(&reader, &path).await;
        let name = format!("v{round}");
        assert_eq!(writer.patch_json(&path, &json!({"name": name})).await.status, 200);
        // The very first read after the answer, and every one after it.
        for _ in 0..5 {
            assert_eq!(reader.get(&path).await.json()["name"], name.as_str(), "round {round}");
        }
    }
}

#[tokio::test]
async fn a_write_waits_for_other_replicas_copies_only_while_some_replica_serves_copies() {
    let plain = spawn_app_with(|_| {}).await;
    let id = plain.create_user(json!({"name": "v0"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/users/{id}");
    let key = format!("{}:copies", plain.config.cache.key_prefix);
    let exists = |app: &TestApp| -> bool { redis::Commands::exists(&mut app.redis(), &key).unwrap() };
    assert!(!exists(&plain), "no replica serves copies");
    // Until its Redis is recorded as current (just after the first sweep), every write waits.
    let record = format!("{}:instance", plain.config.cache.key_prefix);
    let recorded = async || redis::Commands::exists(&mut plain.redis(), &record).unwrap();
    assert!(
        eventually(Duration::from_secs(3), recorded).await,
        "the redis is recorded"
    );
    let started = Instant::now();
    assert_eq!(plain.patch_json(&path, &json!({"name": "v1"})).await.status, 200);
    let without_copies = started.elapsed();

    let copying = plain.spawn_replica(|config| config.cache.local_entries = ENTRIES).await;
    assert!(
        eventually(Duration::from_secs(2), async || exists(&copying)).await,
        "a replica with copies announces them"
    );
    let started = Instant::now();
    assert_eq!(plain.patch_json(&path, &json!({"name": "v2"})).await.status, 200);
    let with_copies = started.elapsed();
    assert!(
        with_copies >= Duration::from_millis(100),
        "the write waited for the copies' vouching time ({with_copies:?})"
    );
    assert!(without_copies < with_copies, "{without_copies:?} vs {with_copies:?}");
}

#[tokio::test]
async fn a_copy_read_before_a_write_whose_invalidation_arrives_first_is_never_kept() {
    let (_redis, proxy, reader, writer) = reader_behind_a_proxy_and_a_direct_writer(Duration::from_secs(10)).await;
    let created = reader.create_user(json!({"name": "held-in-flight"})).await;
    let path = format!("/v1/users/{}", created["id"].as_str().unwrap());
    writer.get(&path).await; // Redis holds the old body now.
    // Redis told the reader of that fill over its tracking connection, and the message may still be
    // on its way (it would remove the reservation below before the race begins). The connection
    // delivers in order, so a later invalidation, of a marker the reader holds a copy of, having
    // taken effect means this one has too; it also shows that tracking is up.
    let marker = a_copied_user(&reader, "marker").await;
    assert_eq!(
        writer
            .patch_json(&marker, &json!({"name": "marker moved"}))
            .await
            .status,
        200
    );
    let caught_up = eventually(Duration::from_secs(5), async || {
        reader.get(&marker).await.json()["name"] == "marker moved"
    })
    .await;
    assert!(caught_up, "the reader applied the marker's invalidation");
    // Reading the marker may have left a copy of it; a second write takes that away, so that from
    // here on the only entry can be the race's own reservation.
    assert_eq!(
        writer.patch_json(&marker, &json!({"name": "marker gone"})).await.status,
        200
    );
    assert!(copies_dropped(&reader).await, "the marker's copy went");

    // The reader reserves its local copy and reads Redis; the answer (the old body) is held...
    proxy.hold_reply_containing(b"held-in-flight");
    let paused = {
        let (address, path) = (reader.address.clone(), path.clone());
        tokio::spawn(async move { http_get_json(&address, &path).await })
    };
    proxy.holding().await;
    assert_eq!(
        metric(&reader, "gravity_cache_local_entries").await,
        1,
        "the reservation"
    );
    // ...while another replica writes; its invalidation reaches the reader first and removes the
    // reservation. (The reader's bound on a Redis call is 10 s here, so the held read is still
    // waiting however long this takes on a loaded machine.)
    assert_eq!(writer.patch_json(&path, &json!({"name": "written"})).await.status, 200);
    let invalidated = eventually(Duration::from_secs(1), async || {
        metric(&reader, "gravity_cache_local_entries").await == 0
    })
    .await;
    assert!(invalidated, "the invalidation reached the reader");
    proxy.release();
    let (status, body) = paused.await.unwrap();
    assert_eq!(
        (status, body["name"].clone()),
        (200, json!("held-in-flight")),
        "it began before the write"
    );
    assert_eq!(
        metric(&reader, "gravity_cache_local_entries").await,
        0,
        "the old body was not kept"
    );
    for _ in 0..20 {
        assert_eq!(
            reader.get(&path).await.json()["name"],
            "written",
            "the old body was kept locally"
        );
    }
}

/// A replica keeping local copies on a Redis of the test's own, and the path of a user it holds a
/// copy of (its only one).
async fn a_local_copy_on_own_redis(name: &str) -> (OwnRedis, TestApp, String) {
    let redis = OwnRedis::start();
    let port = redis.port;
    let reader = spawn_app_with(move |config| {
        config.cache.local_entries = ENTRIES;
        config.cache.redis.as_mut().unwrap().port = port;
    })
    .await;
    let path = a_copied_user(&reader, name).await;
    assert_eq!(metric(&reader, "gravity_cache_local_entries").await, 1);
    (redis, reader, path)
}

/// Whether the replica drops every copy within 2 s.
async fn copies_dropped(reader: &TestApp) -> bool {
    eventually(Duration::from_secs(2), async || {
        metric(reader, "gravity_cache_local_entries").await == 0
    })
    .await
}

#[tokio::test]
async fn losing_the_tracking_connection_drops_every_copy_until_it_is_back() {
    let (redis, reader, path) = a_local_copy_on_own_redis("tracked").await;

    let killed: u64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"][..])
        .query(&mut redis.connection())
        .unwrap();
    assert!(killed >= 2, "the service's connections were killed ({killed})");
    assert!(
        copies_dropped(&reader).await,
        "the copies went with the tracking connection"
    );
    until_local_hit(&reader, &path).await;
}

#[tokio::test]
async fn a_stalled_tracking_connection_never_lets_a_copy_contradict_an_acknowledged_write() {
    let (_redis, proxy, reader, writer) = reader_behind_a_proxy_and_a_direct_writer(SERVICE_CALL_TIMEOUT).await;
    let path = a_copied_user(&reader, "before stall").await;

    proxy.stall();
    assert_eq!(
        writer.patch_json(&path, &json!({"name": "during stall"})).await.status,
        200
    );
    // The write answered no sooner than the vouching time after its fence, and the stalled
    // connection has vouched for nothing since: not even the first read serves the old copy.
    for _ in 0..10 {
        assert_eq!(reader.get(&path).await.json()["name"], "during stall");
    }
    proxy.resume();
}

#[tokio::test]
async fn a_flush_that_removes_the_copies_key_does_not_let_a_write_skip_waiting_for_copies() {
    // A writer that keeps copies itself, and one that does not but has seen them served.
    for writer_keeps_copies in [true, false] {
        let (redis, redis_path, reader, writer) = reader_behind_a_proxy_and_a_direct_writer(SERVICE_CALL_TIMEOUT).await;
        let writer = if writer_keeps_copies {
            let port = redis.port;
            writer
                .spawn_replica(|config| {
                    config.cache.local_entries = ENTRIES;
                    config.cache.redis.as_mut().unwrap().port = port;
                })
                .await
        } else {
            let seen = writer.create_user(json!({"name": "seen"})).await;
            let seen = format!("/v1/users/{}", seen["id"].as_str().unwrap());
            assert_eq!(
                writer.patch_json(&seen, &json!({"name": "seen again"})).await.status,
                200
            );
            writer
        };
        let path = a_copied_user(&reader, "before").await;

        // The reader's invalidations are late, and `{prefix}:copies` is gone until the next
        // renewal (the reader's, stalled; the writer's own, if any, 25 ms away).
        redis_path.stall();
        let () = redis::cmd("FLUSHALL").query(&mut redis.connection()).unwrap();
        assert_eq!(writer.patch_json(&path, &json!({"name": "after"})).await.status, 200);

        assert_eq!(
            reader.get(&path).await.json()["name"],
            "after",
            "writer keeps copies: {writer_keeps_copies}"
        );
        redis_path.resume();
    }
}

#[tokio::test]
async fn a_flush_does_not_let_a_writer_that_never_saw_copies_served_skip_waiting_for_them() {
    let (redis, redis_path, reader, writer) = reader_behind_a_proxy_and_a_direct_writer(SERVICE_CALL_TIMEOUT).await;
    let path = a_copied_user(&reader, "before").await;

    // The writer has raised no fence yet, so it has never found `{prefix}:copies`; the flush
    // removes the key until the reader's next renewal, and the reader's invalidations are late.
    redis_path.stall();
    let () = redis::cmd("FLUSHALL").query(&mut redis.connection()).unwrap();
    assert_eq!(writer.patch_json(&path, &json!({"name": "after"})).await.status, 200);

    assert_eq!(reader.get(&path).await.json()["name"], "after");
    redis_path.resume();
}

#[tokio::test]
async fn a_redis_restarted_from_an_older_snapshot_does_not_let_a_write_skip_waiting_for_copies() {
    let (mut redis, redis_path, reader, writer) = reader_behind_a_proxy_and_a_direct_writer(SERVICE_CALL_TIMEOUT).await;
    let record = format!("{}:instance", reader.config.cache.key_prefix);
    let recorded = async || redis::Commands::exists(&mut redis.connection(), &record).unwrap();
    assert!(
        eventually(Duration::from_secs(3), recorded).await,
        "the redis is recorded"
    );
    // A snapshot holding the record, and a `{prefix}:copies` that has expired by the time it is
    // loaded again (as Redis's default periodic snapshots do after a crash).
    let () = redis::cmd("SAVE").query(&mut redis.connection()).unwrap();
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let path = a_copied_user(&reader, "before").await;

    // The reader's path freezes (its invalidations, and the news of the restart, are late) while
    // Redis is killed and loads the snapshot.
    redis_path.stall();
    redis.restart();
    let mut tries = 0;
    while writer.patch_json(&path, &json!({"name": "after"})).await.status != 200 {
        tries += 1;
        assert!(tries < 50, "the write never went through");
    }

    assert_eq!(reader.get(&path).await.json()["name"], "after");
    redis_path.resume();
}

#[tokio::test]
async fn a_second_flush_while_a_record_waits_to_be_written_restarts_the_wait() {
    let (redis, redis_path, reader, writer) = reader_behind_a_proxy_and_a_direct_writer(SERVICE_CALL_TIMEOUT).await;
    let record = format!("{}:instance", reader.config.cache.key_prefix);
    let recorded = async || redis::Commands::exists(&mut redis.connection(), &record).unwrap();
    assert!(
        eventually(Duration::from_secs(3), recorded).await,
        "the redis is recorded"
    );
    let path = a_copied_user(&reader, "before").await;
    // MONITOR shows, in order, each flush and each replica's once-a-second check of the record.
    let mut monitor = std::net::TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
    std::io::Write::write_all(&mut monitor, b"MONITOR\r\n").unwrap();
    let (seen, mut events) = tokio::sync::mpsc::unbounded_channel::<(bool, Instant)>();
    let lines = std::io::BufReader::new(monitor.try_clone().unwrap());
    let check = format!("\"GET\" \"{record}\"");
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(lines).map_while(Result::ok) {
            let flush = line.contains("\"FLUSHALL\"");
            let checked = line.contains(check.as_str()) && !line.contains("lua");
            if (flush || checked) && seen.send((flush, Instant::now())).is_err() {
                return;
            }
        }
    });

    for attempt in 0.. {
        assert!(attempt < 10, "no second flush came while a record waited to be written");
        // The first flush takes the record; the next check finds it gone and writes it 150 ms on.
        let () = redis::cmd("FLUSHALL").query(&mut redis.connection()).unwrap();
        while !events.recv().await.unwrap().0 {}
        let found_gone = loop {
            if let (false, at) = events.recv().await.unwrap() {
                break at;
            }
        };
        until_local_hit(&reader, &path).await;
        if found_gone.elapsed() > Duration::from_millis(100) {
            continue;
        }
        // A second flush before that write, with the reader's invalidations late.
        tokio::time::sleep_until((found_gone + Duration::from_millis(125)).into()).await;
        redis_path.stall();
        let () = redis::cmd("FLUSHALL").query(&mut redis.connection()).unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(writer.patch_json(&path, &json!({"name": "after"})).await.status, 200);

        assert_eq!(reader.get(&path).await.json()["name"], "after");
        redis_path.resume();
        break;
    }
    let _ = monitor.shutdown(std::net::Shutdown::Both);
}

#[tokio::test]
async fn the_record_a_flush_removed_is_written_again_so_writes_stop_waiting_for_copies() {
    let redis = OwnRedis::start();
    let port = redis.port;
    let app = spawn_app_with(move |config| config.cache.redis.as_mut().unwrap().port = port).await;
    let record = format!("{}:instance", app.key_prefix);
    let recorded = || -> Option<String> { redis::Commands::get(&mut redis.connection(), &record).unwrap() };
    assert!(
        eventually(Duration::from_secs(3), async || recorded().is_some()).await,
        "the first sweep records the instance"
    );
    let current = recorded();

    // Every write waits for copies while the record is missing (a flush takes `{prefix}:copies`
    // away too); the replica serving from that Redis writes it again.
    let () = redis::cmd("FLUSHALL").query(&mut redis.connection()).unwrap();
    let written_again = eventually(Duration::from_secs(3), async || recorded() == current).await;
    assert!(written_again, "the record of the flushed redis is back");
    let user = app.create_user(json!({"name": "cached again"})).await;
    let path = format!("/v1/users/{}", user["id"].as_str().unwrap());
    let cached = eventually(Duration::from_secs(3), async || {
        app.get(&path).await.header("x-cache") == Some("HIT")
    })
    .await;
    assert!(cached, "the flushed redis still serves");
}

#[tokio::test]
async fn a_write_whose_fence_redis_lost_is_not_contradicted_by_a_copy_of_what_its_lift_removed() {
    let (redis, proxy, reader, writer) = reader_behind_a_proxy_and_a_direct_writer(SERVICE_CALL_TIMEOUT).await;
    let id = reader.create_user(json!({"name": "v0"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/users/{id}");
    let locker = lock_rows(&reader.database, &[&id]).await;

    let patch = json!({"name": "v1"});
    let write = writer.patch_json(&path, &patch);
    let meanwhile = async {
        // The writer has raised its fence and waits for the row.
        wait_for_lock_waits(&reader.database, 1).await;
        // Redis loses the fence (evicted, say), so a reader caches the row as it still is, and
        // the other replica copies that body.
        let _: () = redis::Commands::del(&mut redis.connection(), writer.cache_key(&id)).unwrap();
        until_local_hit(&reader, &path).await;
        assert_eq!(reader.get(&path).await.json()["name"], "v0");
        // The copying replica's tracking connection stops delivering; the write goes on.
        proxy.stall();
        locker.batch_execute("ROLLBACK").await.unwrap();
    };
    let (answer, ()) = tokio::join!(write, meanwhile);

    assert_eq!(answer.status, 200);
    for _ in 0..5 {
        assert_eq!(
            reader.get(&path).await.json()["name"],
            "v1",
            "the lift removed the body read before the commit, and waited out the copies' vouching time"
        );
    }
    proxy.resume();
}

#[tokio::test]
async fn a_replay_of_a_write_whose_first_answer_was_unknown_is_never_contradicted_by_a_copy() {
    let (_redis, redis_path, reader, replayer) = reader_behind_a_proxy_and_a_direct_writer(SERVICE_CALL_TIMEOUT).await;
    let postgres = Proxy::start(Services::from_env().pg_port).await;
    let writer = replayer
        .spawn_replica(|config| config.database.port = postgres.port)
        .await;
    let (_, path) = reader.create_named("before").await;
    until_local_hit(&reader, &path).await;
    let patch = async |app: &TestApp| send_keyed(app, Method::PATCH, &path, "patch-once", r#"{"name":"after"}"#).await;

    // From here the reader hears nothing from Redis: its copy is vouched for by the round trips it
    // had answered before, for their last 100 ms.
    redis_path.stall();
    // The commit reaches Postgres, its answer never reaches the writer: "outcome unknown", at once,
    // without the wait for the copies that a write it saw commit makes.
    postgres.cut_after_client_sends(b"COMMIT");
    let first = patch(&writer).await;
    let problem = first.problem(503);
    assert!(problem["detail"].as_str().unwrap().contains("unknown"), "{problem}");
    // The retry, on another replica, finds the write committed and replays its answer: an
    // acknowledgement, which no copy may contradict.
    let replayed = patch(&replayer).await;
    assert_eq!(
        (replayed.status.as_u16(), replayed.header("idempotent-replayed")),
        (200, Some("true"))
    );
    for _ in 0..5 {
        assert_eq!(reader.get(&path).await.json()["name"], "after");
    }
    redis_path.resume();
}

#[tokio::test]
async fn a_flush_of_redis_drops_every_copy_and_copies_are_made_again_at_once() {
    let (redis, reader, path) = a_local_copy_on_own_redis("flushed").await;

    // Redis tells a tracking client of a flush with a null invalidation: every key changed.
    let () = redis::cmd("FLUSHALL").query(&mut redis.connection()).unwrap();
    assert!(copies_dropped(&reader).await, "the copies outlived the flush of Redis");
    // Tracking itself was never interrupted, so the next reads fill Redis and the copy again.
    until_local_hit(&reader, &path).await;
    assert_eq!(reader.get(&path).await.json()["name"], "flushed");
}

#[tokio::test]
async fn a_replaced_cache_connection_takes_the_copies_read_through_it_along() {
    let (_redis, proxy, reader, _writer) = reader_behind_a_proxy_and_a_direct_writer(SERVICE_CALL_TIMEOUT).await;
    let copied = a_copied_user(&reader, "copied").await;
    let other = reader.create_user(json!({"name": "read later"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The read of another user is the last thing the cache connection carries (the tracking
    // connection never sends a key): it is cut once Redis has the read, and the replica replaces it.
    proxy.cut_after_client_sends(other.as_bytes());
    assert_eq!(reader.get(&format!("/v1/users/{other}")).await.status, 200);
    proxy.cut_done().await;
    assert!(
        copies_dropped(&reader).await,
        "a copy read through the replaced connection was kept"
    );
    until_local_hit(&reader, &copied).await;
}

#[tokio::test]
async fn a_replica_left_on_a_demoted_redis_keeps_no_copy_of_it_once_it_notices() {
    let old_primary = OwnRedis::start();
    let new_primary = OwnRedis::start();
    let address = Proxy::start(old_primary.port).await;
    let reader = spawn_app_with(|config| {
        config.cache.local_entries = ENTRIES;
        config.cache.redis.as_mut().unwrap().port = address.port;
    })
    .await;
    let writer = reader
        .spawn_replica(|config| {
            config.cache.local_entries = 0;
            config.cache.redis.as_mut().unwrap().port = new_primary.port;
        })
        .await;
    let path = a_copied_user(&reader, "before").await;

    // The failover: the address leads to the new primary, and the old one becomes a replica (of a
    // primary it cannot reach, so it goes on serving what it holds). The reader's tracking
    // connection is refused at once (READONLY) and sets up again on the new primary; its cache
    // connection stays on the old one until its once-a-second instance check.
    address.redirect(new_primary.port);
    let unreachable = crate::helpers::free_port();
    let () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(unreachable)
        .query(&mut old_primary.connection())
        .unwrap();
    let copies_key = format!("{}:copies", reader.config.cache.key_prefix);
    let tracking_moved = eventually(Duration::from_secs(3), async || {
        redis::Commands::exists(&mut new_primary.connection(), &copies_key).unwrap()
    })
    .await;
    assert!(tracking_moved, "the reader's tracking set up again on the new primary");
    assert_eq!(writer.patch_json(&path, &json!({"name": "after"})).await.status, 200);

    // Until the check, the reader may still answer with the old primary's body (the documented
    // second), and copy it with the new primary vouching: those reads fill the copy.
    let mut stale_before_the_check = 0;
    for _ in 0..100 {
        if reader.get(&path).await.json()["name"] == "before" {
            stale_before_the_check += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Once it has noticed, no read serves a copy of the old primary's answer.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    for read in 0..20 {
        assert_eq!(
            reader.get(&path).await.json()["name"],
            "after",
            "read {read}, {stale_before_the_check} stale reads before the instance check"
        );
    }
}

#[tokio::test]
async fn no_copy_is_kept_on_a_redis_that_may_evict_the_key_writers_wait_on() {
    let redis = OwnRedis::start_with(
        crate::helpers::free_port(),
        &["--maxmemory", "64mb", "--maxmemory-policy", "volatile-ttl"],
    );
    let port = redis.port;
    let reader = spawn_app_with(move |config| {
        config.cache.local_entries = ENTRIES;
        config.cache.redis.as_mut().unwrap().port = port;
    })
    .await;
    let path = format!(
        "/v1/users/{}",
        reader.create_user(json!({"name": "evictable"})).await["id"]
            .as_str()
            .unwrap()
    );
    let config_set = |name: &str, value: &str| {
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query(&mut redis.connection())
            .unwrap();
    };

    // volatile-ttl picks the key closest to expiring: `{prefix}:copies` would be the first to go.
    for _ in 0..20 {
        assert_eq!(reader.get(&path).await.json()["name"], "evictable");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(metric(&reader, "gravity_cache_local_hits_total").await, 0);
    let copies_key = format!("{}:copies", reader.config.cache.key_prefix);
    assert!(!redis::Commands::exists::<_, bool>(&mut redis.connection(), &copies_key).unwrap());

    // Without a memory limit nothing is evicted, whatever the policy.
    config_set("maxmemory", "0");
    until_local_hit(&reader, &path).await;
    // A limit set while copies are served: the once-a-second check drops them.
    config_set("maxmemory", "64mb");
    assert!(copies_dropped(&reader).await, "copies outlived the eviction policy");
    // LRU's clock ticks once a second: a key renewed every 25 ms is no safer than others.
    config_set("maxmemory-policy", "allkeys-lru");
    assert!(copies_dropped(&reader).await, "copies outlived an LRU policy");
    // LFU counts each renewal: the key in use is the last it would evict.
    config_set("maxmemory-policy", "allkeys-lfu");
    until_local_hit(&reader, &path).await;
}
