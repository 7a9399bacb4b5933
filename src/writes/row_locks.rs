//! Writes to the same row (or with the same Idempotency-Key) queue inside the process, so that at
//! most one of them holds a write connection while Postgres makes it wait for the row. Unrelated
//! writes never wait here.
//!
//! A map from the key to an async mutex; an entry lives only while someone holds or waits for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};
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
}

/// The right to write the row; the next writer of it goes on when this is dropped.
pub(crate) struct RowGuard<'a> {
    locks: &'a RowLocks,
    key: RowKey,
    guard: OwnedMutexGuard<()>,
}

impl RowLocks {
    pub(crate) async fn lock(&self, key: RowKey) -> RowGuard<'_> {
        let entry = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default()
            .clone();
        RowGuard {
            locks: self,
            key,
            guard: entry.lock_owned().await,
        }
    }
}

impl Drop for RowGuard<'_> {
    fn drop(&mut self) {
        let mut held = self.locks.held.lock().unwrap_or_else(PoisonError::into_inner);
        // Two handles left (the map's and this guard's, released next): nobody else holds or awaits it.
        if Arc::strong_count(OwnedMutexGuard::mutex(&self.guard)) == 2 {
            held.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
}
