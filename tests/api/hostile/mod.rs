//! What attackers send, table by table. Each gets a 4xx or a closed connection, never a 5xx, a
//! hang or a panic (faults.rs has the first few: 1 MB of headers, 10,000 parameters, deep arrays).
//! - this module: SQL in every field and parameter, forged cursors, emails that lengthen;
//! - [`encoding`]: NUL bytes, invalid UTF-8, oversized, deep, duplicate and huge input;
//! - [`framing`]: `Content-Length` lies, broken chunking, old and odd HTTP, pipelining.

mod encoding;
mod framing;

use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::helpers::{TestApp, spawn_app_with};
use crate::support::http;

/// Longer than any timeout of the service (5 s for a body, then `IDLE_CLOSE`): past this, the
/// request hangs.
const HANG: Duration = Duration::from_secs(9);
/// The targets' `KEEP_ALIVE_SECONDS`: short, so that `exchange` sees the connection close soon
/// after the last answer of a keep-alive exchange.
const IDLE_CLOSE: Duration = Duration::from_secs(2);

/// A service to attack, closing idle keep-alive connections after `IDLE_CLOSE`.
pub async fn target() -> TestApp {
    spawn_app_with(|config| config.keep_alive = IDLE_CLOSE).await
}

const SQL: [&str; 6] = [
    "' OR '1'='1",
    "'; DROP TABLE users; --",
    "\" OR \"\"=\"",
    "1; SELECT pg_sleep(5)",
    "admin'--",
    "%' UNION SELECT id, name, email, avatar_url, created_at, updated_at FROM users --",
];

/// What came back on a raw connection: every response's status, in order.
pub struct Exchange {
    pub statuses: Vec<u16>,
    pub text: String,
}

impl Exchange {
    /// A 4xx for every response, or no response at all (the service closed the connection).
    pub fn is_refused(&self) -> bool {
        self.statuses.iter().all(|status| (400..500).contains(status))
    }
}

/// Writes raw bytes and reads until the service closes the connection; panics on a hang. The
/// write side stays open: hyper drops a connection whose client half-closes mid-request.
pub async fn exchange(port: u16, request: &[u8]) -> Exchange {
    let mut stream = http::connect(port).await;
    let _ = stream.write_all(request).await;
    let answer = http::read_until_closed(&mut stream, HANG).await.unwrap_or_else(|_| {
        panic!(
            "no answer and no close within {HANG:?}: {:?}",
            String::from_utf8_lossy(&request[..request.len().min(120)])
        )
    });
    let text = String::from_utf8_lossy(&answer).into_owned();
    let statuses = text
        .match_indices("HTTP/1.")
        .filter_map(|(at, _)| http::status_of(&text[at..]))
        .collect();
    Exchange { statuses, text }
}

pub fn json_post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

pub async fn assert_refused(app: &TestApp, cases: &[(&str, Vec<u8>)]) {
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
    let app = target().await;
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
    let users = crate::users_create::count_users(&app).await;
    assert!(users > SQL.len() as i64, "the table is still there and holds the users");
    assert_eq!(app.get(&target_path).await.status, 200);
}

#[tokio::test]
async fn forged_cursors_name_positions_and_never_fail_with_a_5xx() {
    let app = target().await;
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
    let app = target().await;
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
