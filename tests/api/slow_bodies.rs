//! Bodies that arrive slowly: a pause of 5 s between two chunks, or a whole body taking over 8 s,
//! gets 408; a body that keeps coming within those is read. At the connection limit, a body that
//! has stalled for 100 ms makes its connection as closable as an idle one, and its request is
//! answered 408 before the connection closes.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

/// A create's head, promising `length` bytes of body, with `more_headers` (each line ending in CRLF).
fn create_head(length: usize, more_headers: &str) -> String {
    format!(
        "POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\
         {more_headers}\r\n"
    )
}

/// Sends a create (its head with `more_headers`) whose body goes out a byte every `every`, then
/// reads the answer's head: its status and text, and how long it took from the head.
pub(crate) async fn trickle(
    app: &TestApp,
    more_headers: &str,
    body: &[u8],
    every: Duration,
) -> (u16, String, Duration) {
    let stream = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    writer
        .write_all(create_head(body.len(), more_headers).as_bytes())
        .await
        .unwrap();
    let writing = async {
        for byte in body {
            tokio::time::sleep(every).await;
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
        }
    };
    let reading = async {
        let mut answer = Vec::new();
        let mut buffer = [0u8; 4096];
        while !answer.windows(4).any(|part| part == b"\r\n\r\n") {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => answer.extend_from_slice(&buffer[..read]),
            }
        }
        (answer, started.elapsed())
    };
    // The answer may come before the whole body went out (a 408): then stop writing.
    let (answer, took) = tokio::select! {
        answered = reading => answered,
        () = writing => {
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut answer)).await;
            (answer, started.elapsed())
        }
    };
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.get(9..12).and_then(|code| code.parse().ok()).unwrap_or(0);
    (status, text, took)
}

#[tokio::test]
async fn a_body_that_keeps_coming_without_a_5_s_pause_is_read_even_past_5_s() {
    let app = spawn_app().await;
    let body = br#"{"name":"Trickle"}"#;
    // 18 bytes, one every 400 ms: about 7 s in all, never 5 s without a byte.
    let (status, text, took) = trickle(&app, "", body, Duration::from_millis(400)).await;
    assert_eq!(status, 201, "{text}");
    assert!(took > Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn a_body_still_coming_after_8_s_gets_408() {
    let app = spawn_app().await;
    let body = vec![b' '; 100];
    let (status, text, took) = trickle(&app, "", &body, Duration::from_millis(400)).await;
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    assert!(
        took >= Duration::from_secs(8) && took < Duration::from_secs(10),
        "the whole-body limit is 8 s, within the 10 s deadline: {took:?}"
    );
}

#[tokio::test]
async fn at_the_connection_limit_a_stalled_body_is_cut_short_with_408_to_make_room() {
    let app = spawn_app_with(|config| config.max_connections = Some(2)).await;
    // Two uploads fill the limit, each sends part of its body and stalls.
    let mut uploads = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
        stream.write_all(create_head(50, "").as_bytes()).await.unwrap();
        stream.write_all(br#"{"name":"#).await.unwrap();
        uploads.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    // A third client is served: a stalled upload is closed for room, and told why.
    let health = tokio::time::timeout(Duration::from_secs(5), app.get("/health"))
        .await
        .expect("the third client is served");
    assert_eq!(health.status, 200);
    let mut cut_short = 0;
    for mut upload in uploads {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_millis(500), upload.read_to_end(&mut answer)).await;
        if read.is_err() {
            continue; // still open: the other upload made the room
        }
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(
            text.contains("connection: close") && text.contains("x-request-id"),
            "{text}"
        );
        assert!(text.contains("needed the connection"), "{text}");
        cut_short += 1;
    }
    assert!(cut_short >= 1, "a stalled upload was closed for room");
    let metrics = String::from_utf8(app.get("/metrics").await.body.to_vec()).unwrap();
    assert!(
        metrics.contains(r#"gravity_http_requests_total{method="POST",route="/v1/users",status="408"}"#),
        "the cut-short request is counted"
    );
    assert_eq!(app.create_user(json!({"name": "after"})).await["name"], "after");
}
