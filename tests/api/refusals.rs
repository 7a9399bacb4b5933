//! Requests refused before routing: those hyper answers itself (a malformed or oversized head),
//! with the metric and the request line the service still records for each, and a request target
//! over 8 KiB, which the service answers itself.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestDatabase, eventually};
use crate::hostile::exchange;
use crate::service_process::{self, Service};

#[tokio::test]
async fn requests_refused_before_routing_are_counted_and_logged_with_their_status() {
    let database = TestDatabase::create().await;
    let service = service_process::on(&database, &[("LOG_LEVEL", "info")], None).await;
    let post = "POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
    let many_headers: String = (0..101).map(|number| format!("X-{number}: y\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "a folded header",
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n".to_vec(),
            400,
            "invalid HTTP header parsed",
        ),
        (
            "two different Content-Lengths",
            format!("{post}Content-Length: 5\r\nContent-Length: 6\r\n\r\n{{\"a\":1}}").into_bytes(),
            400,
            "invalid content-length parsed",
        ),
        (
            "a Transfer-Encoding whose last coding is not chunked",
            format!("{post}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n").into_bytes(),
            400,
            "invalid transfer-encoding parsed",
        ),
        (
            "Transfer-Encoding in HTTP/1.0",
            b"POST /v1/users HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            400,
            "unexpected transfer-encoding parsed",
        ),
        (
            "a method with a parenthesis",
            b"G(T /health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
            "invalid HTTP method parsed",
        ),
        (
            "HTTP/1.2",
            b"GET /health HTTP/1.2\r\nHost: x\r\n\r\n".to_vec(),
            400,
            "invalid HTTP version parsed",
        ),
        (
            "a target of 40,000 bytes: over the 16 KiB buffer twice over",
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(40_000)).into_bytes(),
            431,
            "message head is too large",
        ),
        (
            "101 headers",
            format!("GET /health HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n").into_bytes(),
            431,
            "message head is too large",
        ),
        (
            "a header of 40 KB",
            format!(
                "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "b".repeat(40_000)
            )
            .into_bytes(),
            431,
            "message head is too large",
        ),
    ];

    for (name, request, status, _) in &cases {
        let answer = exchange(service.port, request).await;
        assert_eq!(answer.statuses, vec![*status], "{name}: {}", answer.text);
        // What hyper allows: its own empty answer, which closes the connection.
        let head = answer.text.to_ascii_lowercase();
        assert!(head.contains("content-length: 0\r\n"), "{name}: {head}");
        assert!(head.contains("connection: close\r\n"), "{name}: {head}");
        assert!(!head.contains("x-request-id"), "{name}: {head}");
    }
    // The HTTP/2 preface is closed without an answer, so it is no request and is not counted.
    let preface = exchange(service.port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    assert!(preface.statuses.is_empty(), "{}", preface.text);

    // A refusal is recorded when hyper hands its connection's error back, which is after the
    // client has read the answer and the close: under load, a moment after `exchange` returns.
    for status in [400, 431] {
        let expected = cases.iter().filter(|case| case.2 == status).count() as f64;
        let series = format!("gravity_http_requests_total{{method=\"OTHER\",route=\"unmatched\",status=\"{status}\"}}");
        let counted = eventually(Duration::from_secs(5), async || {
            service.metric(&series).await == expected
        })
        .await;
        assert!(
            counted,
            "{series}: {} counted, {expected} expected",
            service.metric(&series).await
        );
    }
    let logged = eventually(Duration::from_secs(5), async || {
        unmatched_lines(&service).len() >= cases.len()
    })
    .await;
    assert!(logged, "{:?}", unmatched_lines(&service));
    // One line per case; connections end in any order under load, so their lines may too.
    let lines = unmatched_lines(&service);
    let mut logged: Vec<(u64, String)> = lines
        .iter()
        .map(|line| {
            assert_eq!(line["http.request.method"], "-", "{line}");
            assert_eq!(line["http.request.id"], "", "{line}");
            let status = line["http.response.status_code"].as_u64().unwrap_or_default();
            (status, line["error.message"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    let mut expected: Vec<(u64, String)> = cases
        .iter()
        .map(|(_, _, status, reason)| (u64::from(*status), (*reason).to_owned()))
        .collect();
    logged.sort();
    expected.sort();
    assert_eq!(logged, expected, "{lines:?}");
    assert_eq!(service.get("/health").await.status, 200, "the service is still fine");
}

#[tokio::test]
async fn a_target_over_8_kib_is_a_414_problem_from_the_service() {
    let database = TestDatabase::create().await;
    let service = service_process::on(&database, &[("LOG_LEVEL", "info")], None).await;
    let at_limit = format!("/v1/users?cursor={}", "a".repeat(8192 - "/v1/users?cursor=".len()));
    let over = format!("{at_limit}b");
    let request =
        |target: &str| format!("GET {target} HTTP/1.1\r\nHost: x\r\nX-Request-Id: long-1\r\nConnection: close\r\n\r\n");

    let answer = exchange(service.port, request(&at_limit).as_bytes()).await;
    assert_eq!(
        answer.statuses,
        vec![400],
        "8,192 bytes are read (and the cursor refused)"
    );
    let answer = exchange(service.port, request(&over).as_bytes()).await;
    assert_eq!(answer.statuses, vec![414], "{}", answer.text);
    assert!(
        answer.text.contains("content-type: application/problem+json"),
        "{}",
        answer.text
    );
    assert!(answer.text.contains("x-request-id: long-1"), "{}", answer.text);
    assert!(answer.text.contains(r#""status":414"#), "{}", answer.text);

    let series = r#"gravity_http_requests_total{method="GET",route="unmatched",status="414"}"#;
    assert_eq!(service.metric(series).await, 1.0);
    let logged = eventually(Duration::from_secs(5), async || !unmatched_lines(&service).is_empty()).await;
    assert!(logged);
    let line = &unmatched_lines(&service)[0];
    assert_eq!(
        (
            line["http.response.status_code"].as_u64(),
            line["http.request.id"].as_str()
        ),
        (Some(414), Some("long-1"))
    );
}

#[tokio::test]
async fn a_refused_request_lasts_from_its_heads_first_byte_not_from_the_idle_time_before_it() {
    let database = TestDatabase::create().await;
    let service = service_process::on(&database, &[("LOG_LEVEL", "info")], None).await;
    let mut client = TcpStream::connect(("127.0.0.1", service.port)).await.unwrap();
    client
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0; 1024];
    let read = client.read(&mut answer).await.unwrap();
    assert!(answer[..read].starts_with(b"HTTP/1.1 200"));

    // Idle on the keep-alive connection, then a malformed head.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    client
        .write_all(b"G(T /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let read = client.read(&mut answer).await.unwrap();
    assert!(answer[..read].starts_with(b"HTTP/1.1 400"));

    let logged = eventually(Duration::from_secs(5), async || !unmatched_lines(&service).is_empty()).await;
    assert!(logged);
    let nanoseconds = unmatched_lines(&service)[0]["event.duration"].as_u64().unwrap();
    assert!(
        Duration::from_nanos(nanoseconds) < Duration::from_millis(500),
        "a head refused as it arrived, logged as lasting {nanoseconds} ns"
    );
}

fn unmatched_lines(service: &Service) -> Vec<serde_json::Value> {
    service
        .request_lines()
        .into_iter()
        .filter(|line| line["http.route"] == "unmatched")
        .collect()
}
