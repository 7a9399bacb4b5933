//! The read connections: a few long-lived connections that every read shares, pipelined.
//!
//! tokio-postgres pipelines: many requests can have queries in flight on one connection at once,
//! and the connection sends them back to back without waiting for each answer. So instead of a
//! checkout pool (one request per connection at a time), reads are handed to the connections in
//! turn. Only reads run here: they never wait on row locks, so none can stall the queries queued
//! behind it (writes, which can, have connections of their own: `write_pool`).

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

use super::ACQUIRE_WAIT;
use super::keeper::{LiveConnection, Slot};
use super::schema::SchemaWatch;
use crate::error::Error;

pub(crate) struct ReadPool {
    pub(crate) slots: Box<[Arc<Slot>]>,
    next: AtomicUsize,
    pub(crate) connected: Arc<Notify>,
    schema: SchemaWatch,
}

/// A read connection's turn, lent to one query; counts as in use until dropped.
pub(crate) struct ReadTurn {
    connection: Arc<LiveConnection>,
    slot: Arc<Slot>,
}

impl ReadPool {
    pub(crate) fn new(slots: Box<[Arc<Slot>]>, connected: Arc<Notify>, schema: SchemaWatch) -> ReadPool {
        ReadPool {
            slots,
            next: AtomicUsize::new(0),
            connected,
            schema,
        }
    }

    /// A live connection, taken in turn; waits up to `ACQUIRE_WAIT` when none is up.
    pub(crate) async fn turn(&self) -> Result<ReadTurn, Error> {
        if let Some(turn) = self.try_turn() {
            return Ok(turn);
        }
        let deadline = tokio::time::Instant::now() + ACQUIRE_WAIT;
        loop {
            let notified = self.connected.notified();
            if let Some(turn) = self.try_turn() {
                return Ok(turn);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(match self.schema.gap() {
                    Some(gap) => Error::SchemaBehind(gap.to_string()),
                    None => Error::Unavailable("no connection to Postgres is up".into()),
                });
            }
        }
    }

    fn try_turn(&self) -> Option<ReadTurn> {
        let slots = &self.slots;
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..slots.len()).find_map(|offset| {
            let slot = &slots[(start + offset) % slots.len()];
            let connection = slot.connection()?;
            slot.in_flight.fetch_add(1, Ordering::Relaxed);
            Some(ReadTurn {
                connection,
                slot: slot.clone(),
            })
        })
    }
}

impl Deref for ReadTurn {
    type Target = LiveConnection;

    fn deref(&self) -> &LiveConnection {
        &self.connection
    }
}

impl ReadTurn {
    /// Takes the connection out of turn: it was found dead while in use, and the next turn should
    /// wait for a live one rather than find this one again before its keeper notices.
    pub(crate) fn discard(self) {
        self.slot.discard(&self.connection);
    }
}

impl Drop for ReadTurn {
    fn drop(&mut self) {
        self.slot.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
