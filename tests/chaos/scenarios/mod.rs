//! The scenarios, in the order they run: one fault each, under steady load.

mod coherence;
mod fleet;
mod idempotent_writes;
mod postgres;
mod redis;
mod shutdown;
mod slow_clients;
mod slow_readers;
mod soak;

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::Harness;
use crate::load::Outcome;
use crate::report::Report;
use crate::support::http::{self, Response};

type Run = fn(Arc<Harness>) -> Pin<Box<dyn Future<Output = Report> + Send>>;

pub struct Scenario {
    /// What `CHAOS_ONLY` selects it by.
    pub name: &'static str,
    pub title: &'static str,
    pub run: Run,
}

pub const ALL: [Scenario; 13] = [
    Scenario {
        name: "redis-killed",
        title: "Redis dies mid-load (SIGKILL), then comes back",
        run: |harness| Box::pin(redis::killed(harness)),
    },
    Scenario {
        name: "redis-frozen",
        title: "Redis hangs (SIGSTOP), then resumes (SIGCONT)",
        run: |harness| Box::pin(redis::frozen(harness)),
    },
    Scenario {
        name: "redis-full",
        title: "Writes and reads while Redis is full (noeviction), then freed",
        run: |harness| Box::pin(coherence::redis_full_then_freed(harness)),
    },
    Scenario {
        name: "fleet",
        title: "A fleet of three replicas under every Redis fault and a writer's shutdown",
        run: |harness| Box::pin(fleet::fleet_without_copies(harness)),
    },
    Scenario {
        name: "fleet-copies",
        title: "The same fleet with in-process copies on",
        run: |harness| Box::pin(fleet::fleet_with_copies(harness)),
    },
    Scenario {
        name: "postgres-restart",
        title: "Postgres restarts mid-load",
        run: |harness| Box::pin(postgres::restart(harness)),
    },
    Scenario {
        name: "backends-terminated",
        title: "The service's Postgres connections are killed (pg_terminate_backend)",
        run: |harness| Box::pin(postgres::backends_terminated(harness)),
    },
    Scenario {
        name: "idempotent-writes",
        title: "Creates with Idempotency-Key, retried through killed sessions and a Postgres restart",
        run: |harness| Box::pin(idempotent_writes::retried_creates(harness)),
    },
    Scenario {
        name: "sigterm",
        title: "SIGTERM under load",
        run: |harness| Box::pin(shutdown::sigterm(harness)),
    },
    Scenario {
        name: "slow-clients",
        title: "200 slow clients trickle their headers (slowloris)",
        run: |harness| Box::pin(slow_clients::slowloris(harness)),
    },
    Scenario {
        name: "slow-uploaders",
        title: "200 clients upload their bodies slowly against MAX_CONNECTIONS=50",
        run: |harness| Box::pin(slow_clients::slow_uploaders(harness)),
    },
    Scenario {
        name: "slow-readers",
        title: "100 clients pipeline 300 requests each and never read (slow readers)",
        run: |harness| Box::pin(slow_readers::slow_readers(harness)),
    },
    Scenario {
        name: "soak",
        title: "Soak: mixed traffic with 10% bad requests",
        run: |harness| Box::pin(soak::soak(harness)),
    },
];

/// The outcomes of requests sent within `window` (times since the load started).
fn sent_within(outcomes: &[Outcome], window: Range<Duration>) -> impl Iterator<Item = &Outcome> {
    outcomes.iter().filter(move |outcome| window.contains(&outcome.sent))
}

fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

/// The users a reader picks, one after another: a xorshift sequence from its seed.
struct RandomUsers {
    state: u64,
    users: usize,
}

impl RandomUsers {
    fn new(seed: u64, users: usize) -> RandomUsers {
        RandomUsers {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            users,
        }
    }

    fn next(&mut self) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state % self.users as u64) as usize
    }
}

/// Creates `count` users and returns their ids.
pub async fn create_users(port: u16, count: usize, label: &str) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    for number in 0..count {
        let body = format!(r#"{{"name":"{label} {number}","email":"{label}-{number}@example.org"}}"#);
        let response = http::request(port, "POST", "/v1/users", &[], Some(&body))
            .await
            .expect("the service answers a create");
        assert_eq!(response.status, 201, "{}", response.text());
        ids.push(
            response.json()["id"]
                .as_str()
                .expect("a created user has an id")
                .to_owned(),
        );
    }
    ids
}

/// How the service answered a write.
enum WriteAnswer {
    Acknowledged,
    /// 503 saying nothing was written (e.g. Redis would not take the write's fence).
    Refused,
    /// Anything else.
    Failed,
}

/// PATCHes the user's name to `v{version}`.
async fn set_version(port: u16, id: &str, version: u64) -> WriteAnswer {
    let body = format!(r#"{{"name":"v{version}"}}"#);
    match http::request(port, "PATCH", &format!("/v1/users/{id}"), &[], Some(&body))
        .await
        .ok()
    {
        Some(response) if response.status == 200 => WriteAnswer::Acknowledged,
        Some(response) if response.status == 503 && response.detail().contains("nothing was written") => {
            WriteAnswer::Refused
        }
        _ => WriteAnswer::Failed,
    }
}

/// What a writer of the coherence scenarios counts besides its acknowledgements.
pub struct WriteCounts {
    pub refused: AtomicU64,
    pub failed: AtomicU64,
}

/// One writer of the coherence scenarios: round after round, with `pause` between rounds, writes
/// the next version to its share of the users (`(writer, writers)`: every `writers`-th of `ids`,
/// from `writer` on) until `stop`; `acknowledged(user, version)` after each 200, and the rest
/// counted as refused (nothing written) or failed.
async fn write_versions(
    port: u16,
    ids: &[String],
    (writer, writers): (usize, usize),
    pause: Duration,
    stop: &AtomicBool,
    counts: &WriteCounts,
    mut acknowledged: impl FnMut(usize, u64),
) {
    let mine: Vec<usize> = (writer..ids.len()).step_by(writers).collect();
    let mut version = 0u64;
    while !stop.load(Ordering::Relaxed) {
        version += 1;
        for &user in &mine {
            match set_version(port, &ids[user], version).await {
                WriteAnswer::Acknowledged => acknowledged(user, version),
                WriteAnswer::Refused => {
                    counts.refused.fetch_add(1, Ordering::Relaxed);
                }
                WriteAnswer::Failed => {
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        tokio::time::sleep(pause).await;
    }
}

/// The version a user's name carries (`v{version}`, as the writers set it; 0 for the first name).
fn version_in(response: &Response) -> u64 {
    response.json()["name"]
        .as_str()
        .and_then(|name| name.strip_prefix('v'))
        .and_then(|number| number.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
}

/// `MiB` with one decimal, from KiB.
fn mebibytes(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
