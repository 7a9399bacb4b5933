//! Redis faults: the cache dies, or hangs. Neither may fail a read.

use std::sync::Arc;
use std::time::Duration;

use super::{mebibytes, seconds, sent_within};
use crate::Harness;
use crate::load::{Answer, Load};
use crate::mix::Mix;
use crate::report::Report;
use crate::support::http;
use crate::support::redis_server::OwnRedis;
use crate::support::signal;
use crate::tally::{Tally, millis};

/// The service's bound on one Redis call (`config::OPERATION_TIMEOUT`).
const CACHE_TIMEOUT: Duration = Duration::from_millis(100);
/// What a read may add to the cache timeout: a Postgres lookup by primary key plus scheduling on
/// a 2-core machine that also runs the load, Postgres and Redis. A run that overlapped another
/// benchmark saw a 686 ms maximum here (p99 103 ms), so the bound leaves room for the machine,
/// while a read left waiting on the frozen Redis (no timeout) would wait out the 4 s freeze.
const DB_TIME_ALLOWANCE: Duration = Duration::from_millis(900);

/// SIGKILL the cache mid-load: zero 5xx, every read answered from Postgres; when Redis is back
/// on its port, hits resume without restarting the service.
pub async fn killed(harness: Arc<Harness>) -> Report {
    let mut report = Report::new("Redis dies mid-load (SIGKILL), then comes back");
    let mut redis = OwnRedis::start();
    let started = harness.start_service("redis_killed", Some(&redis), &[]).await;
    let ids = Arc::new(super::create_users(started.service.port, 50, "cached").await);

    let load = Load::start(started.service.port, harness.connections, harness.rate, Mix::Reads(ids));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed_at = load.now();
    redis.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let back_at = load.now();
    let _redis = OwnRedis::start_on(redis.port);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let outcomes = load.stop().await;

    let before = Tally::of(sent_within(&outcomes, Duration::ZERO..killed_at));
    let dead = Tally::of(sent_within(&outcomes, killed_at..back_at));
    let after = Tally::of(sent_within(&outcomes, back_at..Duration::MAX));
    let everything = Tally::of(&outcomes);
    let first_hit_after = outcomes
        .iter()
        .find(|outcome| outcome.sent >= back_at && matches!(outcome.answer, Answer::Status { cache_hit: true, .. }));
    let resumed_in = first_hit_after.map(|outcome| outcome.finished().saturating_sub(back_at));
    let last_second = Tally::of(sent_within(
        &outcomes,
        load_end(&outcomes).saturating_sub(Duration::from_secs(1))..Duration::MAX,
    ));

    report.figure("requests", everything.total);
    report.figure("statuses", everything.statuses());
    report.figure(
        "before the kill (3 s)",
        format!("{}; cache hits {}", before.statuses(), before.cache_hits),
    );
    report.figure(
        "Redis dead (3 s)",
        format!(
            "{}; cache hits {}; {}",
            dead.statuses(),
            dead.cache_hits,
            dead.latency_summary()
        ),
    );
    report.figure(
        "Redis back (4 s)",
        format!("{}; cache hits {}", after.statuses(), after.cache_hits),
    );
    report.figure(
        "first hit after Redis came back",
        resumed_in.map_or("never".to_owned(), seconds),
    );
    report.figure(
        "hit ratio in the last second",
        format!(
            "{:.0}%",
            100.0 * last_second.cache_hits as f64 / last_second.total.max(1) as f64
        ),
    );
    report.figure(
        "cache errors counted by the service",
        http::metric(started.service.port, "gravity_cache_errors_total")
            .await
            .unwrap_or(-1.0),
    );

    report.check(
        before.cache_hits > 0,
        "reads were served from the cache before the kill",
    );
    report.check(
        everything.server_errors() == 0 && everything.unanswered() == 0,
        "zero 5xx and no request left unanswered",
    );
    report.check(
        everything.count(200..=200) == everything.total,
        "every read answered 200 (from Postgres while Redis was dead)",
    );
    report.check(
        resumed_in.is_some_and(|waited| waited <= Duration::from_secs(3)),
        "cache hits resumed within 3 s of Redis returning, without a restart",
    );
    report
}

/// SIGSTOP the cache mid-load: Redis accepts nothing and answers nothing. Reads must keep
/// completing within the cache timeout plus the database time, and nothing may pile up.
pub async fn frozen(harness: Arc<Harness>) -> Report {
    let mut report = Report::new("Redis hangs (SIGSTOP), then resumes (SIGCONT)");
    let redis = OwnRedis::start();
    let started = harness.start_service("redis_frozen", Some(&redis), &[]).await;
    let service = &started.service;
    let ids = Arc::new(super::create_users(service.port, 50, "frozen").await);

    let load = Load::start(service.port, harness.connections, harness.rate, Mix::Reads(ids));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = service.rss_kib();
    let fds_before = service.open_fds();
    let stopped_at = load.now();
    signal(redis.pid(), "STOP");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let rss_frozen = service.rss_kib();
    let fds_frozen = service.open_fds();
    let continued_at = load.now();
    signal(redis.pid(), "CONT");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let outcomes = load.stop().await;
    let in_flight = http::metric(service.port, r#"gravity_db_queries_in_flight{pool="read"}"#)
        .await
        .unwrap_or(-1.0);

    let frozen = Tally::of(sent_within(&outcomes, stopped_at..continued_at));
    let after = Tally::of(sent_within(
        &outcomes,
        continued_at + Duration::from_secs(2)..Duration::MAX,
    ));
    let everything = Tally::of(&outcomes);
    let bound = CACHE_TIMEOUT + DB_TIME_ALLOWANCE;

    report.figure("requests", everything.total);
    report.figure("statuses", everything.statuses());
    report.figure("latency while Redis was frozen (4 s)", frozen.latency_summary());
    report.figure(
        "requests while frozen that waited over 50 ms",
        frozen_slow(&outcomes, stopped_at, continued_at),
    );
    report.figure(
        "resident memory before / while frozen",
        format!("{} / {}", mebibytes(rss_before), mebibytes(rss_frozen)),
    );
    report.figure(
        "open descriptors before / while frozen",
        format!("{fds_before} / {fds_frozen}"),
    );
    report.figure("cache hits from 2 s after SIGCONT", after.cache_hits);
    report.figure("queries in flight after the load", in_flight);

    report.check(
        everything.count(200..=200) == everything.total,
        "every read answered 200, none failed or went unanswered",
    );
    report.check(
        frozen.max() <= bound,
        format!(
            "every read while frozen took at most the cache timeout plus database time ({} ≤ {})",
            millis(frozen.max()),
            millis(bound)
        ),
    );
    report.check(
        rss_frozen <= rss_before + rss_before / 5 && fds_frozen <= fds_before + 4,
        "no pile-up: memory within 20% and descriptors within 4 of before the freeze",
    );
    report.check(after.cache_hits > 0, "cache hits resumed after SIGCONT");
    report
}

/// Reads that waited on Redis at all: with the breaker, about one per second of the freeze.
fn frozen_slow(outcomes: &[crate::load::Outcome], from: Duration, to: Duration) -> usize {
    sent_within(outcomes, from..to)
        .filter(|outcome| outcome.latency > Duration::from_millis(50))
        .count()
}

fn load_end(outcomes: &[crate::load::Outcome]) -> Duration {
    outcomes.last().map(|outcome| outcome.sent).unwrap_or_default()
}
