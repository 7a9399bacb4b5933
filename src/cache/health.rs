//! How the cache copes with a sick Redis: a breaker that stops reads from waiting on it. Only
//! failures of Redis itself open it (no answer in time, a lost connection, a Redis that is no
//! primary any more: `link::is_transport_failure`); a bad value at one key, or Redis refusing one
//! command (`OOM`, `NOREPLICAS`), never does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long reads skip the cache after a failure before one request probes it again.
pub(crate) const OPEN_FOR: Duration = Duration::from_secs(1);

/// Closed (0), or open until a moment in milliseconds since `epoch`.
pub(crate) struct Breaker {
    open_until: AtomicU64,
    epoch: Instant,
}

impl Breaker {
    pub(crate) fn new() -> Breaker {
        Breaker {
            open_until: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether a call may go to Redis now. When the open period has passed, exactly one caller
    /// wins the right to probe; the rest keep skipping until the probe reports.
    pub(crate) fn allows(&self) -> bool {
        let open_until = self.open_until.load(Ordering::Relaxed);
        open_until == 0 || self.allows_at(open_until, self.now())
    }

    fn allows_at(&self, open_until: u64, now: u64) -> bool {
        if now < open_until {
            return false;
        }
        let probe_until = now + OPEN_FOR.as_millis() as u64;
        self.open_until
            .compare_exchange(open_until, probe_until, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Closes the breaker; a healthy cache only reads this shared cache line, never writes it.
    pub(crate) fn record_success(&self) {
        if self.open_until.load(Ordering::Relaxed) != 0 {
            self.open_until.store(0, Ordering::Relaxed);
        }
    }

    pub(crate) fn record_failure(&self) {
        let until = (self.now() + OPEN_FOR.as_millis() as u64).max(1);
        self.open_until.store(until, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_on_failure_and_lets_one_probe_through() {
        let breaker = Breaker::new();
        assert!(breaker.allows());
        breaker.record_failure();
        assert!(!breaker.allows());
        let open_until = breaker.open_until.load(Ordering::Relaxed);
        let after = open_until + 1;
        assert!(
            breaker.allows_at(open_until, after),
            "the first caller after the open period probes"
        );
        let probing = breaker.open_until.load(Ordering::Relaxed);
        assert!(!breaker.allows_at(probing, after), "the others wait for the probe");
        breaker.record_success();
        assert!(breaker.allows());
    }
}
