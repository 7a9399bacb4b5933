//! NUL bytes, invalid UTF-8, and input that is too big, too deep, repeated or out of range.

use serde_json::json;

use super::{assert_refused, exchange, json_post, target};

#[tokio::test]
async fn nul_bytes_and_invalid_utf8_get_a_4xx() {
    let app = target().await;
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
    let app = target().await;
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
    let users = crate::users_create::count_users(&app).await;
    assert_eq!(users, 0, "nothing hostile was stored");
}
