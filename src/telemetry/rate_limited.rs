//! A rate-limited warning: a failure that can repeat thousands of times a second (every call to a
//! dead Redis, every failed `accept`) is logged at most once per interval, with the number of
//! like ones that were not, so an outage shows in the log without flooding it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::telemetry::json_writer::FieldValue;
use crate::telemetry::log::{Fields, Logger};

/// One kind of warning, logged at most once per `every`; shared by every task that may raise it.
pub(crate) struct RateLimitedWarning {
    logger: Logger,
    message: &'static str,
    every: Duration,
    /// Milliseconds after `epoch` when it was last logged (0: never).
    last_logged: AtomicU64,
    held_back: AtomicU64,
    epoch: Instant,
}

impl RateLimitedWarning {
    pub(crate) fn new(logger: Logger, message: &'static str, every: Duration) -> RateLimitedWarning {
        RateLimitedWarning {
            logger,
            message,
            every,
            last_logged: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Logs the warning with `fields`, `error.message` and `similar_errors_not_logged`, unless it
    /// was logged within the interval; then only counts it.
    pub(crate) fn warn(&self, error: &str, fields: Fields<'_>) {
        let now = u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let last = self.last_logged.load(Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= self.every.as_millis() as u64;
        if !due || self.last_logged.compare_exchange(last, now, Relaxed, Relaxed).is_err() {
            self.held_back.fetch_add(1, Relaxed);
            return;
        }
        let held_back = self.held_back.swap(0, Relaxed);
        let error: &dyn FieldValue = &error;
        let all = [
            fields,
            &[("error.message", error), ("similar_errors_not_logged", &held_back)],
        ]
        .concat();
        self.logger.warn(self.message, &all);
    }
}
