//! Exponential back-off between tries of something that failed, so that a dead peer is tried
//! often at first and then without flooding it or the log.

use std::time::Duration;

/// The waits between tries: `first`, then doubled after each failure, never above `cap`.
pub(crate) struct Backoff {
    first: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) const fn new(first: Duration, cap: Duration) -> Backoff {
        Backoff {
            first,
            cap,
            next: first,
        }
    }

    pub(crate) fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.cap);
        wait
    }

    /// After a success: the next failure waits `first` again.
    pub(crate) fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_start_over_after_a_success() {
        let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(100));
        let waits: Vec<u128> = (0..5).map(|_| backoff.next_wait().as_millis()).collect();
        assert_eq!(waits, [20, 40, 80, 100, 100]);
        backoff.reset();
        assert_eq!(backoff.next_wait(), Duration::from_millis(20));
    }
}
