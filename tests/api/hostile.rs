//! What attackers send, table by table: SQL in every field and parameter, NUL bytes and invalid
//! UTF-8, oversized and repetitive input, `Content-Length` lies and broken chunking, old and odd
//! HTTP, pipelining, forged cursors. Each gets a 4xx or a closed connection, never a 5xx, a hang
//! or a panic (faults.rs has the first few: 1 MB of headers, 10,000 parameters, deep arrays).

use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, spawn_app};

/// Longer than any timeout of the service (5 s for a body): past this, the request hangs.
const HANG: Duration = Duration::from_secs(9);

const SQL: [&str; 6] = [
    "' OR '1'='1",
    "'; DROP TABLE users; --",
    "\" OR \"\"=\"",
    "1; SELECT pg_sleep(5)",
    "admin'--",
    "%' UNION SELECT id, name, email, avatar_url, created_at, updated_at FROM users --",
];

/// What came back on a raw connection: every response's status, in order.
struct Exchange {
    statuses: Vec<u16>,
    text: String,
}

impl Exchange {
    /// A 4xx for every response, or no response at all (the service closed the connection).
    fn is_refused(&self) -> bool {
        self.statuses.iter().all(|status| (400..500).contains(status))
    }
}

/// Writes raw bytes and reads until the service closes the connection; panics on a hang. The
/// write side stays open: hyper drops a connection whose client half-closes mid-request.
async fn exchange(port: u16, request: &[u8]) -> Exchange {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let mut buffer = vec![0u8; 64 << 10];
    let started = Instant::now();
    loop {
        match tokio::time::timeout(HANG.saturating_sub(started.elapsed()), stream.read(&mut buffer)).await {
            Err(_) => panic!(
                "no answer and no close within {HANG:?}: {:?}",
                String::from_utf8_lossy(&request[..request.len().min(120)])
            ),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(read)) => answer.extend_from_slice(&buffer[..read]),
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let statuses = text
        .match_indices("HTTP/1.")
        .filter_map(|(at, _)| text.get(at + 9..at + 12)?.parse().ok())
        .collect();
    Exchange { statuses, text }
}

fn json_post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

async fn assert_refused(app: &TestApp, cases: &[(&str, Vec<u8>)]) {
    for (name, request) in cases {
        let answer = exchange(app.port, request).await;
        assert!(
            answer.is_refused(),
            "{name}: {:?}",
            &answer.text[..answer.text.len().min(300)]
        );
    }
    assert_eq!(app.get("/health").await.status, 200, "the service is still fine");
}

#[tokio::test]
async fn sql_in_every_field_and_parameter_is_only_ever_data() {
    let app = spawn_app().await;
    let target = app.create_user(json!({"name": "Target"})).await;
    let target_path = format!("/v1/users/{}", target["id"].as_str().unwrap());
    let started = Instant::now();
    for sql in SQL {
        // A name takes any text: it must be stored exactly as sent.
        let created = app.create_user(json!({ "name": sql })).await;
        assert_eq!(created["name"], sql);
        let stored: String = app
            .database
            .client
            .query_one(
                "SELECT name FROM users WHERE id = $1::text::uuid",
                &[&created["id"].as_str().unwrap()],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(stored, sql);
        for (field, value) in [
            ("email", json!(sql)),
            ("email", json!(format!("{sql}@example.org"))),
            ("avatar_url", json!(sql)),
            ("avatar_url", json!(format!("https://example.org/?q={sql}"))),
        ] {
            let status = app
                .post_json("/v1/users", &json!({"name": "x", field: value}))
                .await
                .status;
            assert!(
                matches!(status.as_u16(), 201 | 409 | 422),
                "POST {field}={value}: {status}"
            );
            let status = app.patch_json(&target_path, &json!({ field: value })).await.status;
            assert!(
                matches!(status.as_u16(), 200 | 409 | 422),
                "PATCH {field}={value}: {status}"
            );
        }
        let encoded = percent_encode(sql);
        for path in [
            format!("/v1/users/{encoded}"),
            format!("/v1/users?limit={encoded}"),
            format!("/v1/users?cursor={encoded}"),
            format!("/v1/users?{encoded}=1"),
        ] {
            app.get(&path).await.problem(400);
            let deleted = app.delete(&path).await.status;
            assert!(deleted.is_client_error(), "DELETE {path}: {deleted}");
        }
        let echoed = app
            .request(Method::GET, "/health", &[("x-request-id", sql)], Vec::new())
            .await;
        assert_eq!(echoed.status, 200);
        assert_ne!(
            echoed.header("x-request-id"),
            Some(sql),
            "an unsafe request id is replaced"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no statement slept: {:?}",
        started.elapsed()
    );
    let users: i64 = app
        .database
        .client
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert!(users > SQL.len() as i64, "the table is still there and holds the users");
    assert_eq!(app.get(&target_path).await.status, 200);
}

#[tokio::test]
async fn nul_bytes_and_invalid_utf8_get_a_4xx() {
    let app = spawn_app().await;
    for field in ["name", "email", "avatar_url"] {
        let body = json!({"name": "Ada", field: format!("https://a\u{0}@b.example/")});
        let response = app.post_json("/v1/users", &body).await;
        assert_eq!(response.problem(422)["errors"][0]["field"], field);
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "raw NUL inside a JSON string",
            json_post("/v1/users", b"{\"name\":\"a\x00b\"}"),
        ),
        (
            "invalid UTF-8 inside a JSON string",
            json_post("/v1/users", b"{\"name\":\"\xff\xfe\"}"),
        ),
        (
            "a lone surrogate escape",
            json_post("/v1/users", br#"{"name":"\ud800"}"#),
        ),
        (
            "UTF-16 body",
            json_post("/v1/users", b"\xff\xfe{\x00\"\x00n\x00\"\x00:\x001\x00}\x00"),
        ),
        (
            "percent-encoded NUL in the id",
            b"GET /v1/users/%00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "raw NUL in the path",
            b"GET /he\x00alth HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "raw NUL in the query",
            b"GET /v1/users?limit=1\x00 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "invalid UTF-8 in the query",
            b"GET /v1/users?limit=\xff HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "NUL in a header value",
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\x00b\r\n\r\n".to_vec(),
        ),
        (
            "NUL in a header name",
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-\x00: a\r\n\r\n".to_vec(),
        ),
    ];
    assert_refused(&app, &cases).await;
    // Bytes that are not UTF-8 in a request id are legal header bytes: the id is replaced.
    let answer = exchange(
        app.port,
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Request-Id: \xff\xfe\r\n\r\n",
    )
    .await;
    assert_eq!(answer.statuses, vec![200]);
}

#[tokio::test]
async fn oversized_deep_repeated_and_huge_input_gets_a_4xx() {
    let app = spawn_app().await;
    let many_headers: String = (0..500).map(|number| format!("X-Header-{number}: v\r\n")).collect();
    let deep_object = format!("{}1{}", "{\"a\":".repeat(5_000), "}".repeat(5_000));
    let deep_in_a_field = format!("{{\"name\":{}{}}}", "[".repeat(200), "]".repeat(200));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "500 headers",
            format!("GET /health HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n").into_bytes(),
        ),
        (
            "a 200 KB path",
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(200_000)).into_bytes(),
        ),
        (
            "a 100 KB id",
            format!(
                "GET /v1/users/{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                "9".repeat(100_000)
            )
            .into_bytes(),
        ),
        ("5,000 nested objects", json_post("/v1/users", deep_object.as_bytes())),
        (
            "200 nested arrays in a field",
            json_post("/v1/users", deep_in_a_field.as_bytes()),
        ),
        (
            "duplicate keys",
            json_post("/v1/users", br#"{"name":"a","email":null,"name":"b"}"#),
        ),
        (
            "duplicate keys, one escaped",
            json_post("/v1/users", br#"{"name":"a","n\u0061me":"b"}"#),
        ),
        ("a number past f64", json_post("/v1/users", br#"{"name":1e999999}"#)),
        (
            "a 10,000-digit number",
            json_post("/v1/users", format!("{{\"name\":{}}}", "9".repeat(10_000)).as_bytes()),
        ),
        (
            "a limit past u64",
            b"GET /v1/users?limit=184467440737095516160 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "a negative limit",
            b"GET /v1/users?limit=-1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "1,000 cursors",
            format!(
                "GET /v1/users?{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                vec!["cursor=0"; 1_000].join("&")
            )
            .into_bytes(),
        ),
    ];
    assert_refused(&app, &cases).await;
    for (name, value) in [
        ("a huge integer", json!(123_456_789_012_345_678_901_234_567_890_f64)),
        ("a negative zero", json!(-0.0)),
        ("an object", json!({"$gt": ""})),
        ("an array", json!(["a", "b"])),
        ("true", json!(true)),
    ] {
        for field in ["name", "email", "avatar_url"] {
            let response = app
                .post_json("/v1/users", &json!({"name": "x", field: value.clone()}))
                .await;
            assert_eq!(response.status, 422, "{name} as {field}");
        }
    }
    let users: i64 = app
        .database
        .client
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 0, "nothing hostile was stored");
}

#[tokio::test]
async fn content_length_lies_and_broken_chunking_get_a_4xx_or_a_close() {
    let app = spawn_app().await;
    let head = "POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "shorter than the body",
            format!("{head}Content-Length: 5\r\n\r\n{{\"name\":\"Ada\"}}").into_bytes(),
        ),
        (
            "two lengths",
            format!("{head}Content-Length: 5\r\nContent-Length: 6\r\n\r\n{{\"a\":1}}").into_bytes(),
        ),
        (
            "a negative length",
            format!("{head}Content-Length: -1\r\n\r\n{{}}").into_bytes(),
        ),
        (
            "a length that is not a number",
            format!("{head}Content-Length: 12abc\r\n\r\n{{}}").into_bytes(),
        ),
        (
            "a length past u64",
            format!("{head}Content-Length: 99999999999999999999999\r\n\r\n{{}}").into_bytes(),
        ),
        (
            "length and chunked",
            format!("{head}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").into_bytes(),
        ),
        (
            "a chunk size past u64",
            format!("{head}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n").into_bytes(),
        ),
        (
            "a chunk size that is not hex",
            format!("{head}Transfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n").into_bytes(),
        ),
        (
            "a chunk longer than its size",
            format!("{head}Transfer-Encoding: chunked\r\n\r\n2\r\n{{\"name\":\"Ada\"}}\r\n0\r\n\r\n").into_bytes(),
        ),
        (
            "an unknown transfer coding",
            format!("{head}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n").into_bytes(),
        ),
        ("chunked past the limit in 1-byte chunks", {
            let mut request = format!("{head}Transfer-Encoding: chunked\r\n\r\n").into_bytes();
            for _ in 0..70_000 {
                request.extend_from_slice(b"1\r\n \r\n");
            }
            request.extend_from_slice(b"0\r\n\r\n");
            request
        }),
    ];
    assert_refused(&app, &cases).await;

    // Promising more than is sent and then going quiet: the body timeout answers 408.
    let started = Instant::now();
    let answer = exchange(
        app.port,
        format!("{head}Content-Length: 100\r\n\r\n{{\"name\":").as_bytes(),
    )
    .await;
    assert_eq!(answer.statuses, vec![408], "{}", answer.text);
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    let users: i64 = app
        .database
        .client
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 0);
}

#[tokio::test]
async fn old_odd_and_pipelined_http_is_answered_or_refused() {
    let app = spawn_app().await;
    let refused: Vec<(&str, Vec<u8>)> = vec![
        ("HTTP/0.9", b"GET /health\r\n\r\n".to_vec()),
        (
            "HTTP/2 over HTTP/1",
            b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(),
        ),
        ("the HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()),
        ("HTTP/1.2", b"GET /health HTTP/1.2\r\nHost: x\r\n\r\n".to_vec()),
        (
            "a folded header",
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n".to_vec(),
        ),
        (
            "a space before the colon",
            b"GET /health HTTP/1.1\r\nHost : x\r\n\r\n".to_vec(),
        ),
        (
            "OPTIONS *",
            b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "CONNECT",
            b"CONNECT 127.0.0.1:5432 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "a lower-case method",
            b"get /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "a traversal",
            b"GET /v1/users/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "TRACE",
            b"TRACE /v1/users HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
    ];
    assert_refused(&app, &refused).await;
    // Tolerated by the parser, so answered like any request; what matters is no 5xx and no hang.
    for request in [
        &b"GET /health HTTP/1.1\nHost: x\nConnection: close\n\n"[..],
        b"GET http://elsewhere.example/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
    ] {
        let answer = exchange(app.port, request).await;
        assert!(answer.statuses.iter().all(|status| *status < 500), "{}", answer.text);
    }

    // HTTP/1.0, with and without keep-alive, is still HTTP: it gets its answer.
    for request in [
        &b"GET /health HTTP/1.0\r\n\r\n"[..],
        b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /ready HTTP/1.0\r\n\r\n",
    ] {
        let answer = exchange(app.port, request).await;
        assert!(
            !answer.statuses.is_empty() && answer.statuses.iter().all(|status| *status == 200),
            "{}",
            answer.text
        );
    }

    // 50 requests in one write are answered in order; a POST with a body in the middle too.
    let mut pipelined = Vec::new();
    for number in 0..50 {
        if number == 25 {
            let body = br#"{"name":"pipelined"}"#;
            pipelined.extend_from_slice(
                format!(
                    "POST /v1/users HTTP/1.1\r\nHost: x\r\nX-Request-Id: p-{number}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            pipelined.extend_from_slice(body);
        } else {
            let close = if number == 49 { "Connection: close\r\n" } else { "" };
            pipelined.extend_from_slice(
                format!("GET /v1/users?limit=1 HTTP/1.1\r\nHost: x\r\nX-Request-Id: p-{number}\r\n{close}\r\n")
                    .as_bytes(),
            );
        }
    }
    let answer = exchange(app.port, &pipelined).await;
    assert_eq!(answer.statuses.len(), 50, "{}", answer.text);
    assert_eq!(answer.statuses[25], 201);
    let ids: Vec<&str> = answer
        .text
        .lines()
        .filter_map(|line| line.strip_prefix("x-request-id: "))
        .collect();
    let expected: Vec<String> = (0..50).map(|number| format!("p-{number}")).collect();
    assert_eq!(ids, expected, "answered in order");
}

#[tokio::test]
async fn forged_cursors_name_positions_and_never_fail_with_a_5xx() {
    let app = spawn_app().await;
    for number in 0..3 {
        app.create_user(json!({ "name": format!("user {number}") })).await;
    }
    let id = "5b6c1f0e9a7d4c3b8e210f4d6a7b8c9d";
    for (time, expected_items) in [
        ("7fffffffffffffff", 3), // past year 9999: every user comes before it
        ("0fffffffffffffff", 3), // year 36,000-odd
        ("8000000000000000", 0), // before the earliest time Postgres holds
        ("fc8275fb32313400", 0), // about 6000 BC: the `time` crate has it, Postgres does not
        ("0000000000000000", 0), // 1970, before any user here was made
    ] {
        let response = app.get(&format!("/v1/users?cursor={time}{id}")).await;
        assert_eq!(
            response.status,
            200,
            "{time}: {}",
            String::from_utf8_lossy(&response.body)
        );
        let page = response.json();
        assert_eq!(page["items"].as_array().unwrap().len(), expected_items, "{time}");
        assert_eq!(page["next_cursor"], Value::Null);
    }
}

#[tokio::test]
async fn an_email_that_lower_casing_lengthens_past_255_characters_is_a_422() {
    let app = spawn_app().await;
    let email = format!("{}@{}", "İ".repeat(200), "x".repeat(54));
    let response = app.post_json("/v1/users", &json!({"name": "x", "email": email})).await;
    assert_eq!(response.problem(422)["errors"][0]["field"], "email");
    let user = app.create_user(json!({"name": "x"})).await;
    let path = format!("/v1/users/{}", user["id"].as_str().unwrap());
    app.patch_json(&path, &json!({ "email": email })).await.problem(422);
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}
