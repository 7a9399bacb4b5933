//! Slow readers: 100 connections each pipeline 300 requests for a page of 100 users and never read
//! a byte of the answers. The service must fill what it may (a bounded send buffer per socket),
//! drop each connection once nothing could be written to it for the 10 s write-progress timeout,
//! give the kernel memory back, and keep answering everyone else meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{seconds, sent_within};
use crate::Harness;
use crate::load::Load;
use crate::mix::Mix;
use crate::report::Report;
use crate::support::http;
use crate::tally::{Tally, millis};

const SLOW_READERS: usize = 100;
const PIPELINED: usize = 300;
/// The service's `server::client_socket::WRITE_PROGRESS_TIMEOUT`.
const WRITE_PROGRESS_TIMEOUT: Duration = Duration::from_secs(10);
/// `/health` must be answered within this while the connections are stuck, when they must cost
/// the service nothing.
const HEALTH_BOUND: Duration = Duration::from_millis(100);
/// And within this while the service fills their buffers: that is real work (2,500 pages of 100
/// users, from Postgres on the same two cores) competing for the CPU.
const HEALTH_BOUND_FILLING: Duration = Duration::from_secs(1);
/// Kernel memory the 100 stuck sockets may hold at their peak. Left to autotuning, each grew
/// to 4 MiB (389 MiB in all) and stayed until the client went away.
const MEMORY_BOUND_MIB: f64 = 64.0;
const PAGE_BYTES: u64 = 4096;

pub async fn slow_readers(harness: Arc<Harness>) -> Report {
    let mut report = Report::new("100 clients pipeline 300 requests each and never read (slow readers)");
    let started = harness.start_service("slow_readers", None, &[]).await;
    let service = &started.service;
    let port = service.port;
    let ids = Arc::new(super::create_users(port, 100, "slowreader").await);

    let load = Load::start(port, harness.connections, harness.rate, Mix::Reads(ids));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fds_before = service.open_fds();
    let memory_before = tcp_memory_pages();
    let slow_from = load.now();
    let clock = Instant::now();
    let pipeline = "GET /v1/users?limit=100 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(PIPELINED);
    let mut readers = Vec::new();
    for _ in 0..SLOW_READERS {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("a slow reader connects");
        stream
            .write_all(pipeline.as_bytes())
            .await
            .expect("the pipeline is sent");
        readers.push(tokio::spawn(wait_for_reset(stream, clock)));
    }
    // Each probe: when it was sent, the answer's status, how long it took, kernel TCP memory then.
    let mut health = Vec::new();
    let mut memory_peak = memory_before;
    let mut fds_during = fds_before;
    while !readers.iter().all(|reader| reader.is_finished()) && clock.elapsed() < Duration::from_secs(40) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let memory = tcp_memory_pages();
        memory_peak = memory_peak.max(memory);
        fds_during = fds_during.max(service.open_fds());
        let probe = Instant::now();
        let status = http::get(port, "/health").await.ok().map(|response| response.status);
        health.push((probe - clock, status, probe.elapsed(), memory));
    }
    let slow_until = load.now();
    let mut dropped_after = Vec::new();
    for reader in readers {
        if reader.is_finished() {
            dropped_after.push(reader.await.expect("a slow reader task does not panic"));
        } else {
            reader.abort();
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let memory_after = tcp_memory_pages();
    let fds_after = service.open_fds();
    let outcomes = load.stop().await;
    let write_timeouts = http::metric(port, "gravity_http_connections_closed_total{reason=\"write_timeout\"}")
        .await
        .unwrap_or(0.0);

    let normal = Tally::of(sent_within(&outcomes, slow_from..slow_until));
    let earliest = dropped_after.iter().min().copied().unwrap_or_default();
    let latest = dropped_after.iter().max().copied().unwrap_or_default();
    let health_ok = health.iter().filter(|probe| probe.1 == Some(200)).count();
    let mib = |pages: u64| (pages * PAGE_BYTES) as f64 / f64::from(1 << 20);
    let grown = mib(memory_peak.saturating_sub(memory_before));
    // The service is busy until it has filled every slow reader's buffers (about 2,500 pages in
    // all); from then on the stuck connections ask nothing of it. Filled: memory within 5% of its
    // peak growth.
    let filled_at = memory_before + (memory_peak.saturating_sub(memory_before)) * 95 / 100;
    let filled = health
        .iter()
        .find(|probe| probe.3 >= filled_at)
        .map_or(Duration::MAX, |probe| probe.0);
    let slowest = |stuck: bool| {
        health
            .iter()
            .filter(|probe| (probe.0 >= filled) == stuck)
            .map(|probe| probe.2)
            .max()
            .unwrap_or_default()
    };
    let (health_filling, health_stuck) = (slowest(false), slowest(true));
    let stuck_probes = health.iter().filter(|probe| probe.0 >= filled).count();

    report.figure(
        "slow readers dropped by the service",
        format!("{} of {SLOW_READERS}", dropped_after.len()),
    );
    report.figure(
        "dropped after (earliest / latest)",
        format!("{} / {}", seconds(earliest), seconds(latest)),
    );
    report.figure("write timeouts counted by the service", write_timeouts);
    report.figure(
        "kernel TCP memory before / peak / 1 s after",
        format!(
            "{:.1} / {:.1} / {:.1} MiB",
            mib(memory_before),
            mib(memory_peak),
            mib(memory_after)
        ),
    );
    report.figure(
        "open descriptors before / during / after",
        format!("{fds_before} / {fds_during} / {fds_after}"),
    );
    report.figure("buffers filled after", seconds(filled));
    report.figure(
        "/health probes meanwhile: 200 / slowest while filling / slowest after",
        format!(
            "{health_ok} of {} / {} / {} ({stuck_probes} probes)",
            health.len(),
            millis(health_filling),
            millis(health_stuck)
        ),
    );
    report.figure("normal requests meanwhile", normal.total);
    report.figure("their statuses", normal.statuses());
    report.figure("their latency", normal.latency_summary());

    report.check(
        dropped_after.len() == SLOW_READERS && write_timeouts == SLOW_READERS as f64,
        "every slow reader was dropped for the write timeout",
    );
    report.check(
        earliest >= WRITE_PROGRESS_TIMEOUT && latest <= WRITE_PROGRESS_TIMEOUT + Duration::from_secs(5),
        "each was dropped once nothing could be written for 10 s (between 10 s and 15 s after it connected)",
    );
    report.check(
        grown < MEMORY_BOUND_MIB,
        format!("kernel TCP memory grew by {grown:.1} MiB at most (< {MEMORY_BOUND_MIB} MiB)"),
    );
    report.check(
        mib(memory_after.saturating_sub(memory_before)) < 4.0,
        "kernel TCP memory was back within 4 MiB of before 1 s after the last drop",
    );
    report.check(
        !health.is_empty() && health_ok == health.len() && health_filling < HEALTH_BOUND_FILLING,
        format!(
            "/health answered 200 every time, within {} while the service filled the buffers (max {})",
            millis(HEALTH_BOUND_FILLING),
            millis(health_filling)
        ),
    );
    report.check(
        stuck_probes >= 10 && health_stuck < HEALTH_BOUND,
        format!(
            "/health answered within {} while the connections were stuck (max {})",
            millis(HEALTH_BOUND),
            millis(health_stuck)
        ),
    );
    report.check(
        normal.total > 0 && normal.count(200..=200) == normal.total,
        "every normal request meanwhile was answered 200",
    );
    report.check(
        fds_after <= fds_before + 4,
        "the dropped connections' descriptors were released",
    );
    report
}

/// Waits, never reading, until the service resets the connection; returns when, after `clock`.
async fn wait_for_reset(stream: TcpStream, clock: Instant) -> Duration {
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A reset leaves an error pending on the socket; reading would make this a reader.
        if matches!(stream.take_error(), Ok(Some(_)) | Err(_)) {
            return clock.elapsed();
        }
    }
}

/// `mem` of the `TCP:` line of /proc/net/sockstat: pages of kernel memory held by TCP sockets.
fn tcp_memory_pages() -> u64 {
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    sockstat
        .lines()
        .find_map(|line| line.strip_prefix("TCP:"))
        .and_then(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let at = fields.iter().position(|field| *field == "mem")?;
            fields.get(at + 1)?.parse().ok()
        })
        .unwrap_or(0)
}
