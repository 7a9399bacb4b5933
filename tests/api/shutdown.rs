//! SIGTERM and SIGHUP with requests in flight, against the real binary (as PID 1 in a container
//! would get them).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestDatabase, free_port};

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
    let port = free_port();
    let mut vars = database.services.vars(&database.name, &database.name);
    vars.retain(|(name, _)| name != "API_PORT" && name != "LOG_LEVEL");
    let child = Command::new(BINARY)
        .env_clear()
        .envs(vars)
        .env("API_PORT", port.to_string())
        .env("LOG_LEVEL", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    crate::helpers::wait_until_serving(port, Duration::from_secs(10)).await;

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

    let signalled = Command::new("kill")
        .args([format!("-{signal_name}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
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

    let exit = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.status.success(), "exit code 0, got {:?}", exit.status);
    let stderr = String::from_utf8(exit.stderr).unwrap();
    assert!(
        stderr.lines().any(|line| line.contains(r#""message":"stopped""#)),
        "the stopped event is logged:\n{stderr}"
    );
    let stdout = String::from_utf8(exit.stdout).unwrap();
    let posted = BufReader::new(stdout.as_bytes())
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(&line.unwrap()).expect("stdout holds only JSON lines"))
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
