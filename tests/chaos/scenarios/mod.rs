//! The scenarios, in the order they run: one fault each, under steady load.

mod postgres;
mod redis;
mod shutdown;
mod slow_clients;
mod soak;

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::Harness;
use crate::load::Outcome;
use crate::report::Report;

type Run = fn(Arc<Harness>) -> Pin<Box<dyn Future<Output = Report> + Send>>;

pub struct Scenario {
    /// What `CHAOS_ONLY` selects it by.
    pub name: &'static str,
    pub title: &'static str,
    pub run: Run,
}

pub const ALL: [Scenario; 7] = [
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

/// `MiB` with one decimal, from KiB.
fn mebibytes(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
