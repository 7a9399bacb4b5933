//! Slowloris: 200 connections that send a header line now and then and never finish the head.
//! Normal clients must still be answered promptly, and the slow ones must be dropped after the
//! 5 s header timeout, not before and not much after.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{seconds, sent_within};
use crate::Harness;
use crate::load::Load;
use crate::mix::Mix;
use crate::report::Report;
use crate::support::http;
use crate::tally::{Tally, millis};

const SLOW_CLIENTS: usize = 200;
/// The service's `server::HEADER_READ_TIMEOUT`.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A trickling client sends one more header line this often, so it is never idle.
const TRICKLE_EVERY: Duration = Duration::from_millis(500);
/// Normal requests must stay fast while the slow clients hold their connections.
const NORMAL_LATENCY_BOUND: Duration = Duration::from_millis(500);

pub async fn slowloris(harness: Arc<Harness>) -> Report {
    let mut report = Report::new("200 slow clients trickle their headers (slowloris)");
    let started = harness.start_service("slow_clients", None, &[]).await;
    let service = &started.service;
    let ids = Arc::new(super::create_users(service.port, 20, "slowloris").await);

    let load = Load::start(service.port, harness.connections, harness.rate, Mix::Reads(ids));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fds_before = service.open_fds();
    let slow_from = load.now();
    let port = service.port;
    let trickles: Vec<_> = (0..SLOW_CLIENTS)
        .map(|index| tokio::spawn(trickle(port, index)))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fds_during = service.open_fds();
    let mut dropped_after = Vec::new();
    for trickle in trickles {
        dropped_after.push(trickle.await.expect("a slow client task does not panic"));
    }
    let slow_until = load.now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fds_after = service.open_fds();
    let outcomes = load.stop().await;

    let normal = Tally::of(sent_within(&outcomes, slow_from..slow_until));
    let connected = dropped_after.iter().filter(|dropped| dropped.is_some()).count();
    let times: Vec<Duration> = dropped_after.iter().flatten().flatten().copied().collect();
    let never_dropped = dropped_after
        .iter()
        .filter(|dropped| matches!(dropped, Some(None)))
        .count();
    let earliest = times.iter().min().copied().unwrap_or_default();
    let latest = times.iter().max().copied().unwrap_or_default();

    report.figure(
        "slow connections opened / dropped by the service",
        format!("{connected} / {}", times.len()),
    );
    report.figure(
        "dropped after (earliest / latest)",
        format!("{} / {}", seconds(earliest), seconds(latest)),
    );
    report.figure(
        "open descriptors before / during / after",
        format!("{fds_before} / {fds_during} / {fds_after}"),
    );
    report.figure("normal requests meanwhile", normal.total);
    report.figure("their statuses", normal.statuses());
    report.figure("their latency", normal.latency_summary());

    report.check(connected == SLOW_CLIENTS, "all 200 slow connections were accepted");
    report.check(
        never_dropped == 0 && times.len() == SLOW_CLIENTS,
        "every slow connection was dropped by the service",
    );
    report.check(
        earliest >= HEADER_TIMEOUT - Duration::from_millis(500)
            && latest <= HEADER_TIMEOUT + Duration::from_millis(2_500),
        "they were dropped at the 5 s header timeout (between 4.5 s and 7.5 s), although they kept sending",
    );
    report.check(
        normal.total > 0 && normal.count(200..=200) == normal.total,
        "every normal request meanwhile was answered 200",
    );
    report.check(
        normal.max() <= NORMAL_LATENCY_BOUND,
        format!(
            "normal requests stayed fast (max {} ≤ {})",
            millis(normal.max()),
            millis(NORMAL_LATENCY_BOUND)
        ),
    );
    report.check(
        fds_after <= fds_before + 4,
        "the dropped connections' descriptors were released",
    );
    report
}

/// One slow client: `None` if it could not connect, `Some(None)` if the service never dropped it
/// (within 15 s), else how long after connecting it was dropped.
async fn trickle(port: u16, index: usize) -> Option<Option<Duration>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let connected = Instant::now();
    if stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .is_err()
    {
        return Some(Some(connected.elapsed()));
    }
    let mut buffer = [0u8; 512];
    let mut line = 0;
    while connected.elapsed() < Duration::from_secs(15) {
        tokio::select! {
            read = stream.read(&mut buffer) => {
                // The service closed the connection (0), reset it (error), or answered it: dropped.
                let _ = read;
                return Some(Some(connected.elapsed()));
            }
            () = tokio::time::sleep(TRICKLE_EVERY) => {
                line += 1;
                let header = format!("X-Trickle-{index}-{line}: still here\r\n");
                if stream.write_all(header.as_bytes()).await.is_err() {
                    return Some(Some(connected.elapsed()));
                }
            }
        }
    }
    Some(None)
}

/// The connection limit of the slow-uploaders scenario, and how many upload slowly against it.
const UPLOAD_LIMIT: usize = 50;
const SLOW_UPLOADERS: usize = 200;
/// An uploader sends one more byte of its body this often: never the 5 s pause that earns a 408,
/// always longer than the 250 ms after which a stalled body's connection may be closed for room.
const UPLOAD_BYTE_EVERY: Duration = Duration::from_secs(2);
const UPLOADERS_FOR: Duration = Duration::from_secs(15);
/// An honest client asks for `/health` this often, each time on a new connection.
const PROBE_EVERY: Duration = Duration::from_millis(250);

/// 200 clients upload their bodies a byte every 2 s against `MAX_CONNECTIONS=50`, reconnecting
/// whenever the service closes them: an honest client must still be served, and the uploads it
/// displaces must be told why.
pub async fn slow_uploaders(harness: Arc<Harness>) -> Report {
    let mut report = Report::new("200 clients upload their bodies slowly against MAX_CONNECTIONS=50");
    let limit = UPLOAD_LIMIT.to_string();
    let started = harness
        .start_service("slow_uploaders", None, &[("MAX_CONNECTIONS", &limit)])
        .await;
    let port = started.service.port;
    let until = Instant::now() + UPLOADERS_FOR;
    let uploaders: Vec<_> = (0..SLOW_UPLOADERS)
        .map(|_| tokio::spawn(upload_slowly_until(port, until)))
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut probes = Vec::new();
    let mut slowest_connect = Duration::ZERO;
    while Instant::now() + Duration::from_secs(3) < until {
        let sent = Instant::now();
        let (ok, connected_in) = probe_health(port).await;
        slowest_connect = slowest_connect.max(connected_in);
        probes.push((ok, sent.elapsed()));
        tokio::time::sleep(PROBE_EVERY.saturating_sub(sent.elapsed())).await;
    }
    let mut cut_short = 0;
    for uploader in uploaders {
        cut_short += uploader.await.expect("an uploader task does not panic");
    }
    let answered = probes.iter().filter(|(ok, _)| *ok).count();
    let mut latencies: Vec<Duration> = probes.iter().filter(|(ok, _)| *ok).map(|(_, took)| *took).collect();
    latencies.sort();
    let median = latencies.get(latencies.len() / 2).copied().unwrap_or(Duration::MAX);
    let share = answered as f64 / probes.len().max(1) as f64;
    report.figure(
        "honest /health probes answered 200",
        format!("{answered} of {}", probes.len()),
    );
    report.figure(
        "their latency: median / worst",
        format!(
            "{} / {}",
            millis(median),
            millis(latencies.last().copied().unwrap_or_default())
        ),
    );
    report.figure("uploads cut short with a 408 to make room", cut_short);
    report.check(
        share >= 0.8,
        format!("at least 80 % of the probes were answered 200 ({:.0} %)", share * 100.0),
    );
    report.check(
        median < Duration::from_secs(1),
        format!("their median latency was under 1 s ({})", millis(median)),
    );
    // A SYN dropped by a full accept queue is sent again after 1 s: no probe should wait for that.
    report.check(
        slowest_connect < Duration::from_secs(1),
        format!(
            "no probe's connect waited for TCP to send its SYN again (slowest {})",
            millis(slowest_connect)
        ),
    );
    report.check(
        cut_short > 0,
        "stalled uploads were closed for room, each told so with a 408",
    );
    report
}

/// One honest `GET /health` on a new connection: whether it was answered 200 within 3 s, and how
/// long the connect took (the accept queue's part).
async fn probe_health(port: u16) -> (bool, Duration) {
    let started = Instant::now();
    let connected = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(("127.0.0.1", port))).await;
    let connected_in = started.elapsed();
    let Ok(Ok(mut stream)) = connected else {
        return (false, connected_in);
    };
    let request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request).await.is_err() {
        return (false, connected_in);
    }
    let left = Duration::from_secs(3).saturating_sub(started.elapsed());
    let answer = http::read_until_closed(&mut stream, left).await.unwrap_or_default();
    (
        http::status_of(&String::from_utf8_lossy(&answer)) == Some(200),
        connected_in,
    )
}

/// Uploads a body a byte at a time until `until`, reconnecting whenever the service answers or
/// closes; returns how many of its uploads were answered 408.
async fn upload_slowly_until(port: u16, until: Instant) -> u64 {
    let mut cut_short = 0;
    while Instant::now() < until {
        let Ok(stream) = TcpStream::connect(("127.0.0.1", port)).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (mut reader, mut writer) = stream.into_split();
        let head = "POST /v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
        if writer.write_all(head.as_bytes()).await.is_err() {
            continue;
        }
        let mut answer = [0u8; 12];
        let answered = loop {
            tokio::select! {
                read = reader.read(&mut answer) => break matches!(read, Ok(count) if count >= 12 && &answer[9..12] == b"408"),
                () = tokio::time::sleep(UPLOAD_BYTE_EVERY) => {
                    if Instant::now() >= until || writer.write_all(b" ").await.is_err() {
                        break false;
                    }
                }
            }
        };
        cut_short += u64::from(answered);
    }
    cut_short
}
