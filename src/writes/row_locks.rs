//! Writes to the same row (or with the same Idempotency-Key) queue inside the process, so that at
//! most one of them holds a write connection while Postgres makes it wait for the row. Unrelated
//! writes never wait here.
//!
//! A map from the key to an async mutex; an entry lives only while someone holds or waits for it.
//! A write holds its turn until its fence is settled, so an empty map also tells a stopping
//! process that every fence lift has ended (`until_none_held`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Mutex as AsyncMutex, Notify, OwnedMutexGuard};
use uuid::Uuid;

/// What writes queue on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum RowKey {
    User(Uuid),
    /// An Idempotency-Key, by a hash of it (a collision only makes two writes queue needlessly).
    IdempotencyKey(u64),
}

#[derive(Default)]
pub(crate) struct RowLocks {
    held: Mutex<HashMap<RowKey, Arc<AsyncMutex<()>>>>,
    /// Woken when the last entry goes.
    emptied: Notify,
}

/// The right to write the row; the next writer of it goes on when this is dropped.
pub(crate) struct RowGuard<'a> {
    locks: &'a RowLocks,
    key: RowKey,
    guard: OwnedMutexGuard<()>,
}

impl RowLocks {
    pub(crate) async fn lock(&self, key: RowKey) -> RowGuard<'_> {
        let entry = self.entries().entry(key).or_default().clone();
        RowGuard {
            locks: self,
            key,
            guard: entry.lock_owned().await,
        }
    }

    /// Waits until nobody holds or waits for a turn, up to `patience`; whether that happened.
    pub(crate) async fn until_none_held(&self, patience: Duration) -> bool {
        let none_held = async {
            loop {
                // Registered before the check, so an emptying in between is not missed.
                let emptied = self.emptied.notified();
                tokio::pin!(emptied);
                emptied.as_mut().enable();
                if self.entries().is_empty() {
                    return;
                }
                emptied.await;
            }
        };
        tokio::time::timeout(patience, none_held).await.is_ok()
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<RowKey, Arc<AsyncMutex<()>>>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for RowGuard<'_> {
    fn drop(&mut self) {
        let mut held = self.locks.entries();
        // Two handles left (the map's and this guard's, released next): nobody else holds or awaits it.
        if Arc::strong_count(OwnedMutexGuard::mutex(&self.guard)) == 2 {
            held.remove(&self.key);
            if held.is_empty() {
                self.locks.emptied.notify_waiters();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl RowLocks {
        fn len(&self) -> usize {
            self.held.lock().unwrap().len()
        }
    }

    #[tokio::test]
    async fn writers_of_one_row_take_turns_and_others_do_not_wait() {
        let locks = RowLocks::default();
        let row = RowKey::User(Uuid::from_u128(1));
        let first = locks.lock(row).await;
        let same_row = tokio::time::timeout(Duration::from_millis(50), locks.lock(row)).await;
        assert!(same_row.is_err(), "a second writer of the row waits");
        let other_row =
            tokio::time::timeout(Duration::from_millis(50), locks.lock(RowKey::User(Uuid::from_u128(2)))).await;
        assert!(other_row.is_ok(), "a writer of another row does not");
        drop(other_row);
        drop(first);
        let again = tokio::time::timeout(Duration::from_millis(50), locks.lock(row)).await;
        assert!(again.is_ok(), "the row is free once the first writer is done");
        drop(again);
        assert_eq!(locks.len(), 0, "no entry outlives its writers");
    }

    #[tokio::test]
    async fn until_none_held_waits_for_the_last_turn_to_be_given_up() {
        let locks = RowLocks::default();
        let first = locks.lock(RowKey::User(Uuid::from_u128(1))).await;
        let second = locks.lock(RowKey::IdempotencyKey(7)).await;
        assert!(
            !locks.until_none_held(Duration::from_millis(20)).await,
            "two turns held"
        );
        drop(first);
        assert!(!locks.until_none_held(Duration::from_millis(20)).await, "one turn held");
        let waiting = locks.until_none_held(Duration::from_secs(5));
        let released = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(second);
        };
        let (none_held, ()) = tokio::join!(waiting, released);
        assert!(none_held, "woken once the last turn went");
    }
}
