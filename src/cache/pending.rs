//! Removals that Redis has not confirmed yet, retried until it does.
//!
//! A write's removal that fails (Redis full, read-only, without replicas, unreachable, or silent
//! past the timeout) lands here. While anything is pending, the process serves no cached body and
//! stores none (`holds_back`): one flag read on the hot path, and the simplest rule that is safe
//! whichever key a pending removal concerns. A repairer task retries the removals with backoff;
//! an entry leaves the set only when a `DEL` sent after its last failure is confirmed, so a newer
//! write of the same user is never forgotten by an older success.
//!
//! The set is bounded (`MAX_PENDING` keys). Past that, and after a Redis restart, the process
//! forgets the individual keys and sweeps instead: it removes every key under its prefix
//! (`SCAN` + `UNLINK`) once Redis answers. Removing cached bodies is always safe for a cache; the
//! worst it costs is a round of misses.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use uuid::Uuid;

/// The most removals remembered one by one before falling back to a sweep of the prefix.
pub(crate) const MAX_PENDING: usize = 10_000;
/// Retry backoff: soon after the first failure, then doubling up to the cap.
pub(crate) const RETRY_MIN: Duration = Duration::from_millis(20);
pub(crate) const RETRY_MAX: Duration = Duration::from_millis(500);

#[derive(Default)]
pub(crate) struct PendingRemovals {
    state: Mutex<State>,
    /// Whether cached bodies are being held back; kept equal to `!state.is_clear()`.
    holding_back: AtomicBool,
    wake: Notify,
}

#[derive(Default)]
struct State {
    /// Each pending user's removal, by the sequence number of its latest failure.
    keys: HashMap<Uuid, u64>,
    next: u64,
    /// A sweep of the whole prefix is due (the set overflowed, or Redis restarted).
    sweep_due: bool,
    /// A sweep is under way.
    sweeping: bool,
}

/// Removals taken for one attempt: the keys with the sequence numbers they had when taken.
pub(crate) type Attempt = Vec<(Uuid, u64)>;

/// What the repairer should do next.
pub(crate) enum Work {
    Remove(Attempt),
    Sweep(Attempt),
}

impl PendingRemovals {
    /// Whether cached bodies must be held back (served from nowhere but Postgres) right now.
    pub(crate) fn holds_back(&self) -> bool {
        self.holding_back.load(Ordering::Acquire)
    }

    /// Records a removal that Redis did not confirm.
    pub(crate) fn add(&self, id: Uuid) {
        let mut state = self.lock();
        if state.keys.len() >= MAX_PENDING && !state.keys.contains_key(&id) {
            state.keys.clear();
            state.sweep_due = true;
        } else {
            state.next += 1;
            let sequence = state.next;
            state.keys.insert(id, sequence);
        }
        self.publish(&state);
        drop(state);
        self.wake.notify_one();
    }

    /// Every cached body under the prefix must go (Redis restarted with old data, or the set
    /// overflowed).
    pub(crate) fn require_sweep(&self) {
        let mut state = self.lock();
        state.sweep_due = true;
        self.publish(&state);
        drop(state);
        self.wake.notify_one();
    }

    /// How many removals are remembered one by one, and whether a sweep is due or running.
    pub(crate) fn figures(&self) -> (usize, bool) {
        let state = self.lock();
        (state.keys.len(), state.sweep_due || state.sweeping)
    }

    /// Waits for work and takes it: a sweep when one is due, else up to `batch` removals.
    pub(crate) async fn next_work(&self, batch: usize) -> Work {
        loop {
            let woken = self.wake.notified();
            {
                let mut state = self.lock();
                if state.sweep_due {
                    state.sweep_due = false;
                    state.sweeping = true;
                    let covered = state.keys.iter().map(|(id, sequence)| (*id, *sequence)).collect();
                    return Work::Sweep(covered);
                }
                if !state.keys.is_empty() {
                    let attempt = state
                        .keys
                        .iter()
                        .take(batch)
                        .map(|(id, sequence)| (*id, *sequence))
                        .collect();
                    return Work::Remove(attempt);
                }
            }
            woken.await;
        }
    }

    /// Redis confirmed the removals of `attempt`: each leaves the set unless it failed again since.
    pub(crate) fn confirmed(&self, attempt: &Attempt) {
        let mut state = self.lock();
        for (id, sequence) in attempt {
            if state.keys.get(id) == Some(sequence) {
                state.keys.remove(id);
            }
        }
        self.publish(&state);
    }

    /// A sweep finished: it covered every removal pending when it started.
    pub(crate) fn swept(&self, covered: &Attempt) {
        {
            let mut state = self.lock();
            state.sweeping = false;
        }
        self.confirmed(covered);
    }

    /// A sweep failed part-way: it must start again.
    pub(crate) fn sweep_failed(&self) {
        let mut state = self.lock();
        state.sweeping = false;
        state.sweep_due = true;
        self.publish(&state);
    }

    fn publish(&self, state: &State) {
        let clear = state.keys.is_empty() && !state.sweep_due && !state.sweeping;
        self.holding_back.store(!clear, Ordering::Release);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

/// The backoff after `failures` attempts in a row.
pub(crate) fn retry_delay(failures: u32) -> Duration {
    RETRY_MIN.saturating_mul(1u32 << failures.min(10)).min(RETRY_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[tokio::test]
    async fn a_removal_leaves_only_when_confirmed_after_its_latest_failure() {
        let pending = PendingRemovals::default();
        assert!(!pending.holds_back());
        pending.add(id(1));
        assert!(pending.holds_back());
        let Work::Remove(attempt) = pending.next_work(100).await else {
            panic!("a removal is due")
        };
        pending.add(id(1)); // the same user written again, and its removal failed again
        pending.confirmed(&attempt);
        assert!(pending.holds_back(), "the newer failure is still pending");
        let Work::Remove(attempt) = pending.next_work(100).await else {
            panic!("a removal is due")
        };
        pending.confirmed(&attempt);
        assert!(!pending.holds_back());
    }

    #[tokio::test]
    async fn an_overflowing_set_falls_back_to_a_sweep() {
        let pending = PendingRemovals::default();
        for n in 0..=MAX_PENDING as u128 {
            pending.add(id(n));
        }
        let (count, sweeping) = pending.figures();
        assert!(count <= MAX_PENDING && sweeping);
        let Work::Sweep(covered) = pending.next_work(100).await else {
            panic!("a sweep is due")
        };
        pending.add(id(u128::MAX)); // failed during the sweep: not covered by it
        pending.swept(&covered);
        assert!(pending.holds_back());
        let Work::Remove(attempt) = pending.next_work(100).await else {
            panic!("the removal that failed during the sweep is still due")
        };
        assert_eq!(attempt.len(), 1);
        pending.confirmed(&attempt);
        assert!(!pending.holds_back());
    }

    #[test]
    fn retries_back_off_to_the_cap() {
        assert_eq!(retry_delay(0), RETRY_MIN);
        assert_eq!(retry_delay(1), RETRY_MIN * 2);
        assert_eq!(retry_delay(30), RETRY_MAX);
    }
}
