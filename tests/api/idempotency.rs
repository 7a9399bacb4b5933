//! `Idempotency-Key`: a repeat gets the first response again without running; another request
//! with the same key is refused; concurrent repeats create one user; a retry after an unknown
//! outcome is safe; records expire.

use std::time::Duration;

use hyper::Method;
use serde_json::json;

use crate::helpers::{
    Services, TestApp, TestResponse, eventually, http_request, send_keyed, spawn_app, spawn_app_with,
};
use crate::support::proxy::Proxy;

async fn count_named(app: &TestApp, name: &str) -> i64 {
    app.database
        .client
        .query_one("SELECT count(*) FROM users WHERE name = $1", &[&name])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_repeated_request_gets_the_first_response_again_without_running() {
    let app = spawn_app().await;
    let body = r#"{"name":"Ada","email":"ada@example.com"}"#;
    let first = send_keyed(&app, Method::POST, "/v1/users", "create-ada", body).await;
    assert_eq!(first.status, 201);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = send_keyed(&app, Method::POST, "/v1/users", "create-ada", body).await;
    assert_eq!(again.status, 201, "not a 409 for its own email");
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(count_named(&app, "Ada").await, 1);

    let path = first.header("location").unwrap().to_owned();
    let patch = r#"{"name":"Ada King"}"#;
    let patched = send_keyed(&app, Method::PATCH, &path, "rename-ada", patch).await;
    assert_eq!(patched.status, 200);
    assert_eq!(
        send_keyed(&app, Method::PATCH, &path, "other-rename", r#"{"name":"Countess"}"#)
            .await
            .status,
        200
    );
    let replayed = send_keyed(&app, Method::PATCH, &path, "rename-ada", patch).await;
    assert_eq!((replayed.status.as_u16(), &replayed.body), (200, &patched.body));
    assert_eq!(
        app.get(&path).await.json()["name"],
        "Countess",
        "the replay did not run again"
    );

    let deleted = send_keyed(&app, Method::DELETE, &path, "remove-ada", "").await;
    assert_eq!(deleted.status, 204);
    let again = send_keyed(&app, Method::DELETE, &path, "remove-ada", "").await;
    assert_eq!(again.status, 204, "a replayed delete is a 204, not a 404");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
}

#[tokio::test]
async fn the_same_key_with_another_request_is_a_422_and_changes_nothing() {
    let app = spawn_app().await;
    assert_eq!(
        send_keyed(&app, Method::POST, "/v1/users", "k1", r#"{"name":"Ada"}"#)
            .await
            .status,
        201
    );
    send_keyed(&app, Method::POST, "/v1/users", "k1", r#"{"name":"Grace"}"#)
        .await
        .problem(422);
    let created = app.create_user(json!({"name": "Linus"})).await;
    let path = format!("/v1/users/{}", created["id"].as_str().unwrap());
    send_keyed(&app, Method::PATCH, &path, "k1", r#"{"name":"Ada"}"#)
        .await
        .problem(422);
    // A PATCH that changes nothing writes nothing, and is refused for the key all the same.
    send_keyed(&app, Method::PATCH, &path, "k1", "{}").await.problem(422);
    assert_eq!(send_keyed(&app, Method::PATCH, &path, "k2", "{}").await.status, 200);
    assert_eq!(count_named(&app, "Grace").await, 0);
    assert_eq!(app.get(&path).await.json()["name"], "Linus");
}

#[tokio::test]
async fn a_malformed_key_is_a_400() {
    let app = spawn_app().await;
    let long = "k".repeat(256);
    let (_, user) = app.create_named("Grace").await;
    for key in ["", "has space", long.as_str()] {
        send_keyed(&app, Method::POST, "/v1/users", key, r#"{"name":"Ada"}"#)
            .await
            .problem(400);
        // Even a PATCH that would change nothing.
        send_keyed(&app, Method::PATCH, &user, key, "{}").await.problem(400);
    }
    assert_eq!(count_named(&app, "Ada").await, 0);
}

#[tokio::test]
async fn fifty_concurrent_requests_with_one_key_create_exactly_one_user() {
    let app = spawn_app().await;
    let body = r#"{"name":"Once","email":"once@example.com"}"#;
    let addresses = vec![app.address.clone(); 50];
    all_answered_with_one_user(concurrent_creates(addresses, "only-once", body).await);
    assert_eq!(count_named(&app, "Once").await, 1);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_through_two_replicas_create_exactly_one_user() {
    // The process's own queue of requests per key does not reach across replicas: here the claim
    // row in Postgres decides, a second claim waiting for the first one's commit.
    let app = spawn_app().await;
    let replica = app.spawn_replica(|_| {}).await;
    let body = r#"{"name":"Across","email":"across@example.com"}"#;
    let addresses = [&app.address, &replica.address]
        .repeat(20)
        .into_iter()
        .cloned()
        .collect();
    all_answered_with_one_user(concurrent_creates(addresses, "across-replicas", body).await);
    assert_eq!(count_named(&app, "Across").await, 1);
}

/// One POST of `body` with Idempotency-Key `key` to each address, all at once.
async fn concurrent_creates(addresses: Vec<String>, key: &'static str, body: &'static str) -> Vec<TestResponse> {
    let mut requests = tokio::task::JoinSet::new();
    for address in addresses {
        requests.spawn(async move {
            let headers = [("idempotency-key", key), ("content-type", "application/json")];
            http_request(&address, Method::POST, "/v1/users", &headers, body.as_bytes()).await
        });
    }
    requests.join_all().await
}

fn all_answered_with_one_user(responses: Vec<TestResponse>) {
    let first_body = &responses[0].body;
    for response in &responses {
        assert_eq!(response.status, 201, "{}", String::from_utf8_lossy(&response.body));
        assert_eq!(&response.body, first_body, "every one is answered with the one user");
    }
}

#[tokio::test]
async fn a_retry_after_an_unknown_outcome_never_creates_a_second_user_nor_gets_a_409() {
    let postgres = Proxy::start(Services::from_env().pg_port).await;
    let app = spawn_app_with(|config| config.database.port = postgres.port).await;
    let body = r#"{"name":"Maybe","email":"maybe@example.com"}"#;

    // The commit reaches Postgres, its answer never reaches the service.
    postgres.cut_after_client_sends(b"COMMIT");
    let first = send_keyed(&app, Method::POST, "/v1/users", "retry-me", body).await;
    let problem = first.problem(503);
    assert!(problem["detail"].as_str().unwrap().contains("unknown"), "{problem}");
    assert_eq!(
        count_named(&app, "Maybe").await,
        1,
        "the commit the service never heard of landed"
    );

    let mut retried = None;
    let answered = eventually(Duration::from_secs(5), async || {
        let response = send_keyed(&app, Method::POST, "/v1/users", "retry-me", body).await;
        let definite = response.status != 503;
        retried = Some(response);
        definite
    })
    .await;
    assert!(answered, "a retry gets a definite answer once the connection is back");
    let retried = retried.unwrap();
    assert_eq!(retried.status, 201, "{}", String::from_utf8_lossy(&retried.body));
    assert_eq!(
        retried.header("idempotent-replayed"),
        Some("true"),
        "the retry replays the write"
    );
    assert_eq!(count_named(&app, "Maybe").await, 1);
    let again = send_keyed(&app, Method::POST, "/v1/users", "retry-me", body).await;
    assert_eq!((again.status.as_u16(), &again.body), (201, &retried.body));
}

#[tokio::test]
async fn a_keyed_write_whose_claim_waited_gets_only_the_time_left_for_its_statement() {
    let app = spawn_app().await;
    let (id, path) = app.create_named("Ada").await;
    // Another session claims the same key and holds its claim 5 s (then rolls back); a third
    // holds the user's row for the whole test.
    let claimer = app.database.services.connect(&app.database.name).await;
    claimer
        .batch_execute("BEGIN; INSERT INTO idempotency_keys (key, fingerprint) VALUES ('slow-claim', '\\x00')")
        .await
        .unwrap();
    let locker = crate::helpers::lock_rows(&app.database, &[&id]).await;
    let release_claim = async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        claimer.batch_execute("ROLLBACK").await.unwrap();
    };

    // Its claim waits 5 s; the UPDATE then waits on the row with the under 5 s left, not 9 s again.
    let started = std::time::Instant::now();
    let patch = send_keyed(&app, Method::PATCH, &path, "slow-claim", r#"{"name":"never"}"#);
    let ((), response) = tokio::join!(release_claim, patch);
    let took = started.elapsed();
    let problem = response.problem(503);
    assert!(
        problem["detail"].as_str().unwrap().contains("nothing was written"),
        "{problem}"
    );
    assert!(took <= Duration::from_millis(10_500), "answered after {took:?}");
    locker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(app.get(&path).await.json()["name"], "Ada");
    let records = app
        .database
        .client
        .query_one("SELECT count(*) FROM idempotency_keys WHERE key = 'slow-claim'", &[])
        .await
        .unwrap();
    assert_eq!(records.get::<_, i64>(0), 0, "nothing written, nothing recorded");
}

#[tokio::test]
async fn expired_records_are_removed_and_an_expired_key_is_new_again() {
    let app = spawn_app_with(|config| config.idempotency_sweep_every = Duration::from_millis(100)).await;
    create_with_a_record_25_hours_old(&app, "old-key").await;
    let swept = eventually(Duration::from_secs(5), async || {
        let row = app
            .database
            .client
            .query_one("SELECT count(*) FROM idempotency_keys WHERE key = 'old-key'", &[])
            .await
            .unwrap();
        row.get::<_, i64>(0) == 0
    })
    .await;
    assert!(swept, "the expired record was deleted by the service");
    let reused = send_keyed(&app, Method::POST, "/v1/users", "old-key", r#"{"name":"Second"}"#).await;
    assert_eq!(reused.status, 201);
    assert_eq!(
        reused.header("idempotent-replayed"),
        None,
        "an expired key is a new key"
    );
}

#[tokio::test]
async fn an_expired_record_not_yet_swept_is_taken_over_as_a_new_key() {
    let app = spawn_app().await;
    create_with_a_record_25_hours_old(&app, "stale").await;
    let reused = send_keyed(&app, Method::POST, "/v1/users", "stale", r#"{"name":"Second"}"#).await;
    assert_eq!(reused.status, 201, "{}", String::from_utf8_lossy(&reused.body));
    assert_eq!(count_named(&app, "Second").await, 1);
}

#[tokio::test]
async fn a_sweep_never_deletes_a_record_just_taken_over_so_a_retry_still_replays() {
    let app = spawn_app_with(|config| config.idempotency_sweep_every = Duration::from_millis(50)).await;
    for key in ["reused", "swept-meanwhile"] {
        let created = send_keyed(&app, Method::POST, "/v1/users", key, r#"{"name":"First"}"#).await;
        assert_eq!(created.status, 201);
    }
    let session = async || app.database.services.connect(&app.database.name).await;
    // Creates wait on this lock, so the write that takes the expired record over holds it
    // (claimed, not yet committed) while the service's sweeps run.
    let blocker = session().await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE users IN SHARE MODE")
        .await
        .unwrap();
    // The record expires inside a transaction that keeps it from the sweeps until the create's
    // claim is queued behind it, so the claim, not a sweep, is the first to have it.
    let ager = session().await;
    ager.batch_execute(
        "BEGIN; UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'reused'",
    )
    .await
    .unwrap();
    let body = r#"{"name":"Second"}"#;
    let create = send_keyed(&app, Method::POST, "/v1/users", "reused", body);
    let hold_while_sweeps_run = async {
        crate::helpers::wait_for_lock_waits(&app.database, 1).await;
        ager.batch_execute("COMMIT").await.unwrap();
        // A sweep that ran while the takeover held the record: the other expired record is gone.
        app.database
            .client
            .batch_execute(
                "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'swept-meanwhile'",
            )
            .await
            .unwrap();
        let swept = eventually(Duration::from_secs(5), async || {
            let row = app
                .database
                .client
                .query_one(
                    "SELECT count(*) FROM idempotency_keys WHERE key = 'swept-meanwhile'",
                    &[],
                )
                .await
                .unwrap();
            row.get::<_, i64>(0) == 0
        })
        .await;
        assert!(swept, "the sweeps run");
        let takeover_waits = eventually(Duration::from_secs(5), async || {
            crate::helpers::lock_waits(&app.database).await == 1
        })
        .await;
        assert!(takeover_waits, "the takeover still waits");
        blocker.batch_execute("ROLLBACK").await.unwrap();
    };
    let ((), created) = tokio::join!(hold_while_sweeps_run, create);
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    assert_eq!(
        created.header("idempotent-replayed"),
        None,
        "the expired key was taken over as new"
    );
    let retried = send_keyed(&app, Method::POST, "/v1/users", "reused", body).await;
    assert_eq!(
        retried.header("idempotent-replayed"),
        Some("true"),
        "the record outlived the sweeps"
    );
    assert_eq!((retried.status.as_u16(), &retried.body), (201, &created.body));
    assert_eq!(count_named(&app, "Second").await, 1, "the retry created nobody");
}

#[tokio::test]
async fn a_repeat_that_finds_the_record_live_replays_it_even_if_it_expires_while_being_answered() {
    let app = spawn_app().await;
    let body = r#"{"name":"Edge"}"#;
    let created = send_keyed(&app, Method::POST, "/v1/users", "edge", body).await;
    assert_eq!(created.status, 201);
    // The record expires 2 s from now; a repeat's claim takes 3 s (a trigger), so it finds the
    // record live when it starts and answers after the record's 24 hours are up.
    app.database
        .client
        .batch_execute(
            "UPDATE idempotency_keys SET created_at = now() - interval '24 hours' + interval '2 seconds' \
             WHERE key = 'edge'; \
             CREATE FUNCTION slow_claims() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$; \
             CREATE TRIGGER slow_claims BEFORE INSERT ON idempotency_keys \
             FOR EACH ROW EXECUTE FUNCTION slow_claims()",
        )
        .await
        .unwrap();

    let repeated = send_keyed(&app, Method::POST, "/v1/users", "edge", body).await;
    assert_eq!(
        (repeated.status.as_u16(), repeated.header("idempotent-replayed")),
        (201, Some("true")),
        "{}",
        String::from_utf8_lossy(&repeated.body)
    );
    assert_eq!(repeated.body, created.body);
    assert_eq!(count_named(&app, "Edge").await, 1);
}

/// Creates a user with `key`, then ages the key's record past the 24 hours it is kept for.
async fn create_with_a_record_25_hours_old(app: &TestApp, key: &str) {
    let created = send_keyed(app, Method::POST, "/v1/users", key, r#"{"name":"First"}"#).await;
    assert_eq!(created.status, 201);
    app.database
        .client
        .execute(
            "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = $1",
            &[&key],
        )
        .await
        .unwrap();
}
