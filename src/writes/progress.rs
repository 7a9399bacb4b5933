//! How far a write has got, shared by the request that asked for it and the task that runs it, so
//! that whoever gives up first knows what the client may be told. A write is `Queued` until the
//! task sends its first statement, then `Sent`. The request may abandon a queued write, which is
//! then never sent ("nothing was written" is the truth); a sent write runs to completion whatever
//! happens to the request, which can then only say the outcome is unknown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use tokio::time::Instant;

use crate::error::Error;

const QUEUED: u8 = 0;
const SENT: u8 = 1;
const ABANDONED: u8 = 2;

/// One write's progress.
#[derive(Debug)]
pub(crate) struct WriteProgress {
    state: AtomicU8,
    pub(crate) deadline: Instant,
    /// Queued behind a request with the same Idempotency-Key, which may yet succeed.
    behind_its_key: AtomicBool,
}

/// Held by the request while it waits for its write: dropping it (the client went away, the
/// deadline passed) abandons the write if it has not been sent yet.
pub(crate) struct WaitingForWrite(Arc<WriteProgress>);

impl WriteProgress {
    /// A write's progress, and the request's hold on it while it waits.
    pub(crate) fn start(deadline: Instant) -> (Arc<WriteProgress>, WaitingForWrite) {
        let progress = Arc::new(WriteProgress {
            state: AtomicU8::new(QUEUED),
            deadline,
            behind_its_key: AtomicBool::new(false),
        });
        (progress.clone(), WaitingForWrite(progress))
    }

    /// Whether the write waits behind a request with the same Idempotency-Key.
    pub(crate) fn set_behind_its_key(&self, behind: bool) {
        self.behind_its_key.store(behind, Ordering::Release);
    }

    /// The error for a request whose deadline passed: a write that never went out (nothing
    /// written, or the same key's request still in progress), or one already sent (outcome unknown).
    pub(crate) fn timed_out(&self) -> Error {
        match self.abandon() {
            true if self.behind_its_key.load(Ordering::Acquire) => Error::IdempotencyKeyInProgress,
            true => Error::WriteNotApplied("the request deadline passed before the write was sent".into()),
            false => Error::WriteOutcomeUnknown("the request deadline passed while the write was in progress".into()),
        }
    }

    /// Called by the task just before it sends the write: `false` if the request gave up first,
    /// and the write must not be sent.
    pub(crate) fn mark_sent(&self) -> bool {
        let moved = self
            .state
            .compare_exchange(QUEUED, SENT, Ordering::AcqRel, Ordering::Acquire);
        moved.is_ok() || moved == Err(SENT)
    }

    /// Called by the request when it gives up: `true` if the write had not been sent (and now
    /// never will be), `false` if it was already on its way.
    fn abandon(&self) -> bool {
        let moved = self
            .state
            .compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire);
        moved.is_ok() || moved == Err(ABANDONED)
    }
}

impl Drop for WaitingForWrite {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_abandoned_before_it_is_sent_is_never_sent() {
        let (progress, waiting) = WriteProgress::start(Instant::now());
        drop(waiting);
        assert!(!progress.mark_sent());
        assert!(matches!(progress.timed_out(), Error::WriteNotApplied(_)));
    }

    #[test]
    fn a_write_still_behind_a_request_with_its_key_at_the_deadline_is_told_that_one_is_in_progress() {
        let (progress, _waiting) = WriteProgress::start(Instant::now());
        progress.set_behind_its_key(true);
        assert!(matches!(progress.timed_out(), Error::IdempotencyKeyInProgress));
        assert!(!progress.mark_sent(), "and it is never sent");
        progress.set_behind_its_key(false);
        assert!(matches!(progress.timed_out(), Error::WriteNotApplied(_)));
    }

    #[test]
    fn a_write_sent_before_the_deadline_has_an_unknown_outcome_at_the_deadline() {
        let (progress, waiting) = WriteProgress::start(Instant::now());
        assert!(progress.mark_sent());
        drop(waiting);
        assert!(progress.mark_sent(), "the task may go on");
        assert!(matches!(progress.timed_out(), Error::WriteOutcomeUnknown(_)));
    }
}
