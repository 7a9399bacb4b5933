//! SIGTERM under load: what was accepted completes, what comes later is refused, exit 0 in time.
//!
//! Two kinds of request are in flight when the signal lands: the steady load, and twenty creates
//! whose head has arrived but whose body is still on its way (so they are certainly in the middle
//! of being handled). The load sends every request with its own `X-Request-Id` and the service
//! logs each request it handled, so "accepted" is not guessed: a request is accepted if the
//! service logged it, and every accepted request must have reached the client with the status
//! the service logged. A request that failed at the client must not be in the log.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{seconds, sent_within};
use crate::Harness;
use crate::load::{Answer, Load};
use crate::mix::Mix;
use crate::report::Report;
use crate::support::signal;
use crate::tally::Tally;

const GRACE: Duration = Duration::from_secs(5);
const SLOW_CREATES: usize = 20;
const BODY: &[u8] = br#"{"name":"in flight at SIGTERM"}"#;

pub async fn sigterm(harness: Arc<Harness>) -> Report {
    let mut report = Report::new("SIGTERM under load");
    let mut started = harness
        .start_service(
            "sigterm",
            None,
            &[("LOG_LEVEL", "info"), ("SHUTDOWN_GRACE_SECONDS", "5")],
        )
        .await;
    let port = started.service.port;
    let ids = Arc::new(super::create_users(port, 50, "sigterm").await);
    let database = harness.cluster.client(&started.database).await;

    let load = Load::start(port, harness.connections, harness.rate, Mix::Reads(ids));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut slow = Vec::new();
    for _ in 0..SLOW_CREATES {
        slow.push(start_slow_create(port).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let term_at = load.now();
    let signalled = Instant::now();
    signal(started.service.pid(), "TERM");
    let refused_after = wait_until_refused(port).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut created = 0;
    for stream in slow {
        if finish_slow_create(stream).await == Some(201) {
            created += 1;
        }
    }
    let exit = started.service.wait_exit(GRACE + Duration::from_secs(3)).await;
    let exited_after = signalled.elapsed();
    let outcomes = load.stop().await;

    let logged = logged_statuses(&std::fs::read_to_string(started.service.stdout_path()).unwrap_or_default());
    let mut accepted_and_lost = 0;
    let mut failed_but_logged = 0;
    let mut status_mismatch = 0;
    for outcome in &outcomes {
        match (outcome.answer, logged.get(&outcome.request_id())) {
            (Answer::Status { code, .. }, Some(&status)) if code != status => status_mismatch += 1,
            (Answer::Status { .. }, _) => {}
            (_, Some(_)) => failed_but_logged += 1,
            (_, None) => {}
        }
    }
    // Every logged request must be among the client's answered ones.
    let answered: HashSet<String> = outcomes
        .iter()
        .filter(|outcome| matches!(outcome.answer, Answer::Status { .. }))
        .map(|outcome| outcome.request_id())
        .collect();
    accepted_and_lost += logged.keys().filter(|id| !answered.contains(*id)).count();
    let stored: i64 = database
        .query_one("SELECT count(*) FROM users WHERE name = 'in flight at SIGTERM'", &[])
        .await
        .map(|row| row.get(0))
        .unwrap_or(-1);
    let before = Tally::of(sent_within(&outcomes, Duration::ZERO..term_at));
    let after = Tally::of(sent_within(&outcomes, term_at..Duration::MAX));
    let everything = Tally::of(&outcomes);

    report.figure("requests", everything.total);
    report.figure("sent before the signal", before.statuses());
    report.figure("sent after the signal", after.statuses());
    report.figure("requests the service logged as handled", logged.len());
    report.figure(
        "slow creates in flight / answered 201 / rows stored",
        format!("{SLOW_CREATES} / {created} / {stored}"),
    );
    report.figure(
        "new connections refused after",
        refused_after.map_or("never".to_owned(), seconds),
    );
    let exit_status = match exit {
        Some(status) => status.code().map_or(status.to_string(), |code| format!("code {code}")),
        None => "still running".to_owned(),
    };
    report.figure(
        "exit",
        format!("{exit_status}, {} after the signal", seconds(exited_after)),
    );

    report.check(
        created == SLOW_CREATES && stored == SLOW_CREATES as i64,
        "every create in flight at SIGTERM completed with 201 and its row is stored",
    );
    report.check(
        accepted_and_lost == 0 && failed_but_logged == 0 && status_mismatch == 0,
        format!(
            "every request the service accepted reached the client with its status \
             ({accepted_and_lost} lost, {failed_but_logged} failed at the client though handled, {status_mismatch} mismatched)"
        ),
    );
    report.check(everything.server_errors() == 0, "zero 5xx");
    report.check(
        refused_after.is_some_and(|waited| waited <= Duration::from_secs(1)),
        "new connections were refused within 1 s of the signal",
    );
    report.check(
        exit.is_some_and(|status| status.success()) && exited_after <= GRACE,
        format!("exit code 0 within the {} s grace period", GRACE.as_secs()),
    );
    if !report.passed() {
        println!("{}", started.service.log_tail(20));
    }
    report
}

/// A create whose head and part of whose body have been sent.
async fn start_slow_create(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the service accepts");
    let head = format!(
        "POST /v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        BODY.len()
    );
    stream.write_all(head.as_bytes()).await.expect("the head is sent");
    stream
        .write_all(&BODY[..5])
        .await
        .expect("the start of the body is sent");
    stream
}

/// Sends the rest of the body and returns the status of the answer.
async fn finish_slow_create(mut stream: TcpStream) -> Option<u16> {
    stream.write_all(&BODY[5..]).await.ok()?;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    // Read until the head is in: the connection stays open until the response is written.
    while !answer.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = tokio::time::timeout_at(deadline, stream.read(&mut buffer))
            .await
            .ok()?
            .ok()?;
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8_lossy(&answer).get(9..12)?.parse().ok()
}

/// How long after the signal a new connection was first refused.
async fn wait_until_refused(port: u16) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        if TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// Request id → status, from the service's JSON request lines.
fn logged_statuses(log: &str) -> HashMap<String, u16> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["message"] == "request")
        .filter_map(|line| {
            let id = line["http.request.id"].as_str()?.to_owned();
            let status = u16::try_from(line["http.response.status_code"].as_u64()?).ok()?;
            id.starts_with("chaos-").then_some((id, status))
        })
        .collect()
}
