//! The framing of requests: `Content-Length` lies, broken chunking, old and odd HTTP, pipelining.

use std::time::{Duration, Instant};

use super::target;
use super::{assert_refused, exchange};

#[tokio::test]
async fn content_length_lies_and_broken_chunking_get_a_4xx_or_a_close() {
    let app = target().await;
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
    let users = crate::users_create::count_users(&app).await;
    assert_eq!(users, 0);
}

#[tokio::test]
async fn a_request_without_one_valid_host_gets_400_and_runs_nothing() {
    let app = target().await;
    let body = br#"{"name":"Hostless"}"#;
    let post = |host: &str| {
        let head = format!(
            "POST /v1/users HTTP/1.1\r\n{host}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        [head.as_bytes(), body].concat()
    };
    let cases = [
        ("HTTP/1.1 without Host", post("")),
        ("two Host lines", post("Host: x\r\nHost: y\r\n")),
        ("a Host that is no host", post("Host: a b\r\n")),
        (
            "a GET without Host",
            b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec(),
        ),
    ];
    for (name, request) in cases {
        let answer = exchange(app.port, &request).await;
        assert_eq!(answer.statuses, vec![400], "{name}: {}", answer.text);
        assert!(
            answer.text.contains("application/problem+json") && answer.text.contains("x-request-id"),
            "{name}: a problem body and a request id, as any 400: {}",
            answer.text
        );
    }
    assert_eq!(crate::users_create::count_users(&app).await, 0, "no create ran");
    let named = exchange(app.port, &post("Host: api.example.com:8080\r\n")).await;
    assert_eq!(named.statuses, vec![201], "{}", named.text);
}

#[tokio::test]
async fn old_odd_and_pipelined_http_is_answered_or_refused() {
    let app = target().await;
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
