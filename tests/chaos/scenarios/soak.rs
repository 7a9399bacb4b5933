//! Soak: minutes of mixed traffic (reads, lists, creates, patches, deletes, and one request in
//! ten a bad one). Memory must level off and no Postgres session or descriptor may leak.

use std::sync::Arc;
use std::time::Duration;

use super::{mebibytes, seconds};
use crate::Harness;
use crate::load::{Answer, Load};
use crate::mix::{Intent, Mix};
use crate::report::Report;
use crate::support::redis_server::OwnRedis;
use crate::tally::Tally;

/// The service's default `DB_POOL_SIZE`: the sessions it holds.
const POOL_SIZE: i64 = 4;
/// The default `DB_EXTRA_WRITE_CONNECTIONS`: at most this many more while writes are stuck.
const EXTRA_WRITE_CONNECTIONS: i64 = 4;

pub async fn soak(harness: Arc<Harness>) -> Report {
    let mut report = Report::new("Soak: mixed traffic with 10% bad requests");
    let redis = OwnRedis::start();
    let started = harness.start_service("soak", Some(&redis), &[]).await;
    let service = &started.service;
    let ids = Arc::new(super::create_users(service.port, 200, "soak-seed").await);

    // The baseline is the value after the first 20 s; a short (CI) soak takes it after a
    // third of the run, so there is still a stretch to compare against.
    let baseline_at = Duration::from_secs(20).min(harness.soak / 3);
    let load = Load::start(service.port, harness.connections, harness.rate, Mix::Soak(ids));
    tokio::time::sleep(baseline_at).await;
    let rss_baseline = service.rss_kib();
    let fds_baseline = service.open_fds();
    let (sessions_baseline, _) = harness.cluster.service_sessions(&started.database).await;
    let mut rss_peak = rss_baseline;
    let mut rss_every_10_seconds = Vec::new();
    while load.now() < harness.soak {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss = service.rss_kib();
        rss_peak = rss_peak.max(rss);
        if rss_every_10_seconds.len() < load.now().as_secs() as usize / 10 {
            rss_every_10_seconds.push(format!("{:.1}", rss as f64 / 1024.0));
        }
    }
    let rss_end = service.rss_kib();
    let fds_end = service.open_fds();
    let (sessions_end, idle_in_transaction) = harness.cluster.service_sessions(&started.database).await;
    let outcomes = load.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (sessions_idle, _) = harness.cluster.service_sessions(&started.database).await;

    let everything = Tally::of(&outcomes);
    let of_intent = |intent: Intent| Tally::of(outcomes.iter().filter(|outcome| outcome.intent == intent));
    let (reads, writes, bad) = (
        of_intent(Intent::Read),
        of_intent(Intent::Write),
        of_intent(Intent::Bad),
    );
    let bad_answered_4xx = outcomes
        .iter()
        .filter(|outcome| outcome.intent == Intent::Bad)
        .all(|outcome| {
            matches!(
                outcome.answer,
                Answer::Status {
                    code: 400..=499,
                    problem: true,
                    ..
                }
            )
        });
    let growth = (rss_end as f64 / rss_baseline.max(1) as f64 - 1.0) * 100.0;

    report.figure("duration", seconds(harness.soak));
    report.figure("requests", everything.total);
    report.figure("reads", format!("{}; {}", reads.statuses(), reads.latency_summary()));
    report.figure("writes", format!("{}; {}", writes.statuses(), writes.latency_summary()));
    report.figure(
        "bad requests",
        format!(
            "{} ({:.1}%)",
            bad.statuses(),
            100.0 * bad.total as f64 / everything.total.max(1) as f64
        ),
    );
    report.figure(
        format!("resident memory at {} / peak / end", seconds(baseline_at)),
        format!(
            "{} / {} / {} ({growth:+.1}%)",
            mebibytes(rss_baseline),
            mebibytes(rss_peak),
            mebibytes(rss_end)
        ),
    );
    report.figure("resident memory every 10 s (MiB)", rss_every_10_seconds.join(" "));
    report.figure(
        "open descriptors at baseline / end",
        format!("{fds_baseline} / {fds_end}"),
    );
    report.figure(
        "Postgres sessions at baseline / end / idle after",
        format!("{sessions_baseline} / {sessions_end} / {sessions_idle}"),
    );

    report.check(
        everything.server_errors() == 0 && everything.unanswered() == 0,
        "zero 5xx and no request left unanswered",
    );
    report.check(
        reads.count(200..=200) == reads.total && writes.count(200..=299) == writes.total,
        "every read and write succeeded",
    );
    report.check(bad.total > 0 && bad_answered_4xx, "every bad request got a 4xx problem");
    report.check(
        rss_end <= rss_baseline + rss_baseline / 5,
        format!("resident memory at the end within 20% of the baseline ({growth:+.1}%)"),
    );
    report.check(
        sessions_end <= POOL_SIZE + EXTRA_WRITE_CONNECTIONS && sessions_idle <= POOL_SIZE && idle_in_transaction == 0,
        "no leaked Postgres sessions: at most the pool's 4 (and 4 extra write connections under load), none idle in a transaction",
    );
    report.check(fds_end <= fds_baseline + 4, "no leaked descriptors");
    report
}
