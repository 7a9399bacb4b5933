//! Creates that arrive together share one statement and one commit, and each request is answered
//! exactly as if it had been alone.

use std::collections::HashSet;
use std::time::Duration;

use hyper::Method;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::helpers::{
    TestApp, TestResponse, eventually, http_request, lock_rows, spawn_app, spawn_app_with, wait_for_lock_waits,
};

/// Holds every write connection of the app (each waits on a locked row), runs `creates` while
/// they are held, so that all of them queue, then lets go; returns the answers in order.
async fn create_while_writers_are_busy(app: &TestApp, creates: &[Value]) -> Vec<TestResponse> {
    let mut answers = Vec::new();
    for request in queue_while_writers_are_busy(app, creates).await {
        answers.push(request.await.unwrap());
    }
    answers
}

/// As `create_while_writers_are_busy`, returning the requests on their way once they go out.
async fn queue_while_writers_are_busy(app: &TestApp, creates: &[Value]) -> Vec<JoinHandle<TestResponse>> {
    let writers = HeldWriters::hold(app).await;
    let requests = send_creates(app, creates);
    wait_until_queued(app, creates.len()).await;
    writers.release().await;
    requests
}

/// The app's write connections, each held by a PATCH waiting on a row another session locked.
struct HeldWriters {
    locker: tokio_postgres::Client,
    patches: tokio::task::JoinSet<(u16, Value)>,
}

impl HeldWriters {
    async fn hold(app: &TestApp) -> HeldWriters {
        let mut blockers = Vec::new();
        for number in 0..2 {
            blockers.push(app.create_user(json!({"name": format!("blocker {number}")})).await);
        }
        let ids: Vec<&str> = blockers.iter().map(|user| user["id"].as_str().unwrap()).collect();
        let locker = lock_rows(&app.database, &ids).await;
        let mut patches = tokio::task::JoinSet::new();
        for id in &ids {
            let (address, path) = (app.address.clone(), format!("/v1/users/{id}"));
            patches.spawn(async move {
                crate::helpers::http_patch_json(&address, &path, &json!({"name": "unblocked"})).await
            });
        }
        wait_for_lock_waits(&app.database, 2).await;
        HeldWriters { locker, patches }
    }

    /// Unlocks the rows and waits for the PATCHes: their connections are free again.
    async fn release(self) {
        self.locker.batch_execute("COMMIT").await.unwrap();
        self.patches.join_all().await;
    }
}

/// Sends each create, without waiting for the answers.
fn send_creates(app: &TestApp, creates: &[Value]) -> Vec<JoinHandle<TestResponse>> {
    creates
        .iter()
        .map(|create| {
            let (address, body) = (app.address.clone(), serde_json::to_vec(create).unwrap());
            tokio::spawn(async move {
                let json = [("content-type", "application/json")];
                http_request(&address, Method::POST, "/v1/users", &json, &body).await
            })
        })
        .collect()
}

async fn wait_until_queued(app: &TestApp, count: usize) {
    let all_queued = eventually(Duration::from_secs(5), async || {
        let metrics = String::from_utf8(app.get("/metrics").await.body.to_vec()).unwrap();
        metrics.contains(&format!("gravity_creates_waiting {count}"))
    })
    .await;
    assert!(all_queued, "every create queued for a write connection");
}

#[tokio::test]
async fn creates_queued_together_share_one_commit_and_each_gets_its_own_answer() {
    let app = spawn_app().await;
    let mut creates: Vec<Value> = (0..10)
        .map(|number| json!({"name": format!("batched {number}"), "email": format!("b{number}@example.com")}))
        .collect();
    creates.push(json!({"name": "same email, first or second", "email": "twice@example.com"}));
    creates.push(json!({"name": "same email, first or second", "email": "TWICE@example.com"}));
    let answers = create_while_writers_are_busy(&app, &creates).await;

    let mut created_at = HashSet::new();
    let mut ids = HashSet::new();
    for (create, answer) in creates.iter().zip(&answers).take(10) {
        assert_eq!(answer.status, 201, "{}", String::from_utf8_lossy(&answer.body));
        let user = answer.json();
        assert_eq!(user["name"], create["name"]);
        assert_eq!(user["email"], create["email"]);
        assert_eq!(
            answer.header("location").unwrap(),
            format!("/v1/users/{}", user["id"].as_str().unwrap())
        );
        created_at.insert(user["created_at"].as_str().unwrap().to_owned());
        ids.insert(user["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 10, "every create got a user of its own");
    assert_eq!(
        created_at.len(),
        1,
        "they were written in one transaction: {created_at:?}"
    );
    let same_email: Vec<u16> = answers[10..].iter().map(|answer| answer.status.as_u16()).collect();
    assert!(
        same_email == [201, 409] || same_email == [409, 201],
        "one email in one batch: one 201 and one 409, got {same_email:?}"
    );
}

#[tokio::test]
async fn a_batch_that_fails_for_one_row_is_run_again_row_by_row() {
    let app = spawn_app().await;
    app.database
        .client
        .batch_execute(
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.name = 'poison' THEN RAISE EXCEPTION 'poisoned row'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse_poison BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
        )
        .await
        .unwrap();
    let creates = [
        json!({"name": "healthy 1"}),
        json!({"name": "poison"}),
        json!({"name": "healthy 2"}),
    ];
    let answers = create_while_writers_are_busy(&app, &creates).await;
    assert_eq!(answers[0].status, 201);
    assert_eq!(answers[1].status, 500, "only the bad row fails");
    assert_eq!(answers[2].status, 201);
}

#[tokio::test]
async fn an_email_locked_by_another_session_neither_fails_nor_holds_up_the_rest_of_its_batch() {
    let app = spawn_app().await;
    // Another session is inserting this email and has not committed.
    let holder = app.database.services.connect(&app.database.name).await;
    holder
        .batch_execute("BEGIN; INSERT INTO users (name, email) VALUES ('holder', 'held@example.com')")
        .await
        .unwrap();
    let mut creates: Vec<Value> = (0..39)
        .map(|number| json!({"name": format!("unrelated {number}"), "email": format!("u{number}@example.com")}))
        .collect();
    creates.push(json!({"name": "same email as the open insert", "email": "held@example.com"}));
    let mut requests = queue_while_writers_are_busy(&app, &creates).await;
    let held = requests.pop().unwrap();

    // While the other session still holds the email, every unrelated create has its answer.
    for (number, request) in requests.into_iter().enumerate() {
        let answer = request.await.unwrap();
        assert_eq!(
            answer.status,
            201,
            "create {number}: {}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    assert!(
        !held.is_finished(),
        "the create of the held email waits for the other session"
    );
    holder.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        held.await.unwrap().status,
        409,
        "the email was taken by the other session"
    );
}

#[tokio::test]
async fn an_email_released_elsewhere_lets_its_create_through_while_another_of_its_batch_stays_locked() {
    let app = spawn_app().await;
    // Two other sessions insert an email each and do not commit.
    let mut holders = Vec::new();
    for email in ["stuck@example.com", "freed@example.com"] {
        let holder = app.database.services.connect(&app.database.name).await;
        let insert = format!("BEGIN; INSERT INTO users (name, email) VALUES ('holder', '{email}')");
        holder.batch_execute(&insert).await.unwrap();
        holders.push(holder);
    }
    // One batch: the create of the email that stays locked is queued first.
    let writers = HeldWriters::hold(&app).await;
    let mut stuck = send_creates(&app, &[json!({"name": "stuck", "email": "stuck@example.com"})]);
    wait_until_queued(&app, 1).await;
    let mut freed = send_creates(&app, &[json!({"name": "freed", "email": "freed@example.com"})]);
    wait_until_queued(&app, 2).await;
    writers.release().await;
    let (stuck, freed) = (stuck.pop().unwrap(), freed.pop().unwrap());
    // Both have found their email locked by then (the batch, then each alone, 100 ms apiece).
    crate::helpers::wait_for_lock_waits(&app.database, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    holders[1].batch_execute("ROLLBACK").await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(2), freed).await;
    let answer = answer.expect("answered while the other email is still held").unwrap();
    assert_eq!(answer.status, 201, "{}", String::from_utf8_lossy(&answer.body));
    assert!(!stuck.is_finished(), "the create of the held email still waits");
    holders[0].batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        stuck.await.unwrap().status,
        409,
        "the email was taken by the other session"
    );
}

#[tokio::test]
async fn a_create_with_little_time_left_fails_no_other_create_of_its_batch() {
    // No extra write connections, so creates wait while the pool's are held; a statement that
    // inserts several rows takes 5 s (a trigger), one that inserts one row no time.
    let app = spawn_app_with(|config| config.database.extra_write_connections = 0).await;
    app.database
        .client
        .batch_execute(
            "CREATE FUNCTION slow_batches() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF (SELECT count(*) FROM inserted) > 1 THEN PERFORM pg_sleep(5); END IF; RETURN NULL; END $$; \
             CREATE TRIGGER slow_batches AFTER INSERT ON users REFERENCING NEW TABLE AS inserted \
             FOR EACH STATEMENT EXECUTE FUNCTION slow_batches()",
        )
        .await
        .unwrap();
    let writers = HeldWriters::hold(&app).await;
    let late = send_creates(&app, &[json!({"name": "late"})]);
    // Six seconds of its ten go by before it has a connection: its batch has under 4 s, less
    // than the batch takes; the creates it is batched with have nearly all of theirs.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let fresh = send_creates(&app, &[json!({"name": "fresh 1"}), json!({"name": "fresh 2"})]);
    wait_until_queued(&app, 3).await;
    writers.release().await;

    for (number, request) in fresh.into_iter().enumerate() {
        let answer = request.await.unwrap();
        let body = String::from_utf8_lossy(&answer.body);
        assert_eq!(answer.status, 201, "fresh create {number}: {body}");
    }
    let late = late.into_iter().next().unwrap().await.unwrap();
    assert!(
        [201, 503].contains(&late.status.as_u16()),
        "the late create is answered by its own time: {}",
        String::from_utf8_lossy(&late.body)
    );
}
