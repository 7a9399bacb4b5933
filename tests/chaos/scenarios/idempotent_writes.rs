//! Creates with an `Idempotency-Key`, retried by their clients until they get a definite answer,
//! while the service's Postgres sessions are terminated and then Postgres restarts. Whatever the
//! service said on the way (503 nothing written, 503 outcome unknown), every client ends with
//! exactly one user.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::Harness;
use crate::report::Report;
use crate::support::http;

const CLIENTS: usize = 16;
/// Between a client's attempts at one create.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// How long Postgres stays down.
const OUTAGE: Duration = Duration::from_secs(2);

/// What one client saw of one create.
#[derive(Default)]
struct Create {
    name: String,
    attempts: u32,
    not_applied: u32,
    unknown: u32,
    other_failures: u32,
    /// The definite answer it ended with.
    status: Option<u16>,
    /// The user id of the 201 (the same on every replay).
    id: Option<String>,
}

pub async fn retried_creates(harness: Arc<Harness>) -> Report {
    let mut report =
        Report::new("Creates with Idempotency-Key, retried through killed sessions and a Postgres restart");
    let started = harness.start_service("idempotent_writes", None, &[]).await;
    let port = started.service.port;
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        clients.spawn(client_loop(port, client, stop.clone()));
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let terminated = harness.cluster.terminate_service_sessions(&started.database).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cluster = harness.clone();
    tokio::task::spawn_blocking(move || cluster.cluster.stop("fast"))
        .await
        .expect("pg_ctl stop runs");
    tokio::time::sleep(OUTAGE).await;
    let cluster = harness.clone();
    tokio::task::spawn_blocking(move || cluster.cluster.start())
        .await
        .expect("pg_ctl start runs");
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let creates: Vec<Create> = clients.join_all().await.into_iter().flatten().collect();

    let database = harness.cluster.client(&started.database).await;
    let rows: BTreeMap<String, i64> = database
        .query("SELECT name, count(*) FROM users GROUP BY name", &[])
        .await
        .expect("the users can be counted")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let definite: Vec<&Create> = creates.iter().filter(|create| create.status.is_some()).collect();
    let created = definite.iter().filter(|create| create.status == Some(201)).count();
    let exactly_one = definite
        .iter()
        .filter(|create| create.status == Some(201) && rows.get(&create.name) == Some(&1))
        .count();
    let duplicated = rows.values().filter(|count| **count > 1).count();
    let orphans = rows
        .keys()
        .filter(|name| !creates.iter().any(|create| &create.name == *name))
        .count();
    let attempts: u32 = creates.iter().map(|create| create.attempts).sum();
    let not_applied: u32 = creates.iter().map(|create| create.not_applied).sum();
    let unknown: u32 = creates.iter().map(|create| create.unknown).sum();
    let other: u32 = creates.iter().map(|create| create.other_failures).sum();
    let retried = creates.iter().filter(|create| create.attempts > 1).count();

    report.figure("clients", CLIENTS);
    report.figure("creates started", creates.len());
    report.figure("creates that ended with a definite answer", definite.len());
    report.figure("… of them 201", created);
    report.figure("attempts in all", attempts);
    report.figure("creates that needed a retry", retried);
    report.figure(
        "503 nothing written / outcome unknown",
        format!("{not_applied} / {unknown}"),
    );
    report.figure("other failed attempts (no answer, refused)", other);
    report.figure("sessions terminated", terminated);
    report.figure(
        "rows: users with exactly one row / duplicated / with no client",
        format!(
            "{} / {duplicated} / {orphans}",
            rows.values().filter(|count| **count == 1).count()
        ),
    );
    report.check(retried > 0, "the faults made some clients retry");
    report.check(
        definite.iter().all(|create| create.status == Some(201)),
        "every create that got a definite answer got 201 (never a 409 for its own user)",
    );
    report.check(
        exactly_one == created,
        "every client that got its 201 has exactly one row",
    );
    report.check(duplicated == 0, "no create was written twice");
    report
}

/// Creates users one after another, each retried with its key until a definite answer (or the
/// end of the run); returns what each create saw.
async fn client_loop(port: u16, client: usize, stop: Arc<AtomicBool>) -> Vec<Create> {
    let mut creates = Vec::new();
    let mut number = 0;
    while !stop.load(Ordering::Relaxed) {
        number += 1;
        let name = format!("client {client} create {number}");
        let key = format!("chaos-{client}-{number}");
        let body = format!(r#"{{"name":"{name}"}}"#);
        let mut create = Create {
            name,
            ..Create::default()
        };
        while create.status.is_none() {
            create.attempts += 1;
            let headers = [("Idempotency-Key", key.as_str())];
            let response = http::request(port, "POST", "/v1/users", &headers, Some(&body))
                .await
                .ok();
            match response {
                Some(response) if response.status == 503 => {
                    if response.detail().contains("unknown") {
                        create.unknown += 1;
                    } else {
                        create.not_applied += 1;
                    }
                }
                Some(response) => {
                    create.status = Some(response.status);
                    create.id = response.json()["id"].as_str().map(str::to_owned);
                }
                None => create.other_failures += 1,
            }
            if create.status.is_none() {
                // A client that retried until a definite answer: keep going past the stop.
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
        creates.push(create);
    }
    creates
}
