//! The write connections: each write takes one for itself, for the length of its transaction.
//!
//! A write can wait on a row lock (another session holds the row) for up to its lock timeout; on a
//! pipelined connection everything queued behind it would wait too. So writes never share a
//! connection: a writer checks one out, runs its transaction, and hands it back. A connection whose
//! transaction did not end cleanly (the writer stopped half-way, or the connection failed) is
//! discarded instead of handed back, so no later writer inherits an open transaction.

use std::ops::Deref;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::ACQUIRE_WAIT;
use super::keeper::{LiveConnection, Slot};
use crate::error::Error;

pub(crate) struct WritePool {
    pub(crate) slots: Box<[Arc<Slot>]>,
    /// Indexes of the slots no writer holds.
    free: Mutex<Vec<usize>>,
    /// Woken when a slot is handed back or a keeper connects one.
    pub(crate) changed: Arc<Notify>,
}

/// A write connection held by one writer until dropped.
pub(crate) struct WriteConnection {
    pool: Arc<WritePool>,
    index: usize,
    connection: Arc<LiveConnection>,
    /// Set once the writer's transaction has ended (committed or rolled back) on this connection.
    clean: bool,
}

impl WritePool {
    pub(crate) fn new(slots: Box<[Arc<Slot>]>, changed: Arc<Notify>) -> WritePool {
        let free = (0..slots.len()).collect();
        WritePool {
            slots,
            free: Mutex::new(free),
            changed,
        }
    }

    /// A live write connection of this writer's own. Waits for one until `deadline` while others
    /// hold them, but only `ACQUIRE_WAIT` while none is up (Postgres is away: say so soon).
    pub(crate) async fn checkout(self: &Arc<Self>, deadline: Instant) -> Result<WriteConnection, Error> {
        let mut none_up_since: Option<Instant> = None;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(connection) = self.try_checkout() {
                return Ok(connection);
            }
            let any_up = self.slots.iter().any(|slot| slot.connection().is_some());
            let give_up_at = if any_up {
                none_up_since = None;
                deadline
            } else {
                let since = *none_up_since.get_or_insert_with(Instant::now);
                deadline.min(since + ACQUIRE_WAIT)
            };
            if tokio::time::timeout_at(give_up_at, changed).await.is_err() {
                let why = if any_up {
                    "no write connection to Postgres became free in time"
                } else {
                    "no connection to Postgres is up"
                };
                return Err(Error::WriteNotApplied(why.into()));
            }
        }
    }

    fn try_checkout(self: &Arc<Self>) -> Option<WriteConnection> {
        let mut free = self.free.lock().unwrap_or_else(|poison| poison.into_inner());
        let position = free
            .iter()
            .position(|&index| self.slots[index].connection().is_some())?;
        let index = free.swap_remove(position);
        let connection = self.slots[index].connection()?;
        self.slots[index].in_flight.store(1, Ordering::Relaxed);
        Some(WriteConnection {
            pool: self.clone(),
            index,
            connection,
            clean: false,
        })
    }
}

impl WriteConnection {
    /// Records that the transaction ended (COMMIT or ROLLBACK answered): the connection can serve
    /// the next writer.
    pub(crate) fn mark_clean(&mut self) {
        self.clean = true;
    }
}

impl Deref for WriteConnection {
    type Target = LiveConnection;

    fn deref(&self) -> &LiveConnection {
        &self.connection
    }
}

impl Drop for WriteConnection {
    fn drop(&mut self) {
        let slot = &self.pool.slots[self.index];
        if !self.clean {
            slot.discard(&self.connection);
        }
        slot.in_flight.store(0, Ordering::Relaxed);
        self.pool
            .free
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(self.index);
        self.pool.changed.notify_waiters();
    }
}
