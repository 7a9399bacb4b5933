//! Clients that hold connections without playing along: ones that stop reading their answers, and
//! more idle connections than the process has descriptors for; and the requests of connections
//! closed for room.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestDatabase, eventually};
use crate::service_process;

/// The service's write-progress timeout (`server::client_socket::WRITE_PROGRESS_TIMEOUT`).
const WRITE_PROGRESS_TIMEOUT: Duration = Duration::from_secs(10);
const SLOW_READERS: usize = 100;
const PIPELINED: usize = 300;
/// A probe of `/health` must be answered within this while the slow readers hold their connections.
const HEALTH_BOUND: Duration = Duration::from_millis(100);
/// By then the service has filled every slow reader's buffers (hyper's and the kernel's, about
/// 25 answers each) even as a debug build on a busy machine, and is only waiting.
const BUFFERS_FULL: Duration = Duration::from_secs(6);
/// Kernel pages are 4 KiB on the machines the tests run on.
const PAGE: u64 = 4096;

#[tokio::test]
async fn clients_that_stop_reading_are_dropped_after_the_write_timeout_and_their_memory_freed() {
    // Arrange: 100 users, so each answer is a full page of about 26 KB.
    let database = TestDatabase::create().await;
    database
        .client
        .execute(
            "INSERT INTO users (name, email, avatar_url) SELECT 'user ' || n || ' with a name of some length', \
             'user' || n || '@example.org', 'https://img.example.org/avatars/' || n || '.png' \
             FROM generate_series(1, 100) AS n",
            &[],
        )
        .await
        .unwrap();
    let service = service_process::on(&database, &[], None).await;
    let baseline = tcp_memory_pages();

    // Act: 100 connections each send 300 requests for a page of 100 users, and never read.
    let started = Instant::now();
    let pipeline = "GET /v1/users?limit=100 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(PIPELINED);
    let mut readers = Vec::new();
    for _ in 0..SLOW_READERS {
        let mut stream = TcpStream::connect(("127.0.0.1", service.port)).await.unwrap();
        stream.write_all(pipeline.as_bytes()).await.unwrap();
        readers.push(tokio::spawn(wait_for_reset(stream, started)));
    }
    // Meanwhile: /health is answered, and kernel memory stays bounded.
    let mut probes = Vec::new();
    let mut peak = baseline;
    while !readers.iter().all(|reader| reader.is_finished()) {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the slow readers were not all dropped"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        peak = peak.max(tcp_memory_pages());
        let probe = Instant::now();
        assert_eq!(service.get("/health").await.status, 200);
        probes.push((probe - started, probe.elapsed()));
    }
    let mut dropped_after = Vec::new();
    for reader in readers {
        dropped_after.push(reader.await.unwrap());
    }

    // Assert: each was dropped once it had read nothing for the timeout, and not before.
    let earliest = *dropped_after.iter().min().unwrap();
    let latest = *dropped_after.iter().max().unwrap();
    assert!(earliest >= WRITE_PROGRESS_TIMEOUT, "dropped after {earliest:?}");
    assert!(
        latest <= WRITE_PROGRESS_TIMEOUT + Duration::from_secs(15),
        "dropped after {latest:?}"
    );
    // While the service is still filling the buffers it is busy (30,000 pages asked for); once
    // they are full the stuck connections cost nothing, and /health must be prompt.
    let slowest = probes.iter().map(|(_, took)| *took).max().unwrap();
    assert!(slowest < Duration::from_secs(1), "/health took {slowest:?}: {probes:?}");
    let stuck: Vec<Duration> = probes
        .iter()
        .filter(|(at, _)| (BUFFERS_FULL..earliest).contains(at))
        .map(|(_, took)| *took)
        .collect();
    assert!(stuck.len() >= 4, "{probes:?}");
    assert!(stuck.iter().all(|took| *took < HEALTH_BOUND), "{probes:?}");
    // Without the bounded send buffer, each socket grew to 4 MiB: 389 MiB for these 100.
    let grown = peak.saturating_sub(baseline) * PAGE;
    assert!(grown < 64 << 20, "kernel TCP memory grew by {} MiB", grown >> 20);
    let settled = eventually(Duration::from_secs(5), async || {
        tcp_memory_pages().saturating_sub(baseline) * PAGE < 16 << 20
    })
    .await;
    assert!(
        settled,
        "kernel TCP memory is {} pages, {baseline} before",
        tcp_memory_pages()
    );
    let timed_out = "gravity_http_connections_closed_total{reason=\"write_timeout\"}";
    assert_eq!(service.metric(timed_out).await, SLOW_READERS as f64);
    // Only /metrics' own, once the last probe's connection (closed by the server just before the
    // probe read its end) has been counted out.
    let only_its_own = eventually(Duration::from_secs(2), async || {
        service.metric("gravity_http_connections_open").await == 1.0
    })
    .await;
    assert!(
        only_its_own,
        "{} connections open",
        service.metric("gravity_http_connections_open").await
    );
}

#[tokio::test]
async fn with_256_descriptors_and_300_idle_connections_the_probes_are_answered_and_the_log_stays_short() {
    let database = TestDatabase::create().await;
    let service = service_process::on(&database, &[("LOG_LEVEL", "info")], Some(256)).await;
    // 256 descriptors, less 64 + DB_POOL_SIZE (4) + DB_EXTRA_WRITE_CONNECTIONS (4) in reserve.
    assert!(
        service.stderr().contains(r#""max_connections":184"#),
        "{}",
        service.stderr()
    );

    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(("127.0.0.1", service.port)).await.unwrap());
    }
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let port = service.port.to_string();
        let probe = tokio::task::spawn_blocking(move || {
            std::process::Command::new(crate::shutdown::BINARY)
                .arg("--health")
                .env_clear()
                .env("API_PORT", port)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(probe.status.success(), "{}", String::from_utf8_lossy(&probe.stderr));
        assert_eq!(service.get("/health").await.status, 200);
    }

    let open = service.metric("gravity_http_connections_open").await;
    assert!(open <= 184.0, "{open} connections open");
    let evicted = service
        .metric("gravity_http_connections_closed_total{reason=\"evicted\"}")
        .await;
    assert!(evicted >= 300.0 - 184.0, "{evicted} idle connections closed for room");
    // Start-up's own events (listening, authentication off, the cache's first sweep) and nothing
    // for the 300 connections.
    let events = service.stderr();
    assert!(events.lines().count() <= 4, "{events}");
    assert!(
        !events.contains("accept failed"),
        "the cap keeps accept from running out of descriptors: {events}"
    );
    drop(idle);
}

/// Waits without reading until the service resets the connection; returns when, after `started`.
#[tokio::test]
async fn a_request_that_arrived_on_a_connection_closed_for_room_is_answered_not_reset() {
    const CAP: usize = 100;
    let database = TestDatabase::create().await;
    let cap = CAP.to_string();
    let service = service_process::on(&database, &[("MAX_CONNECTIONS", &cap)], None).await;
    let mut clients = Vec::new();
    for _ in 0..CAP {
        let mut client = TcpStream::connect(("127.0.0.1", service.port)).await.unwrap();
        client
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buffer = [0u8; 4096];
        assert!(client.read(&mut buffer).await.unwrap() > 0);
        clients.push(client);
    }
    // Quiet long enough to be closable for room; then each sends a request, and newcomers arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for client in &mut clients {
        client
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
    }
    let mut newcomers = Vec::new();
    for _ in 0..CAP {
        newcomers.push(TcpStream::connect(("127.0.0.1", service.port)).await.unwrap());
    }
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for client in &mut clients {
        let mut buffer = [0u8; 4096];
        let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buffer)).await;
        let outcome = match read {
            Ok(Ok(read)) if read >= 12 => String::from_utf8_lossy(&buffer[..12]).into_owned(),
            Ok(Ok(_)) => "closed without an answer".to_owned(),
            Ok(Err(error)) => format!("{:?}", error.kind()),
            Err(_) => "no answer in 5 s".to_owned(),
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    let answered: usize = ["HTTP/1.1 200", "HTTP/1.1 503"]
        .iter()
        .filter_map(|status| outcomes.get(*status))
        .sum();
    assert_eq!(
        answered, CAP,
        "each request is run (200) or refused for room (503): {outcomes:?}"
    );
    drop(newcomers);
}

async fn wait_for_reset(stream: TcpStream, started: Instant) -> Duration {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The reset sets the socket's pending error; reading would make this a reader.
        if matches!(stream.take_error(), Ok(Some(_)) | Err(_)) {
            return started.elapsed();
        }
    }
}

/// `mem` of the `TCP:` line of /proc/net/sockstat: pages of kernel memory held by TCP sockets.
fn tcp_memory_pages() -> u64 {
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").expect("/proc/net/sockstat is readable");
    let line = sockstat
        .lines()
        .find(|line| line.starts_with("TCP:"))
        .expect("sockstat has a TCP line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    let at = fields.iter().position(|field| *field == "mem").expect("a mem field");
    fields[at + 1].parse().expect("mem is a number")
}
