//! Writes tell the truth: a write that cannot finish in time is cancelled by Postgres and its 503
//! says nothing was written; an outcome the service cannot know is called unknown, once the write's
//! Postgres session has ended if its connection was lost (or at the deadline); a write, once
//! sent, finishes (cache removal included) even if its client goes away; a replay fences as the
//! write did, so a commit that outlived its fence is not contradicted; and a write waiting on a
//! locked row delays nothing else.

use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::{
    TestApp, TestResponse, eventually, http_get_json, lock_rows, lock_waits, send_keyed, spawn_app, spawn_app_with,
    wait_for_lock_waits,
};
use crate::service_process;
use crate::support::cluster::Cluster;
use crate::support::proxy::Proxy;
use crate::support::services::Services;

#[tokio::test]
async fn a_patch_of_a_row_locked_past_the_deadline_gets_503_and_nothing_is_written() {
    let app = spawn_app().await;
    let (id, path) = app.create_named("Ada").await;
    let locker = lock_rows(&app.database, &[&id]).await;

    let started = Instant::now();
    let response = app.patch_json(&path, &json!({"name": "never written"})).await;
    let elapsed = started.elapsed();
    let problem = response.problem(503);
    assert!(
        problem["detail"].as_str().unwrap().contains("nothing was written"),
        "{problem}"
    );
    assert!(
        elapsed >= Duration::from_secs(8) && elapsed <= Duration::from_millis(10_500),
        "answered after {elapsed:?}"
    );

    locker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        name_in_database(&app, &id).await,
        "Ada",
        "Postgres still has the old row"
    );
    for _ in 0..3 {
        assert_eq!(app.get(&path).await.json()["name"], "Ada");
    }
}

#[tokio::test]
async fn a_patch_of_a_row_locked_past_the_deadline_is_told_nothing_was_written_even_if_redis_stops_answering_its_lift()
{
    let redis = Proxy::start(Services::from_env().redis_port).await;
    let app = spawn_app_with(|config| config.cache.redis.as_mut().unwrap().port = redis.port).await;
    let (id, path) = app.create_named("Ada").await;
    let locker = lock_rows(&app.database, &[&id]).await;

    // The fence is raised, the statement waits on the row, and Redis stops answering: the lift of
    // a write that wrote nothing is tried only until its answer must leave, so the deadline does
    // not turn "nothing was written" into "unknown".
    let patch = json!({"name": "never written"});
    let stall_once_waiting = async {
        wait_for_lock_waits(&app.database, 1).await;
        redis.stall();
    };
    let (response, ()) = tokio::join!(app.patch_json(&path, &patch), stall_once_waiting);
    let problem = response.problem(503);
    assert!(
        problem["detail"].as_str().unwrap().contains("nothing was written"),
        "{problem}"
    );
    locker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(name_in_database(&app, &id).await, "Ada");
}

#[tokio::test]
async fn a_write_that_waited_for_its_turn_is_cancelled_by_postgres_within_the_time_it_has_left() {
    let app = spawn_app().await;
    let (id, path) = app.create_named("Ada").await;
    let locker = lock_rows(&app.database, &[&id]).await;

    // The first PATCH waits on the lock with the whole statement budget (9 s). The second, sent a
    // second later, queues behind it in the process for about 8 s: it has under 2 s left, and
    // Postgres must be told so, or it would still be waiting when its deadline passes.
    let first_body = json!({"name": "first"});
    let first = app.patch_json(&path, &first_body);
    let second = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        let response = app.patch_json(&path, &json!({"name": "second"})).await;
        (response, started.elapsed())
    };
    let (first, (second, second_took)) = tokio::join!(first, second);

    for (what, response) in [("first", first), ("second", second)] {
        let problem = response.problem(503);
        assert!(
            problem["detail"].as_str().unwrap().contains("nothing was written"),
            "{what}: {problem}"
        );
    }
    assert!(
        second_took <= Duration::from_millis(10_500),
        "the second PATCH answered after {second_took:?}"
    );
    locker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(name_in_database(&app, &id).await, "Ada");
    assert_eq!(app.get(&path).await.json()["name"], "Ada");
}

#[tokio::test]
async fn a_patch_whose_connection_is_lost_once_it_was_sent_is_called_unknown_once_its_session_has_ended() {
    let postgres = Proxy::start(Services::from_env().pg_port).await;
    let app = spawn_app_with(|config| config.database.port = postgres.port).await;
    let (id, path) = app.create_named("Ada").await;
    app.get(&path).await;
    assert_eq!(app.get(&path).await.header("x-cache"), Some("HIT"));

    // The statement reaches Postgres, which runs it (it waits on the locked row); its answer never
    // reaches the service. Left running, it would commit once the row is free, after the client
    // had its 503 and sent its next write, and overwrite that one.
    let locker = lock_rows(&app.database, &[&id]).await;
    postgres.cut_after_client_sends(b"sent, then cut");
    let problem = app
        .patch_json(&path, &json!({"name": "sent, then cut"}))
        .await
        .problem(503);
    assert!(problem["detail"].as_str().unwrap().contains("unknown"), "{problem}");
    assert_eq!(
        lock_waits(&app.database).await,
        0,
        "the statement's session was ended before the answer"
    );
    let cached: Option<String> = redis::cmd("GET")
        .arg(app.cache_key(&id))
        .query(&mut app.redis())
        .unwrap();
    assert_eq!(cached, None, "the write can no longer commit, so its fence was lifted");

    locker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(name_in_database(&app, &id).await, "Ada", "it never committed");
    let next = app.patch_json(&path, &json!({"name": "next"})).await;
    assert_eq!(next.status, 200);
    app.get(&path).await;
    let read = app.get(&path).await;
    assert_eq!(
        (read.json()["name"].clone(), read.header("x-cache")),
        (json!("next"), Some("HIT"))
    );
    assert_eq!(name_in_database(&app, &id).await, "next");
}

#[tokio::test]
async fn a_create_whose_connection_is_lost_once_it_was_sent_is_called_unknown_once_its_session_has_ended() {
    let postgres = Proxy::start(Services::from_env().pg_port).await;
    let app = spawn_app_with(|config| config.database.port = postgres.port).await;
    // Another session's transaction holds the email, so the create's insert waits for it to end.
    let holder = app.database.services.connect(&app.database.name).await;
    holder
        .batch_execute("BEGIN; INSERT INTO users (name, email) VALUES ('holder', 'held@example.com')")
        .await
        .unwrap();
    postgres.cut_after_client_sends(b"cut create");
    let problem = app
        .post_json("/v1/users", &json!({"name": "cut create", "email": "held@example.com"}))
        .await
        .problem(503);
    assert!(problem["detail"].as_str().unwrap().contains("unknown"), "{problem}");
    assert_eq!(
        lock_waits(&app.database).await,
        0,
        "its session was ended before the answer"
    );

    // Had the insert lived on, it would take the email now.
    holder.batch_execute("ROLLBACK").await.unwrap();
    let created: i64 = app
        .database
        .client
        .query_one("SELECT count(*) FROM users WHERE email = 'held@example.com'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(created, 0);
}

#[tokio::test]
async fn a_write_whose_lost_session_cannot_be_ended_is_called_unknown_at_its_deadline_and_fenced_until_it_could_no_longer_commit()
 {
    let postgres = Proxy::start(Services::from_env().pg_port).await;
    let app = spawn_app_with(|config| config.database.port = postgres.port).await;
    let (id, path) = app.create_named("Ada").await;
    app.get(&path).await;
    let locker = lock_rows(&app.database, &[&id]).await;
    // The connection is cut once the statement is sent, and Postgres cannot be reached from then
    // on: the service cannot end the session, which may still commit.
    postgres.cut_after_client_sends_then_stall(b"out of reach");
    let problem = app
        .patch_json(&path, &json!({"name": "out of reach"}))
        .await
        .problem(503);
    assert!(problem["detail"].as_str().unwrap().contains("unknown"), "{problem}");
    let key = app.cache_key(&id);
    let fence: String = redis::cmd("GET").arg(&key).query(&mut app.redis()).unwrap();
    let fence_ms: i64 = redis::cmd("PTTL").arg(&key).query(&mut app.redis()).unwrap();
    assert!(fence.starts_with("fence:"), "{fence}");
    assert!(
        fence_ms > 25_000,
        "the fence stays while the statement may still reach Postgres and commit ({fence_ms} ms left)"
    );

    postgres.resume();
    locker.batch_execute("COMMIT").await.unwrap();
    for _ in 0..3 {
        let read = app.get(&path).await;
        assert_eq!(read.json()["name"], json!(name_in_database(&app, &id).await));
        assert_ne!(read.header("x-cache"), Some("HIT"), "nothing is cached under the fence");
    }

    // Redis loses the fence (evicted under memory pressure, say) and a reader caches the row: had
    // the statement reached Postgres late and committed, that body would be old. So the write's
    // replica lifts the fence once more as it would have expired, removing what was stored.
    let _: () = redis::Commands::del(&mut app.redis(), &key).unwrap();
    app.get(&path).await;
    assert_eq!(app.get(&path).await.header("x-cache"), Some("HIT"));
    tokio::time::sleep(Duration::from_millis(u64::try_from(fence_ms).unwrap())).await;
    let removed = eventually(Duration::from_secs(2), async || {
        app.get(&path).await.header("x-cache") == Some("MISS")
    })
    .await;
    assert!(
        removed,
        "the body stored under the lost fence outlived the time the write could commit in"
    );
}

#[tokio::test]
async fn a_keyed_patch_whose_connection_is_lost_before_its_commit_is_sent_says_nothing_was_written() {
    let lost = a_keyed_patch_lost_before_its_commit("lost-before-commit", Proxy::cut).await;
    let problem = lost.answer.problem(503);
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("nothing was written"), "{problem}");
    assert_eq!(name_in_database(&lost.app, &lost.id).await, "Ada");
}

#[tokio::test]
async fn a_keyed_patch_lost_before_its_commit_where_postgres_cannot_tell_leaves_its_row_and_key_free_for_a_retry() {
    // The cut leaves Postgres's side of the connection open and hearing nothing (a middlebox that
    // forgot it): the session stays in its transaction, holding the user's row and the key's claim.
    let key = "lost-unheard";
    let lost = a_keyed_patch_lost_before_its_commit(key, Proxy::cut_leaving_servers_connected).await;
    let problem = lost.answer.problem(503);
    assert!(
        problem["detail"].as_str().unwrap().contains("nothing was written"),
        "{problem}"
    );
    lost.postgres.restore();

    // Postgres ends the session once it has been idle in its transaction for 31 s: a retry then
    // goes through (each one before waits for the key's claim and is told it is in progress).
    let retried = eventually(Duration::from_secs(60), async || {
        send_keyed(&lost.app, Method::PATCH, &lost.path, key, GRACE)
            .await
            .status
            == 200
    })
    .await;
    assert!(retried, "the retry of a write that wrote nothing never went through");
    assert_eq!(name_in_database(&lost.app, &lost.id).await, "Grace");
}

const GRACE: &str = r#"{"name":"Grace"}"#;

/// A keyed PATCH of Ada to Grace whose Postgres connection is lost (`cut`) just before its
/// `COMMIT`, and what is left to look at.
struct LostBeforeCommit {
    app: TestApp,
    postgres: Proxy,
    _redis: Proxy,
    id: String,
    path: String,
    answer: TestResponse,
}

/// A keyed write raises its fence after its statements, just before its COMMIT: the fence is held
/// on its way to Redis (within the call's 100 ms) while `cut` ends the Postgres connection.
async fn a_keyed_patch_lost_before_its_commit(key: &str, cut: impl FnOnce(&Proxy)) -> LostBeforeCommit {
    let postgres = Proxy::start(Services::from_env().pg_port).await;
    let redis = Proxy::start(Services::from_env().redis_port).await;
    let app = spawn_app_with(|config| {
        config.database.port = postgres.port;
        config.cache.redis.as_mut().unwrap().port = redis.port;
    })
    .await;
    let (id, path) = app.create_named("Ada").await;
    redis.hold_request_containing(id.as_bytes());
    let write = send_keyed(&app, Method::PATCH, &path, key, GRACE);
    let meanwhile = async {
        redis.holding().await;
        cut(&postgres);
        tokio::time::sleep(Duration::from_millis(40)).await;
        redis.release();
    };
    let (answer, ()) = tokio::join!(write, meanwhile);
    LostBeforeCommit {
        app,
        postgres,
        _redis: redis,
        id,
        path,
        answer,
    }
}

#[tokio::test]
async fn a_replay_of_a_patch_committed_after_its_writer_died_and_its_fence_expired_never_serves_the_old_body() {
    let app = spawn_app().await;
    let (id, path) = app.create_named("Ada").await;
    let postgres = Proxy::start(Services::from_env().pg_port).await;
    let port = postgres.port.to_string();
    let writer = service_process::on(&app.database, &[("DB_PORT", port.as_str())], None).await;

    // Postgres holds the writer's COMMIT (storage that stopped completing writes), and the writer
    // dies before it hears back: nobody is left to lift its fence.
    postgres.hold_request_containing(b"COMMIT");
    let body = r#"{"name":"late"}"#;
    let mut client = TcpStream::connect(("127.0.0.1", writer.port)).await.unwrap();
    let request = format!(
        "PATCH {path} HTTP/1.1\r\nHost: x\r\nIdempotency-Key: held-commit\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    client.write_all(request.as_bytes()).await.unwrap();
    postgres.holding().await;
    writer.stop_with("KILL").await;
    let key = app.cache_key(&id);
    let fence: String = redis::cmd("GET").arg(&key).query(&mut app.redis()).unwrap();
    assert!(fence.starts_with("fence:"), "{fence}");

    // The COMMIT is held past the fence's lifetime: the fence expires, and a read caches the user
    // as Postgres still has it.
    let _: () = redis::cmd("PEXPIRE").arg(&key).arg(1).query(&mut app.redis()).unwrap();
    let cached = eventually(Duration::from_secs(2), async || {
        app.get(&path).await;
        let read = app.get(&path).await;
        read.header("x-cache") == Some("HIT") && read.json()["name"] == "Ada"
    })
    .await;
    assert!(
        cached,
        "the user as it was before the write is cached once the fence is gone"
    );

    // Then Postgres commits, and the retry with the same key, on another replica, replays the
    // write's answer: an acknowledgement, which no read may contradict.
    replayed_once_committed(&postgres, &app, &path, "held-commit", body, "late").await;
    for _ in 0..3 {
        assert_eq!(
            app.get(&path).await.json()["name"],
            "late",
            "a read after the replay served the body cached before the commit"
        );
    }
}

#[tokio::test]
async fn a_replay_is_refused_without_a_fence_and_answered_once_redis_takes_one_again() {
    let redis = Proxy::start(Services::from_env().redis_port).await;
    let app = spawn_app_with(|config| config.cache.redis.as_mut().unwrap().port = redis.port).await;
    let (_, path) = app.create_named("Ada").await;
    let patch = async || send_keyed(&app, Method::PATCH, &path, "replay-unfenced", r#"{"name":"Grace"}"#).await;
    assert_eq!(patch().await.status.as_u16(), 200);

    // Redis out of reach: no replica could be warned of the write the replay reports.
    redis.cut();
    let refused = patch().await;
    let problem = refused.problem(503);
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("already made") && detail.contains("retry with the same Idempotency-Key is safe"),
        "{problem}"
    );
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.header("idempotent-replayed"), None);
    assert_eq!(name_in_database(&app, &path["/v1/users/".len()..]).await, "Grace");

    redis.restore();
    let replayed = eventually(Duration::from_secs(5), async || patch().await.status.as_u16() == 200).await;
    assert!(replayed, "the replay is answered once Redis takes its fence again");
}

#[tokio::test]
async fn a_retry_while_its_idempotency_key_is_still_in_progress_is_told_so_and_later_gets_the_answer() {
    let postgres = Proxy::start(Services::from_env().pg_port).await;
    let writer = spawn_app_with(|config| config.database.port = postgres.port).await;
    let other = writer
        .spawn_replica(|config| config.database.port = Services::from_env().pg_port)
        .await;
    let (_, path) = writer.create_named("Ada").await;
    let body = r#"{"name":"Grace"}"#;

    // Postgres holds the write's COMMIT (storage that stopped completing writes): its outcome is
    // unknown, and its claim of the key stays in place, when its client retries, on the same
    // replica and on another.
    postgres.hold_request_containing(b"COMMIT");
    let first = send_keyed(&writer, Method::PATCH, &path, "in-progress", body);
    let retries = async {
        postgres.holding().await;
        tokio::join!(
            send_keyed(&writer, Method::PATCH, &path, "in-progress", body),
            send_keyed(&other, Method::PATCH, &path, "in-progress", body),
        )
    };
    let (first, (same_replica, other_replica)) = tokio::join!(first, retries);

    let unknown = first.problem(503);
    assert!(unknown["detail"].as_str().unwrap().contains("unknown"), "{unknown}");
    for (retry, on) in [(same_replica, "the same replica"), (other_replica, "another replica")] {
        let problem = retry.problem(409);
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains("still in progress"), "{on}: {problem}");
        assert_eq!(retry.header("retry-after"), Some("1"), "{on}");
    }

    // Once Postgres commits, a retry gets the write's own answer.
    replayed_once_committed(&postgres, &other, &path, "in-progress", body, "Grace").await;
}

#[tokio::test]
async fn a_retry_cut_off_on_another_replica_while_the_first_request_may_still_commit_is_told_the_outcome_is_unknown() {
    let path_of_other = Proxy::start(Services::from_env().pg_port).await;
    let writer = spawn_app().await;
    let other = writer
        .spawn_replica(|config| config.database.port = path_of_other.port)
        .await;
    let (id, path) = writer.create_named("Ada").await;
    let key = "cut-off-retry";

    // The first request claims the key and waits on the user's row, locked by another session; its
    // retry, on another replica, waits on that claim when its connection to Postgres is lost.
    let locker = lock_rows(&writer.database, &[&id]).await;
    let first = send_keyed(&writer, Method::PATCH, &path, key, GRACE);
    let retry_then_unlock = async {
        wait_for_lock_waits(&writer.database, 1).await;
        let retry = send_keyed(&other, Method::PATCH, &path, key, GRACE);
        let cut = async {
            wait_for_lock_waits(&writer.database, 2).await;
            path_of_other.cut();
            tokio::time::sleep(Duration::from_millis(100)).await;
            path_of_other.restore();
        };
        let (retry, ()) = tokio::join!(retry, cut);
        locker.batch_execute("COMMIT").await.unwrap();
        retry
    };
    let (first, retry) = tokio::join!(first, retry_then_unlock);

    let problem = retry.problem(503);
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("its outcome is unknown") && !detail.contains("nothing was written"),
        "the first request with its key may still commit: {problem}"
    );
    assert_eq!(first.status, 200, "and it did");
    assert_eq!(name_in_database(&writer, &id).await, "Grace");
    let replayed = send_keyed(&other, Method::PATCH, &path, key, GRACE).await;
    assert_eq!(
        (replayed.status.as_u16(), replayed.header("idempotent-replayed")),
        (200, Some("true"))
    );
}

#[tokio::test]
async fn a_repeat_whose_record_cannot_be_read_says_the_write_was_already_made() {
    let postgres = Proxy::start(Services::from_env().pg_port).await;
    let app = spawn_app_with(|config| config.database.port = postgres.port).await;
    let (_, path) = app.create_named("Ada").await;
    let key = "record-unread";
    assert_eq!(send_keyed(&app, Method::PATCH, &path, key, GRACE).await.status, 200);

    // The repeat finds the key taken by the committed write, and loses its connection while the
    // record (which holds the answer, "Grace") is on its way back; Postgres's side of it stays
    // open, its session in the transaction that locked the record.
    postgres.hold_reply_containing(b"Grace");
    let cut_while_held = async {
        postgres.holding().await;
        postgres.cut_leaving_servers_connected();
        postgres.restore();
    };
    let (repeated, ()) = tokio::join!(send_keyed(&app, Method::PATCH, &path, key, GRACE), cut_while_held);
    let problem = repeated.problem(503);
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("already made") && !detail.contains("nothing was written"),
        "{problem}"
    );
    let replayed = send_keyed(&app, Method::PATCH, &path, key, GRACE).await;
    assert_eq!(
        (replayed.status.as_u16(), replayed.header("idempotent-replayed")),
        (200, Some("true"))
    );
}

/// Lets Postgres complete the held `COMMIT` of the keyed PATCH of `path` to `name`, then retries
/// it on `app`: the write's own answer comes back, replayed.
async fn replayed_once_committed(postgres: &Proxy, app: &TestApp, path: &str, key: &str, body: &str, name: &str) {
    postgres.release();
    let id = &path["/v1/users/".len()..];
    let committed = eventually(Duration::from_secs(5), async || name_in_database(app, id).await == name).await;
    assert!(committed, "the held COMMIT went through once released");
    let replayed = send_keyed(app, Method::PATCH, path, key, body).await;
    assert_eq!(
        (replayed.status.as_u16(), replayed.header("idempotent-replayed")),
        (200, Some("true"))
    );
}

#[tokio::test]
async fn writes_while_postgres_is_frozen_tell_their_clients_the_truth() {
    let cluster = Cluster::create(&Cluster::default_bin(), "frozen");
    let app = app_on_cluster(&cluster).await;
    let kept = app.create_user(json!({"name": "before"})).await;
    let kept_path = format!("/v1/users/{}", kept["id"].as_str().unwrap());
    app.get(&kept_path).await;
    assert_eq!(app.get(&kept_path).await.header("x-cache"), Some("HIT"));

    cluster.freeze();
    let (create, patch) = (
        json!({"name": "created while frozen"}),
        json!({"name": "patched while frozen"}),
    );
    let (created, patched) = tokio::join!(app.post_json("/v1/users", &create), app.patch_json(&kept_path, &patch));
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.thaw();

    let database = cluster.client("gravity").await;
    // Polled as the patch is: a create told "nothing was written" must not land a moment later.
    let created_now = eventually(Duration::from_secs(5), async || {
        let row = database
            .query_one("SELECT count(*) FROM users WHERE name = 'created while frozen'", &[])
            .await
            .unwrap();
        row.get::<_, i64>(0) == 1
    })
    .await;
    agrees(&created, created_now, "the create");
    let patched_now = eventually(Duration::from_secs(5), async || {
        let row = database
            .query_one(
                "SELECT name FROM users WHERE id = $1::text::uuid",
                &[&kept["id"].as_str().unwrap()],
            )
            .await
            .unwrap();
        row.get::<_, String>(0) == "patched while frozen"
    })
    .await;
    agrees(&patched, patched_now, "the patch");

    // Once the writes have finished, every read agrees with the row.
    let row_name = |database: tokio_postgres::Client| async move {
        database
            .query_one(
                "SELECT name FROM users WHERE id = $1::text::uuid",
                &[&kept["id"].as_str().unwrap()],
            )
            .await
            .unwrap()
            .get::<_, String>(0)
    };
    let expected = row_name(database).await;
    let settled = eventually(Duration::from_secs(5), async || {
        app.get(&kept_path).await.json()["name"] == expected
    })
    .await;
    assert!(settled, "reads agree with the row once the write finished");
    for _ in 0..20 {
        assert_eq!(app.get(&kept_path).await.json()["name"], expected.as_str());
    }
}

#[tokio::test]
async fn a_patch_whose_client_goes_away_still_removes_the_cached_body() {
    let app = spawn_app().await;
    let (id, path) = app.create_named("Ada").await;
    app.get(&path).await;
    assert_eq!(app.get(&path).await.header("x-cache"), Some("HIT"));
    let locker = lock_rows(&app.database, &[&id]).await;

    let body = r#"{"name":"Ada King"}"#;
    let mut client = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let request = format!(
        "PATCH {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    client.write_all(request.as_bytes()).await.unwrap();
    wait_for_lock_waits(&app.database, 1).await;
    drop(client);
    locker.batch_execute("COMMIT").await.unwrap();

    let removed = eventually(Duration::from_secs(5), async || {
        let stored: Option<Vec<u8>> = redis::Commands::get(&mut app.redis(), app.cache_key(&id)).unwrap();
        stored.is_none()
    })
    .await;
    assert!(
        removed,
        "the write finished and removed the cached body although its client had gone"
    );
    assert_eq!(name_in_database(&app, &id).await, "Ada King");
    assert_eq!(app.get(&path).await.json()["name"], "Ada King");
}

#[tokio::test]
async fn a_write_waiting_on_a_locked_row_delays_no_unrelated_request() {
    let app = spawn_app_with(|config| config.cache.redis = None).await;
    let locked = app.create_user(json!({"name": "locked"})).await;
    let locked_id = locked["id"].as_str().unwrap().to_owned();
    let mut others = Vec::new();
    for number in 0..40 {
        others.push(app.create_user(json!({"name": format!("other {number}")})).await);
    }
    let locker = lock_rows(&app.database, &[&locked_id]).await;
    let lock_taken = Instant::now();
    let waiting_write = {
        let address = app.address.clone();
        let path = format!("/v1/users/{locked_id}");
        tokio::spawn(async move { crate::helpers::http_patch_json(&address, &path, &json!({"name": "finally"})).await })
    };
    wait_for_lock_waits(&app.database, 1).await;

    for other in &others {
        let started = Instant::now();
        let (status, _) = http_get_json(&app.address, &format!("/v1/users/{}", other["id"].as_str().unwrap())).await;
        let took = started.elapsed();
        assert_eq!(status, 200);
        assert!(took < Duration::from_millis(100), "an unrelated read took {took:?}");
    }
    let started = Instant::now();
    assert_eq!(app.get("/ready").await.status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "/ready took {:?}",
        started.elapsed()
    );

    tokio::time::sleep(Duration::from_secs(6).saturating_sub(lock_taken.elapsed())).await;
    locker.batch_execute("COMMIT").await.unwrap();
    let (status, body) = waiting_write.await.unwrap();
    assert_eq!((status, body["name"].clone()), (200, json!("finally")));
}

#[tokio::test]
async fn writes_waiting_on_more_locked_rows_than_there_are_write_connections_delay_no_unrelated_write() {
    // The default pool: two write connections. Four locked rows, each with a PATCH waiting on it.
    let app = spawn_app_with(|config| config.cache.redis = None).await;
    let mut locked_ids = Vec::new();
    for number in 0..4 {
        locked_ids.push(app.create_named(&format!("locked {number}")).await.0);
    }
    let (other_id, other_path) = app.create_named("unrelated").await;
    let locked: Vec<&str> = locked_ids.iter().map(String::as_str).collect();
    let locker = lock_rows(&app.database, &locked).await;
    let waiting_writes: Vec<_> = locked_ids
        .iter()
        .map(|id| {
            let address = app.address.clone();
            let path = format!("/v1/users/{id}");
            tokio::spawn(
                async move { crate::helpers::http_patch_json(&address, &path, &json!({"name": "finally"})).await },
            )
        })
        .collect();
    wait_for_lock_waits(&app.database, 4).await;
    let metrics = String::from_utf8_lossy(&app.get("/metrics").await.body).into_owned();
    assert!(
        metrics.contains("gravity_db_write_extra_connections 2\n"),
        "two extra connections hold the writes the pool could not: {}",
        metrics
            .lines()
            .filter(|line| line.contains("gravity_db_"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    for number in 0..10 {
        let started = Instant::now();
        let patched = app
            .patch_json(&other_path, &json!({"name": format!("unrelated {number}")}))
            .await;
        let created = app
            .post_json("/v1/users", &json!({"name": format!("new {number}")}))
            .await;
        let took = started.elapsed();
        assert_eq!((patched.status.as_u16(), created.status.as_u16()), (200, 201));
        assert!(
            took < Duration::from_secs(1),
            "an unrelated PATCH and POST took {took:?} while four rows were locked"
        );
    }
    assert_eq!(name_in_database(&app, &other_id).await, "unrelated 9");

    locker.batch_execute("COMMIT").await.unwrap();
    for waiting in waiting_writes {
        let (status, body) = waiting.await.unwrap();
        assert_eq!((status, body["name"].clone()), (200, json!("finally")));
    }
    let closed = eventually(Duration::from_secs(5), async || {
        String::from_utf8_lossy(&app.get("/metrics").await.body).contains("gravity_db_write_extra_connections 0\n")
    })
    .await;
    assert!(closed, "the extra connections are closed once their writes end");
}

/// A 2xx means the write is in Postgres; a 503 that does not say "unknown" means it is not.
fn agrees(response: &TestResponse, stored: bool, what: &str) {
    let status = response.status.as_u16();
    let unknown = status == 503
        && response.json()["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("unknown"));
    match status {
        200 | 201 => assert!(stored, "{what} was acknowledged but is not in Postgres"),
        503 if unknown => {}
        503 => assert!(
            !stored,
            "{what} got a 503 saying nothing was written, yet it is in Postgres"
        ),
        other => panic!("{what} got {other}: {}", String::from_utf8_lossy(&response.body)),
    }
}

async fn name_in_database(app: &TestApp, id: &str) -> String {
    app.database
        .client
        .query_one("SELECT name FROM users WHERE id = $1::text::uuid", &[&id])
        .await
        .unwrap()
        .get(0)
}

/// The service on a database of its own in `cluster`, migrated.
pub async fn app_on_cluster(cluster: &Cluster) -> TestApp {
    cluster.create_database("gravity").await;
    let services = crate::support::services::Services {
        pg_host: "127.0.0.1".into(),
        pg_port: cluster.port,
        pg_user: "postgres".into(),
        pg_password: String::new(),
        ..crate::support::services::Services::from_env()
    };
    let database = gravity_bff::Config::from_vars(services.vars("gravity", "unused"))
        .unwrap()
        .database;
    let mut migrator = gravity_bff::db::migrate::Migrator::connect(&database).await.unwrap();
    migrator.up().await.unwrap();
    spawn_app_with(move |config| config.database = database).await
}
