//! Postgres: `DB_POOL_SIZE` long-lived connections, split between reads (shared, pipelined:
//! `read_pool`) and writes (one per write: `write_pool`), so a write waiting on a row lock never
//! stalls a read. A keeper task per slot (`keeper`) reconnects a connection that dies; requests
//! that find none up wait briefly for one, then fail with 503, and nothing needs a restart.

/// Runs a read on a `ReadPool`, and runs it again on another connection (up to `READ_ATTEMPTS` in all) when its
/// connection turns out to be dead. Reads are safe to repeat, and this hides a terminated backend
/// or a restarting Postgres from the client whenever a connection comes back in time. (A macro
/// rather than a function taking an async closure, whose future could not be proven `Send`.)
macro_rules! read_with_retry {
    ($reads:expr, |$connection:ident| $query:expr) => {{
        let mut attempt = 1;
        loop {
            let turn = $reads.turn().await?;
            let outcome = {
                let $connection: &$crate::db::keeper::LiveConnection = &turn;
                $query.await
            };
            match outcome {
                Err(error) if attempt < $crate::db::READ_ATTEMPTS && $crate::error::is_connection_loss(&error) => {
                    turn.discard();
                    attempt += 1;
                }
                other => break other.map_err($crate::error::Error::from),
            }
        }
    }};
}

/// How many connections a read may try when connections die under it.
pub(crate) const READ_ATTEMPTS: u32 = 3;

pub(crate) mod connect;
pub(crate) mod idempotency_records;
pub(crate) mod keeper;
pub(crate) mod lookup_batches;
mod lost_sessions;
pub mod migrate;
mod read_pool;
pub mod schema;
pub(crate) mod user_queries;
pub(crate) mod write_pool;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Statement};

use crate::config::DatabaseSettings;
use crate::error::Error;
use crate::telemetry::log::Logger;
use crate::telemetry::metrics::PoolStats;
use connect::Connector;
use idempotency_records::{CLAIM, LOOK_UP, RECORD, SWEEP};
use keeper::Slot;
use read_pool::ReadPool;
use user_queries::{DELETE_USER, FIND_USERS, INSERT_USER, INSERT_USERS, LIST_AFTER, LIST_FIRST, UPDATE_USER};
use write_pool::{WriteConnection, WritePool};

/// How long a read waits for a connection to come back before it answers 503. Long enough to ride
/// out a killed backend (a reconnect takes milliseconds), short enough that a client in a real
/// outage hears about it quickly.
pub(crate) const ACQUIRE_WAIT: Duration = Duration::from_millis(1_000);

/// Shared handle to the connections; cheap to clone.
#[derive(Clone)]
pub(crate) struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    reads: ReadPool,
    writes: Arc<WritePool>,
    logger: Logger,
    /// Dropping the sender (with the last `Database`) tells every keeper to stop and close.
    _stop: watch::Sender<()>,
}

/// Every statement the service runs, prepared once per connection; the SQL of each is beside the
/// function that runs it.
pub(crate) struct Statements {
    pub(crate) ping: Statement,
    pub(crate) find_many: Statement,
    pub(crate) insert_one: Statement,
    pub(crate) insert_many: Statement,
    pub(crate) update: Statement,
    pub(crate) delete: Statement,
    pub(crate) list_first: Statement,
    pub(crate) list_after: Statement,
    pub(crate) claim: Statement,
    pub(crate) record: Statement,
    pub(crate) look_up: Statement,
    pub(crate) sweep: Statement,
    pub(crate) terminate: Statement,
}

impl Database {
    /// Starts the keepers; connections come up in the background. Half the pool, rounded down,
    /// is for writes (at least one), the rest for reads.
    pub(crate) fn start(connector: Connector, settings: &DatabaseSettings, logger: Logger) -> Database {
        let (stop, stopped) = watch::channel(());
        let write_count = (settings.pool_size / 2).max(1);
        let read_count = settings.pool_size.saturating_sub(write_count).max(1);
        let spawn_pool = |kind: &str, count: usize| -> (Box<[Arc<Slot>]>, Arc<Notify>) {
            let slots: Box<[Arc<Slot>]> = (0..count).map(|_| Arc::new(Slot::default())).collect();
            let connected = Arc::new(Notify::new());
            for (index, slot) in slots.iter().enumerate() {
                let name = format!("{kind} {index}");
                let (slot, connector, connected) = (slot.clone(), connector.clone(), connected.clone());
                tokio::spawn(keeper::keep(
                    name,
                    slot,
                    connector,
                    connected,
                    stopped.clone(),
                    logger.clone(),
                ));
            }
            (slots, connected)
        };
        let (slots, connected) = spawn_pool("read", read_count);
        let reads = ReadPool::new(slots, connected, connector.schema.clone());
        let (slots, changed) = spawn_pool("write", write_count);
        let writes = WritePool::new(slots, changed, connector.clone(), settings.extra_write_connections);
        Database {
            inner: Arc::new(Inner {
                reads,
                writes: Arc::new(writes),
                logger,
                _stop: stop,
            }),
        }
    }

    /// Waits until at least one read connection is up, or the timeout passes; `true` if one is.
    pub(crate) async fn wait_until_connected(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.inner.reads.turn())
            .await
            .is_ok_and(|turn| turn.is_ok())
    }

    pub(crate) fn reads(&self) -> &ReadPool {
        &self.inner.reads
    }

    /// A write connection of the caller's own, waiting for one until `deadline`.
    pub(crate) async fn checkout_writer(&self, deadline: tokio::time::Instant) -> Result<WriteConnection, Error> {
        self.inner.writes.checkout(deadline).await
    }

    /// Closes the write connections at shutdown, ending the statements still running on them
    /// (`WritePool::close`); how many may still commit.
    pub(crate) async fn close_writes(&self, patience: Duration) -> usize {
        self.inner.writes.close(patience).await
    }

    /// Whether Postgres answers a trivial query now.
    pub(crate) async fn ping(&self) -> Result<(), Error> {
        read_with_retry!(self.reads(), |connection| connection
            .client
            .execute(&connection.statements.ping, &[]))
        .map(|_| ())
    }

    /// The read and the write pool's figures.
    pub(crate) fn stats(&self) -> (PoolStats, PoolStats) {
        let mut writes = stats_of(&self.inner.writes.slots);
        writes.extra = self.inner.writes.extra_connections();
        writes.queries_in_flight += writes.extra;
        (stats_of(&self.inner.reads.slots), writes)
    }
}

fn stats_of(slots: &[Arc<Slot>]) -> PoolStats {
    let mut stats = PoolStats {
        size: slots.len(),
        ..PoolStats::default()
    };
    for slot in slots {
        let live = slot.connection().is_some();
        let in_flight = slot.in_flight.load(Ordering::Relaxed);
        stats.connected += usize::from(live);
        stats.in_use += usize::from(live && in_flight > 0);
        stats.queries_in_flight += in_flight;
    }
    stats
}

impl Statements {
    async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            ping: client.prepare("SELECT 1").await?,
            find_many: client.prepare_typed(FIND_USERS, &[Type::UUID_ARRAY]).await?,
            insert_one: client.prepare_typed(INSERT_USER, &[Type::TEXT; 3]).await?,
            insert_many: client.prepare_typed(INSERT_USERS, &[Type::TEXT_ARRAY; 3]).await?,
            update: client.prepare(UPDATE_USER).await?,
            delete: client.prepare(DELETE_USER).await?,
            list_first: client.prepare(LIST_FIRST).await?,
            list_after: client.prepare(LIST_AFTER).await?,
            claim: client.prepare(CLAIM).await?,
            record: client.prepare(RECORD).await?,
            look_up: client.prepare(LOOK_UP).await?,
            sweep: client.prepare(SWEEP).await?,
            terminate: client.prepare(lost_sessions::TERMINATE).await?,
        })
    }
}
