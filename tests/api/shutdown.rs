//! SIGTERM and SIGHUP with requests in flight, against the real binary (as PID 1 in a container
//! would get them).

use std::time::Duration;

use hyper::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::helpers::{
    TestDatabase, TestResponse, eventually, http_get_json, http_request, lock_rows, lock_waits, signal,
    wait_for_lock_waits,
};
use crate::service_process;
use crate::support::proxy::Proxy;

pub const BINARY: &str = env!("CARGO_BIN_EXE_gravity-bff");

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_refuses_new_ones_and_exits_0() {
    drains_in_flight_requests_and_exits_0_on("TERM").await;
}

#[tokio::test]
async fn sighup_is_handled_like_sigterm() {
    drains_in_flight_requests_and_exits_0_on("HUP").await;
}

async fn drains_in_flight_requests_and_exits_0_on(signal_name: &str) {
    let database = TestDatabase::create().await;
    let service = service_process::on(&database, &[("LOG_LEVEL", "info")], None).await;
    let port = service.port;

    // A request whose head has arrived but whose body is still on its way: in flight.
    let body = br#"{"name":"in flight"}"#;
    let mut in_flight = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!(
        "POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await.unwrap();
    in_flight.write_all(&body[..5]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    signal(service.pid(), signal_name);
    let refused = crate::helpers::eventually(Duration::from_secs(2), async || {
        TcpStream::connect(("127.0.0.1", port)).await.is_err()
    })
    .await;
    assert!(refused, "new connections are refused once SIG{signal_name} arrives");

    in_flight.write_all(&body[5..]).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), in_flight.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 201"),
        "the in-flight request completed: {answer}"
    );

    let finished = service.wait().await;
    assert!(finished.status.success(), "exit code 0, got {:?}", finished.status);
    assert!(
        finished
            .stderr
            .lines()
            .any(|line| line.contains(r#""message":"stopped""#)),
        "the stopped event is logged:\n{}",
        finished.stderr
    );
    let posted = finished
        .request_lines()
        .into_iter()
        .find(|line| line["http.request.method"] == "POST")
        .expect("the in-flight request was logged");
    assert_eq!(posted["http.response.status_code"], 201);
    assert_eq!(posted["http.route"], "/v1/users");
    let stored: i64 = database
        .client
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 1);
}

#[tokio::test]
async fn requests_that_arrived_on_idle_keep_alive_connections_before_sigterm_are_answered() {
    let database = TestDatabase::create().await;
    // Probes are logged at debug.
    let service = service_process::on(&database, &[("LOG_LEVEL", "debug")], None).await;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let mut client = TcpStream::connect(("127.0.0.1", service.port)).await.unwrap();
        client.write_all(HEALTH).await.unwrap();
        read_one_answer(&mut client).await;
        clients.push(client);
    }
    // Each idle keep-alive connection gets a request, in the server's socket before the signal.
    for (number, client) in clients.iter_mut().enumerate() {
        let request = format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: late-{number}\r\n\r\n");
        client.write_all(request.as_bytes()).await.unwrap();
    }
    // At once: hyper has not read them yet (a write to a loopback socket is in the peer's buffer
    // when it returns).
    signal(service.pid(), "TERM");

    let mut unanswered = 0;
    for client in &mut clients {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        // Read to the end: the connection closes after the answer.
        if !(read.is_ok_and(|read| read.is_ok()) && answer.starts_with("HTTP/1.1 200")) {
            unanswered += 1;
        }
    }
    assert_eq!(
        unanswered, 0,
        "every request sent before SIGTERM is answered, its connection then closed"
    );
    let finished = service.wait().await;
    assert!(finished.status.success(), "exit code 0, got {:?}", finished.status);
    let logged = finished
        .request_lines()
        .iter()
        .filter(|line| {
            line["http.request.id"]
                .as_str()
                .is_some_and(|id| id.starts_with("late-"))
        })
        .count();
    assert_eq!(logged, CLIENTS, "and each is logged");
}

const CLIENTS: usize = 200;

#[tokio::test]
async fn a_request_whose_head_was_half_sent_on_a_keep_alive_connection_before_sigterm_is_answered() {
    let database = TestDatabase::create().await;
    let service = service_process::on(&database, &[("LOG_LEVEL", "info")], None).await;
    let mut client = TcpStream::connect(("127.0.0.1", service.port)).await.unwrap();
    client.write_all(HEALTH).await.unwrap();
    read_one_answer(&mut client).await;
    // The next request's head, half of it: read by the server (no longer in its socket) when
    // the signal comes.
    client.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(service.pid(), "TERM");
    let draining = eventually(Duration::from_secs(5), async || {
        service.stderr().contains("shutting down; draining in-flight requests")
    })
    .await;
    assert!(draining);
    let _ = client.write_all(b"X-Request-Id: half-1\r\n\r\n").await;

    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        read.is_ok_and(|read| read.is_ok()) && answer.starts_with("HTTP/1.1 200"),
        "a request the client had begun to send is answered, then its connection closed: {answer:?}"
    );
    let finished = service.wait().await;
    assert!(finished.status.success(), "exit code 0, got {:?}", finished.status);
}

#[tokio::test]
async fn a_second_signal_while_draining_exits_at_once() {
    let database = TestDatabase::create().await;
    let vars = [("SHUTDOWN_GRACE_SECONDS", "60")];
    let mut service = service_process::on(&database, &vars, None).await;
    // A request in flight (its body still on its way) that would hold the drain for the grace.
    let mut in_flight = TcpStream::connect(("127.0.0.1", service.port)).await.unwrap();
    let head = "POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{";
    in_flight.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    signal(service.pid(), "TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(service.wait_exit(Duration::from_millis(10)).await.is_none(), "draining");
    signal(service.pid(), "INT");
    let status = service.wait_exit(Duration::from_secs(3)).await;
    assert_eq!(
        status.and_then(|status| status.code()),
        Some(1),
        "gone at once, with code 1"
    );
}

#[tokio::test]
async fn a_stdout_nobody_reads_does_not_keep_a_stopping_process_alive() {
    let database = TestDatabase::create().await;
    let directory = std::env::temp_dir().join(format!("gravity-bff-stalled-stdout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).unwrap();
    let fifo = directory.join("stdout");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // Opened for reading (so the service can open it for writing), and never read.
    use std::os::unix::fs::OpenOptionsExt;
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let vars = [("LOG_LEVEL", "debug"), ("SHUTDOWN_GRACE_SECONDS", "1")];
    let mut service = crate::support::service::Launch {
        output: Some((fifo.clone(), directory.join("stderr"))),
        ..service_process::launch(&database, &vars)
    }
    .start()
    .await
    .unwrap();
    // Far more request lines than the pipe holds (64 KiB): the log writer blocks on stdout.
    let mut client = TcpStream::connect(("127.0.0.1", service.port)).await.unwrap();
    for _ in 0..1_000 {
        client.write_all(HEALTH).await.unwrap();
        read_one_answer(&mut client).await;
    }
    signal(service.pid(), "TERM");
    let status = service.wait_exit(Duration::from_secs(5)).await;
    assert!(
        status.is_some_and(|status| status.success()),
        "exits 0 within the grace and the second it gives stdout: {status:?}"
    );
    let stderr = std::fs::read_to_string(directory.join("stderr")).unwrap();
    assert!(stderr.contains("stdout took no request lines"), "{stderr}");
    let _ = std::fs::remove_dir_all(&directory);
}

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";

/// Reads one short answer (a /health) off a keep-alive connection.
async fn read_one_answer(client: &mut TcpStream) {
    let mut buffer = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buffer)).await;
    assert!(read.unwrap().unwrap() > 0, "answered");
}

#[tokio::test]
async fn a_patch_still_waiting_when_the_grace_runs_out_is_cancelled_told_nothing_was_written_and_never_commits() {
    a_write_still_waiting_when_the_grace_runs_out_is_cancelled(Method::PATCH).await;
}

#[tokio::test]
async fn a_delete_still_waiting_when_the_grace_runs_out_is_cancelled_told_nothing_was_written_and_never_commits() {
    a_write_still_waiting_when_the_grace_runs_out_is_cancelled(Method::DELETE).await;
}

/// A write waits on a row another session holds locked when the grace (1 s) runs out. Left
/// running in Postgres, it would commit once the lock is gone, after its client (seeing its
/// connection close) had sent the next write through another replica, and overwrite that one. So
/// the process has Postgres cancel it before it exits, and its client is told nothing was written.
async fn a_write_still_waiting_when_the_grace_runs_out_is_cancelled(method: Method) {
    let database = TestDatabase::create().await;
    let replica = service_process::on(&database, &[("SHUTDOWN_GRACE_SECONDS", "1")], None).await;
    let other = service_process::on(&database, &[], None).await;
    let (address, other_address) = (replica.url(), other.url());
    let (id, path) = create_and_cache(&address, &other_address).await;

    let locker = lock_rows(&database, &[&id]).await;
    let write = spawn_write(&address, &path, method.clone(), "from the stopping replica");
    wait_for_lock_waits(&database, 1).await;
    let finished = replica.stop_with("TERM").await;
    assert!(finished.status.success(), "exit 0: {:?}", finished.status);
    let problem = write.await.unwrap().problem(503);
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("nothing was written"), "{detail}");
    assert_eq!(
        lock_waits(&database).await,
        0,
        "no statement of the exited process still waits to commit"
    );

    // The client's next write, through another replica, stands.
    let next = spawn_write(&other_address, &path, Method::PATCH, "acknowledged after");
    wait_for_lock_waits(&database, 1).await;
    locker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(next.await.unwrap().status, 200);
    assert_eq!(name_in_database(&database, &id).await, "acknowledged after");
    assert_eq!(
        http_get_json(&other_address, &path).await.1["name"],
        "acknowledged after"
    );
}

/// A replica killed outright (SIGKILL: no drain) cannot end its writes. Postgres notices within a
/// second that such a write's client is gone, rather than running its statement on, to commit once
/// the row is free, perhaps after the client's next write through another replica.
#[tokio::test]
async fn a_write_waiting_when_its_replica_is_killed_is_ended_by_postgres_and_never_commits() {
    let database = TestDatabase::create().await;
    let replica = service_process::on(&database, &[], None).await;
    let address = replica.url();
    let (id, path) = create_and_cache(&address, &address).await;
    let locker = lock_rows(&database, &[&id]).await;
    let write = spawn_write(&address, &path, Method::PATCH, "from the killed replica");
    wait_for_lock_waits(&database, 1).await;
    let finished = replica.stop_with("KILL").await;
    assert!(!finished.status.success(), "{:?}", finished.status);
    write.abort();
    let noticed = eventually(Duration::from_secs(5), async || lock_waits(&database).await == 0).await;
    assert!(noticed, "Postgres still runs the statement of the killed replica");
    locker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(name_in_database(&database, &id).await, "before");
}

#[tokio::test]
async fn a_patch_postgres_cannot_be_asked_to_cancel_at_exit_is_never_contradicted_by_the_cache_when_it_commits_later() {
    a_write_left_running_at_exit_that_commits_later_is_never_contradicted(Method::PATCH).await;
}

#[tokio::test]
async fn a_delete_postgres_cannot_be_asked_to_cancel_at_exit_is_never_contradicted_by_the_cache_when_it_commits_later()
{
    a_write_left_running_at_exit_that_commits_later_is_never_contradicted(Method::DELETE).await;
}

#[tokio::test]
async fn a_stopping_replica_exits_only_once_a_write_that_ended_has_lifted_its_fence() {
    a_stopping_replica_lifts_the_fence_of_a_write_that_ends_at_exit(Client::Waiting).await;
}

#[tokio::test]
async fn a_stopping_replica_lifts_the_fence_of_a_write_whose_client_was_answered_at_its_deadline() {
    a_stopping_replica_lifts_the_fence_of_a_write_that_ends_at_exit(Client::AnsweredAtTheDeadline).await;
}

/// Whether the write's client is still waiting for its answer when the process is told to stop.
#[derive(PartialEq)]
enum Client {
    Waiting,
    /// Told "outcome unknown" at the request's deadline, with the write still running.
    AnsweredAtTheDeadline,
}

/// A PATCH's fence is raised and its statement held on its way to Postgres; then the path to
/// Redis stalls and the process is told to stop. The statement goes on and ends, and its fence's
/// lift finds Redis answering again only 800 ms later: past the half second the process gives
/// the answers of ended writes, within the lift's own two seconds. The process exits only once the
/// fence is lifted.
async fn a_stopping_replica_lifts_the_fence_of_a_write_that_ends_at_exit(client: Client) {
    let database = TestDatabase::create().await;
    let postgres = Proxy::start(database.services.pg_port).await;
    let redis = Proxy::start(database.services.redis_port).await;
    let (postgres_port, redis_port) = (postgres.port.to_string(), redis.port.to_string());
    let settings = [
        ("SHUTDOWN_GRACE_SECONDS", "0"),
        ("DB_PORT", postgres_port.as_str()),
        ("REDIS_PORT", redis_port.as_str()),
    ];
    let service = service_process::on(&database, &settings, None).await;
    let address = service.url();
    let (id, path) = create_and_cache(&address, &address).await;

    postgres.hold_request_containing(b"renamed at exit");
    let write = spawn_write(&address, &path, Method::PATCH, "renamed at exit");
    postgres.holding().await;
    if client == Client::AnsweredAtTheDeadline {
        let answer = write.await.unwrap();
        let detail = answer.problem(503)["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains("its outcome is unknown"), "{detail}");
    }
    redis.stall();
    signal(service.pid(), "TERM");
    tokio::time::sleep(Duration::from_millis(100)).await;
    postgres.release();
    tokio::time::sleep(Duration::from_millis(800)).await;
    redis.resume();
    let finished = service.wait().await;
    assert!(finished.status.success(), "exit 0: {:?}", finished.status);

    let key = format!("{}:user:{id}", database.name);
    let mut connection = redis::Client::open(database.services.redis_url())
        .and_then(|client| client.get_connection())
        .unwrap();
    let left: Option<String> = redis::cmd("GET").arg(&key).query(&mut connection).unwrap();
    assert_eq!(left, None, "the process exited before the write lifted its fence");
}

/// As above, but Postgres cannot be reached when the grace runs out (a path that forwards nothing
/// any more: no cancel gets through, nor the closing of the exiting process's connections, so
/// Postgres's own client check cannot end the statement), so the write cannot be cancelled: the
/// process waits 2 s for it, says so and exits. The statement still commits once the lock is gone,
/// after the exit. A replica started then must not serve the user as it was cached before.
async fn a_write_left_running_at_exit_that_commits_later_is_never_contradicted(method: Method) {
    let database = TestDatabase::create().await;
    let postgres = Proxy::start(database.services.pg_port).await;
    let proxied_port = postgres.port.to_string();
    let settings = [
        ("SHUTDOWN_GRACE_SECONDS", "1"),
        ("DB_PORT", proxied_port.as_str()),
        ("LOG_LEVEL", "warn"),
    ];
    let service = service_process::on(&database, &settings, None).await;
    let address = service.url();
    let (id, path) = create_and_cache(&address, &address).await;

    let locker = lock_rows(&database, &[&id]).await;
    let write = spawn_write(&address, &path, method.clone(), "committed after the exit");
    wait_for_lock_waits(&database, 1).await;
    postgres.stall();
    let finished = service.stop_with("TERM").await;
    assert!(finished.status.success(), "exit 0: {:?}", finished.status);
    assert_eq!(
        finished.event("postgres did not end every write still running; they may commit after the exit")["writes"],
        1
    );
    write.abort();
    // What keeps every replica from caching the old user until the statement commits: the fence
    // the write placed before it was sent, still there after the exit and living on.
    let key = format!("{}:user:{id}", database.name);
    let mut redis = redis::Client::open(database.services.redis_url())
        .and_then(|client| client.get_connection())
        .unwrap();
    let fence: Option<String> = redis::cmd("GET").arg(&key).query(&mut redis).unwrap();
    assert!(
        fence.as_deref().is_some_and(|value| value.starts_with("fence:")),
        "{fence:?}"
    );
    let lives_for: i64 = redis::cmd("PTTL").arg(&key).query(&mut redis).unwrap();
    assert!(lives_for > 3_000, "the fence outlives the commit: {lives_for} ms left");

    locker.batch_execute("COMMIT").await.unwrap();
    let committed = eventually(Duration::from_secs(5), async || {
        let row = database
            .client
            .query_opt("SELECT name FROM users WHERE id = $1::text::uuid", &[&id])
            .await
            .unwrap();
        match method {
            Method::PATCH => row.is_some_and(|row| row.get::<_, String>(0) == "committed after the exit"),
            _ => row.is_none(),
        }
    })
    .await;
    assert!(
        committed,
        "the statement Postgres could not be asked to cancel committed once the lock was gone"
    );

    let replica = service_process::on(&database, &[], None).await;
    for _ in 0..3 {
        let read = http_request(&replica.url(), Method::GET, &path, &[], b"").await;
        match method {
            Method::PATCH => assert_eq!(
                read.json()["name"],
                "committed after the exit",
                "{:?}",
                read.header("x-cache")
            ),
            _ => assert_eq!(
                read.status,
                404,
                "the deleted user was served ({:?})",
                read.header("x-cache")
            ),
        }
    }
}

/// Creates a user through `address` and has `reader` cache it; its id and path.
async fn create_and_cache(address: &str, reader: &str) -> (String, String) {
    let created = crate::helpers::http_post_json(address, "/v1/users", &serde_json::json!({"name": "before"})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/users/{id}");
    // A process serves once Postgres answers; its Redis connection may come a moment later.
    let cached = eventually(Duration::from_secs(5), async || {
        http_request(reader, Method::GET, &path, &[], b"")
            .await
            .header("x-cache")
            == Some("HIT")
    })
    .await;
    assert!(cached, "{path} is cached");
    (id, path)
}

/// Sends a PATCH (renaming the user `name`) or a DELETE in a task of its own.
fn spawn_write(address: &str, path: &str, method: Method, name: &str) -> JoinHandle<TestResponse> {
    let (address, path) = (address.to_owned(), path.to_owned());
    let body = serde_json::json!({ "name": name }).to_string();
    tokio::spawn(async move {
        let (headers, body): (&[(&str, &str)], &[u8]) = if method == Method::PATCH {
            (&[("content-type", "application/json")], body.as_bytes())
        } else {
            (&[], b"")
        };
        http_request(&address, method, &path, headers, body).await
    })
}

/// The user's name as Postgres has it.
async fn name_in_database(database: &TestDatabase, id: &str) -> String {
    let row = database
        .client
        .query_one("SELECT name FROM users WHERE id = $1::text::uuid", &[&id])
        .await
        .unwrap();
    row.get(0)
}
