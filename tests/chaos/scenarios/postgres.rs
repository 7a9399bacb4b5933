//! Postgres faults: the server restarts, or the service's sessions are terminated.
//!
//! Both run without a cache, so every request needs Postgres and none is hidden by a cache hit.

use std::sync::Arc;
use std::time::Duration;

use super::{seconds, sent_within};
use crate::Harness;
use crate::load::{Answer, Load};
use crate::mix::Mix;
use crate::report::Report;
use crate::support::http;
use crate::tally::{Tally, millis};

/// The contract's request deadline: nothing may hang past it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long Postgres stays down.
const OUTAGE: Duration = Duration::from_secs(2);

/// Stop Postgres (fast shutdown: sessions are ended), keep it down, start it again. Requests in
/// the gap get a 503 problem, none hangs, and success resumes within 2 s of Postgres being back.
pub async fn restart(harness: Arc<Harness>) -> Report {
    let mut report = Report::new("Postgres restarts mid-load");
    let started = harness.start_service("postgres_restart", None, &[]).await;
    let port = started.service.port;
    let ids = Arc::new(super::create_users(port, 50, "restart").await);

    let load = Load::start(port, harness.connections, harness.rate, Mix::ReadsAndLists(ids));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopping_at = load.now();
    let cluster_harness = harness.clone();
    tokio::task::spawn_blocking(move || cluster_harness.cluster.stop("fast"))
        .await
        .expect("pg_ctl stop runs");
    let down_at = load.now();
    tokio::time::sleep(OUTAGE).await;
    let cluster_harness = harness.clone();
    tokio::task::spawn_blocking(move || cluster_harness.cluster.start())
        .await
        .expect("pg_ctl start runs");
    // pg_ctl -w returns once Postgres accepts connections: from here on it is back.
    let back_at = load.now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let outcomes = load.stop().await;

    let everything = Tally::of(&outcomes);
    let gap = Tally::of(sent_within(&outcomes, stopping_at..back_at));
    let last_failure = outcomes
        .iter()
        .filter(|outcome| !outcome.is_status(200))
        .map(|outcome| outcome.finished())
        .max();
    let recovered_in = last_failure.map_or(Duration::ZERO, |finished| finished.saturating_sub(back_at));
    let after_recovery = Tally::of(sent_within(&outcomes, back_at + recovered_in..Duration::MAX));

    report.figure("requests", everything.total);
    report.figure("statuses", everything.statuses());
    report.figure("pg_ctl stop took", seconds(down_at - stopping_at));
    report.figure("Postgres down for", seconds(back_at - down_at));
    report.figure("in the gap", format!("{}; {}", gap.statuses(), gap.latency_summary()));
    report.figure("success resumed after Postgres was back", seconds(recovered_in));
    report.figure("after recovery", after_recovery.statuses());
    report.figure(
        "pool connections down at the end",
        http::metric(port, "gravity_db_pool_connections{state=\"down\"}")
            .await
            .unwrap_or(-1.0),
    );

    report.check(
        gap.count(503..=503) > 0,
        "the outage was seen: requests in the gap got 503",
    );
    report.check(
        everything.count(200..=200) + everything.count(503..=503) == everything.total,
        "every request got 200 or 503; no other status, no dropped connection",
    );
    report.check(
        everything.errors_without_problem == 0,
        "every 503 carried an application/problem+json body",
    );
    report.check(
        everything.max() < REQUEST_TIMEOUT && everything.timed_out == 0,
        format!(
            "no request hung past the 10 s request timeout (max {})",
            millis(everything.max())
        ),
    );
    report.check(
        recovered_in <= Duration::from_secs(2),
        format!(
            "success resumed within 2 s of Postgres being back ({})",
            seconds(recovered_in)
        ),
    );
    report
}

/// Terminate every session of the service mid-load. Reads retry once on another connection and
/// the keepers reconnect within milliseconds, so the next requests succeed.
pub async fn backends_terminated(harness: Arc<Harness>) -> Report {
    let mut report = Report::new("The service's Postgres connections are killed (pg_terminate_backend)");
    let started = harness.start_service("backends_terminated", None, &[]).await;
    let port = started.service.port;
    let ids = Arc::new(super::create_users(port, 50, "terminated").await);
    let load = Load::start(port, harness.connections, harness.rate, Mix::ReadsAndLists(ids));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (sessions_before, _) = harness.cluster.service_sessions(&started.database).await;
    let killed_at = load.now();
    let killed = harness.cluster.terminate_service_sessions(&started.database).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let outcomes = load.stop().await;
    let (sessions_after, _) = harness.cluster.service_sessions(&started.database).await;

    let everything = Tally::of(&outcomes);
    let after_kill = Tally::of(sent_within(&outcomes, killed_at..Duration::MAX));
    let failures: Vec<_> = outcomes.iter().filter(|outcome| !outcome.is_status(200)).collect();
    let last_failure = failures.iter().map(|outcome| outcome.finished()).max();
    let next_ok = outcomes
        .iter()
        .find(|outcome| outcome.sent >= killed_at && outcome.is_status(200))
        .map(|outcome| outcome.finished().saturating_sub(killed_at));

    report.figure("requests", everything.total);
    report.figure("statuses", everything.statuses());
    report.figure("sessions terminated", killed);
    report.figure(
        "sessions before / after",
        format!("{sessions_before} / {sessions_after}"),
    );
    report.figure(
        "after the kill",
        format!("{}; {}", after_kill.statuses(), after_kill.latency_summary()),
    );
    report.figure(
        "first success after the kill",
        next_ok.map_or("never".to_owned(), seconds),
    );
    report.figure(
        "last failure after the kill",
        last_failure.map_or("none".to_owned(), |finished| {
            seconds(finished.saturating_sub(killed_at))
        }),
    );

    report.check(killed >= 1, "the service's sessions were terminated");
    report.check(
        failures.iter().all(|outcome| {
            matches!(
                outcome.answer,
                Answer::Status {
                    code: 503,
                    problem: true,
                    ..
                }
            )
        }),
        "no 500 and no dropped connection: at worst a 503 problem for a request caught on a dying session",
    );
    report.check(
        failures.len() <= harness.connections,
        format!("at most one failure per connection of load ({} failed)", failures.len()),
    );
    report.check(
        last_failure.is_none_or(|finished| finished <= killed_at + Duration::from_secs(1)),
        "every request from 1 s after the kill on succeeded",
    );
    report.check(
        sessions_after >= 1 && sessions_after <= sessions_before.max(1),
        "the service reconnected without opening more sessions than before",
    );
    report
}
