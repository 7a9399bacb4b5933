//! Faults: Redis absent, dying, hanging; Postgres gone and back; backends killed; slow and
//! hostile clients.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{OwnRedis, eventually, free_port, signal, spawn_app_with};
use crate::support::http;
use crate::support::proxy::Proxy;

#[tokio::test]
async fn without_redis_reads_succeed_from_postgres_and_changes_are_refused_with_nothing_written() {
    let nobody = free_port();
    let app = spawn_app_with(|config| config.cache.redis.as_mut().unwrap().port = nobody).await;
    let created = app.create_user(json!({"name": "Ada"})).await;
    let path = format!("/v1/users/{}", created["id"].as_str().unwrap());
    for _ in 0..5 {
        let response = app.get(&path).await;
        assert_eq!(response.status, 200);
        assert_eq!(response.header("x-cache"), Some("MISS"));
    }
    // Other replicas may still read the cache; without Redis none of them could be warned.
    for refused in [
        app.patch_json(&path, &json!({"name": "Ada K"})).await,
        app.delete(&path).await,
    ] {
        let detail = refused.problem(503)["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains("nothing was written"), "{detail}");
        assert_eq!(refused.header("retry-after"), Some("1"));
    }
    assert_eq!(app.get(&path).await.json()["name"], "Ada", "nothing was written");
    let ready = app.get("/ready").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["redis"], "down");
    let metrics = String::from_utf8(app.get("/metrics").await.body.to_vec()).unwrap();
    let errors = crate::support::metric_value(&metrics, "gravity_cache_errors_total");
    assert!(
        errors.is_some_and(|errors| errors > 0.0),
        "errors are counted:\n{metrics}"
    );
}

#[tokio::test]
async fn reads_survive_redis_dying_and_hits_resume_when_it_returns() {
    let port = free_port();
    let mut redis = OwnRedis::start_on(port);
    let app = spawn_app_with(|config| config.cache.redis.as_mut().unwrap().port = port).await;
    let created = app.create_user(json!({"name": "Ada"})).await;
    let path = format!("/v1/users/{}", created["id"].as_str().unwrap());
    app.get(&path).await;
    assert_eq!(app.get(&path).await.header("x-cache"), Some("HIT"));

    redis.kill();
    for _ in 0..20 {
        let response = app.get(&path).await;
        assert_eq!(response.status, 200);
        assert_eq!(response.json()["name"], "Ada");
    }

    let _redis = OwnRedis::start_on(port);
    let resumed = eventually(Duration::from_secs(5), async || {
        app.get(&path).await.header("x-cache") == Some("HIT")
    })
    .await;
    assert!(resumed, "hits resume without a restart");
}

#[tokio::test]
async fn a_hanging_redis_costs_at_most_a_short_wait() {
    let port = free_port();
    let redis = OwnRedis::start_on(port);
    let app = spawn_app_with(|config| config.cache.redis.as_mut().unwrap().port = port).await;
    let created = app.create_user(json!({"name": "Ada"})).await;
    let path = format!("/v1/users/{}", created["id"].as_str().unwrap());
    app.get(&path).await;

    signal(redis.pid(), "STOP");
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(app.get(&path).await.status, 200);
    }
    let elapsed = started.elapsed();
    signal(redis.pid(), "CONT");
    // 20 reads would take 20 × the cache timeout if each waited; the breaker makes it about one.
    assert!(elapsed < Duration::from_secs(1), "20 reads took {elapsed:?}");
}

#[tokio::test]
async fn postgres_gone_means_503_and_the_service_recovers_by_itself() {
    let database_port = crate::helpers::Services::from_env().pg_port;
    let proxy = Proxy::start(database_port).await;
    let app = spawn_app_with(|config| {
        config.database.port = proxy.port;
        config.cache.redis = None;
    })
    .await;
    let created = app.create_user(json!({"name": "Ada"})).await;
    let path = format!("/v1/users/{}", created["id"].as_str().unwrap());

    proxy.cut();
    let started = Instant::now();
    let response = app.get(&path).await;
    response.problem(503);
    assert_eq!(response.header("retry-after"), Some("1"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "no hang: {:?}",
        started.elapsed()
    );
    app.post_json("/v1/users", &json!({"name": "Lost"})).await.problem(503);
    assert_eq!(app.get("/ready").await.problem(503)["postgres"], "down");
    assert_eq!(
        app.get("/health").await.status,
        200,
        "liveness does not depend on Postgres"
    );

    proxy.restore();
    let back = Instant::now();
    let recovered = eventually(Duration::from_secs(2), async || app.get(&path).await.status == 200).await;
    assert!(recovered, "success resumes within 2 s; waited {:?}", back.elapsed());
    assert_eq!(app.get("/ready").await.status, 200);
}

#[tokio::test]
async fn killed_backends_are_replaced_before_the_next_request() {
    let app = spawn_app_with(|config| config.cache.redis = None).await;
    let created = app.create_user(json!({"name": "Ada"})).await;
    let path = format!("/v1/users/{}", created["id"].as_str().unwrap());
    let killed: i64 = app
        .database
        .client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'gravity-bff'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(killed >= 1);
    for _ in 0..10 {
        assert_eq!(app.get(&path).await.status, 200);
    }
    assert_eq!(app.get("/v1/users").await.status, 200);
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_dropped_and_others_are_served() {
    let app = spawn_app_with(|_| {}).await;
    let mut slow = http::connect(app.port).await;
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    assert_eq!(app.get("/health").await.status, 200, "others are served meanwhile");
    let mut buffer = [0u8; 256];
    let started = Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(8), slow.read(&mut buffer)).await;
    let elapsed = started.elapsed();
    match read {
        Ok(Ok(_)) | Ok(Err(_)) => {}
        Err(_) => panic!("the slow client was not dropped within 8 s"),
    }
    assert!(
        elapsed >= Duration::from_secs(3),
        "dropped after the header timeout, not before: {elapsed:?}"
    );
}

/// Sends `GET /health` on `stream` and reads its whole answer (it has a `Content-Length`).
async fn health_on(stream: &mut tokio::net::TcpStream) -> String {
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        assert!(
            read > 0,
            "closed before answering: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|value| value.parse().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return text.into_owned();
            }
        }
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_outlives_the_head_timeout_and_serves_its_next_request() {
    let app = spawn_app_with(|_| {}).await;
    let mut client = http::connect(app.port).await;
    assert!(health_on(&mut client).await.starts_with("HTTP/1.1 200"));
    // Longer than the 5 s a head may take: a proxy's pooled connection, idle between requests.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(health_on(&mut client).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_keep_alive_seconds() {
    let app = spawn_app_with(|config| config.keep_alive = Duration::from_secs(1)).await;
    let mut client = http::connect(app.port).await;
    assert!(health_on(&mut client).await.starts_with("HTTP/1.1 200"));
    let idle_from = Instant::now();
    let closed = http::read_until_closed(&mut client, Duration::from_secs(4)).await;
    let idle = idle_from.elapsed();
    assert_eq!(closed, Ok(Vec::new()), "closed without a word");
    assert!(
        idle >= Duration::from_millis(900),
        "closed after its idle time, not before: {idle:?}"
    );
}

#[tokio::test]
async fn a_head_trickled_on_a_keep_alive_connection_is_dropped_after_the_head_timeout() {
    let app = spawn_app_with(|_| {}).await;
    let mut slow = http::connect(app.port).await;
    assert!(health_on(&mut slow).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    let closed = http::read_until_closed(&mut slow, Duration::from_secs(8)).await;
    let elapsed = started.elapsed();
    assert!(closed.is_ok(), "the slow head was not dropped within 8 s");
    assert!(
        elapsed >= Duration::from_secs(4),
        "dropped after the header timeout from its first byte, not before: {elapsed:?}"
    );
}

#[tokio::test]
async fn hostile_requests_get_a_4xx_or_a_closed_connection_never_a_5xx() {
    let app = spawn_app_with(|_| {}).await;
    let huge_header = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let many_params = format!(
        "GET /v1/users?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        vec!["a=1"; 10_000].join("&")
    );
    let nested = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let deep_body = format!(
        "POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{nested}",
        nested.len()
    );
    // Each with the status it gets; the two sent whole past the 16 KiB head buffer may find the
    // connection reset before their answer is read, as the client is still sending.
    let requests: Vec<(Vec<u8>, u16)> = vec![
        (huge_header.into_bytes(), 431),
        (many_params.into_bytes(), 431),
        (deep_body.into_bytes(), 400),
        (b"GET /v1/users/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        (
            b"POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"name\":\"a\0\"}"
                .to_vec(),
            400,
        ),
        (
            b"POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 999999999999\r\n\r\n{}".to_vec(),
            413,
        ),
        (b"GARBAGE\r\n\r\n".to_vec(), 400),
        (b"GET /health HTTP/1.0\r\n\r\n".to_vec(), 200),
        (b"GET /v1/users?limit=1'%20OR%20'1'='1 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
    ];
    for (request, expected) in requests {
        let answer = raw_exchange(app.port, &request).await;
        let status = http::status_of(&answer);
        let may_be_cut = request.len() > 16 << 10 && expected == 431;
        assert!(
            status == Some(expected) || (may_be_cut && answer.is_empty()),
            "{:?} → {:?}, not {expected}",
            String::from_utf8_lossy(&request[..request.len().min(80)]),
            &answer[..answer.len().min(120)]
        );
    }
    let pipelined =
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(app.port, pipelined).await;
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer}");
    assert_eq!(app.get("/health").await.status, 200, "the server is still fine");
}

/// Sends raw bytes, half-closes, and returns what came back (empty if the server closed).
pub async fn raw_exchange(port: u16, request: &[u8]) -> String {
    let mut stream = http::connect(port).await;
    let _ = stream.write_all(request).await;
    let _ = stream.shutdown().await;
    let answer = http::read_until_closed(&mut stream, Duration::from_secs(10)).await;
    String::from_utf8_lossy(&answer.unwrap_or_else(|so_far| so_far)).into_owned()
}

/// POSTs a body with chunked transfer encoding (no Content-Length) and returns the answer.
pub async fn raw_chunked_post(port: u16, path: &str, body: &[u8]) -> String {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(8192) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    raw_exchange(port, &request).await
}
