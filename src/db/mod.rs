//! Postgres: a small set of long-lived connections shared by all requests.
//!
//! tokio-postgres pipelines: many requests can have queries in flight on one connection at once,
//! and the connection sends them back to back without waiting for each answer. So instead of a
//! checkout pool (one request per connection at a time), `Database` keeps `DB_POOL_SIZE`
//! connections open and hands each query to the next one in turn. Every query the service runs is
//! a single statement, so none needs a connection of its own for a transaction.
//!
//! Each connection slot has a keeper task that connects, prepares every statement once, stores
//! the ready connection in the slot, drives it, and when it dies (Postgres restarted, the backend
//! was terminated) empties the slot and reconnects with a short backoff. Requests that find no
//! live connection wait briefly for one and then fail with 503; nothing needs a restart.

/// Runs a read, and runs it again on another connection (up to `READ_ATTEMPTS` in all) when its
/// connection turns out to be dead. Reads are safe to repeat, and this hides a terminated backend
/// or a restarting Postgres from the client whenever a connection comes back in time. (A macro
/// rather than a function taking an async closure, whose future could not be proven `Send`.)
macro_rules! read_with_retry {
    ($db:expr, |$connection:ident| $query:expr) => {{
        let mut attempt = 1;
        loop {
            let lease = $db.lease().await?;
            let outcome = {
                let $connection: &$crate::db::LiveConnection = &lease;
                $query.await
            };
            match outcome {
                Err(error) if attempt < $crate::db::READ_ATTEMPTS && $crate::error::is_connection_loss(&error) => {
                    // Take the dead connection out of turn now, so the next lease waits for a
                    // live one rather than finding this one again before its keeper notices.
                    lease.discard();
                    attempt += 1;
                }
                other => break other.map_err($crate::error::Error::from),
            }
        }
    }};
}

/// How many connections a read may try when connections die under it.
pub const READ_ATTEMPTS: u32 = 3;

pub mod connect;
pub mod migrate;
pub mod users;

use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_postgres::{Client, Statement};

use crate::config::{ConfigError, DatabaseSettings};
use crate::error::Error;
use crate::telemetry::log::Logger;
use connect::Connector;

/// How long a request waits for a connection to come back before it answers 503. Long enough to
/// ride out a killed backend (a reconnect takes milliseconds), short enough that a client in a
/// real outage hears about it quickly.
pub const ACQUIRE_WAIT: Duration = Duration::from_millis(1_000);

/// Reconnect backoff: first retry almost at once, then doubling up to the cap. The cap keeps the
/// recovery after Postgres returns well under the contract's 2 s.
const RECONNECT_MIN: Duration = Duration::from_millis(50);
const RECONNECT_MAX: Duration = Duration::from_millis(500);

/// Shared handle to the connections; cheap to clone.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    slots: Box<[Arc<Slot>]>,
    next: AtomicUsize,
    connected: Arc<Notify>,
    /// Dropping the sender (with the last `Database`) tells every keeper to stop and close.
    _stop: watch::Sender<()>,
}

#[derive(Default)]
struct Slot {
    live: RwLock<Option<Arc<LiveConnection>>>,
    in_flight: AtomicUsize,
}

/// A connected client with its statements prepared.
pub struct LiveConnection {
    pub client: Client,
    pub statements: Statements,
}

/// Every statement the service runs, prepared once per connection.
pub struct Statements {
    pub ping: Statement,
    pub users: users::UserStatements,
}

/// A connection lent to one query; counts as in use until dropped.
pub struct Lease {
    connection: Arc<LiveConnection>,
    slot: Arc<Slot>,
}

/// Connection figures for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub size: usize,
    pub connected: usize,
    /// Connected with at least one query in flight.
    pub in_use: usize,
    pub queries_in_flight: usize,
}

const PING: &str = "SELECT 1";

impl Database {
    /// Starts the keepers; connections come up in the background.
    pub fn start(settings: &DatabaseSettings, logger: Logger) -> Result<Database, ConfigError> {
        let connector = Connector::new(settings, "gravity-bff")?;
        let (stop, stopped) = watch::channel(());
        let connected = Arc::new(Notify::new());
        let slots: Box<[Arc<Slot>]> = (0..settings.pool_size).map(|_| Arc::new(Slot::default())).collect();
        for (index, slot) in slots.iter().enumerate() {
            let keeper = Keeper {
                index,
                slot: slot.clone(),
                connector: connector.clone(),
                connected: connected.clone(),
                stopped: stopped.clone(),
                logger: logger.clone(),
            };
            tokio::spawn(keeper.run());
        }
        Ok(Database {
            inner: Arc::new(Inner {
                slots,
                next: AtomicUsize::new(0),
                connected,
                _stop: stop,
            }),
        })
    }

    /// Waits until at least one connection is up, or the timeout passes; `true` if one is.
    pub async fn wait_until_connected(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.lease())
            .await
            .is_ok_and(|lease| lease.is_ok())
    }

    /// A live connection, taken in turn; waits up to `ACQUIRE_WAIT` when none is up.
    pub async fn lease(&self) -> Result<Lease, Error> {
        if let Some(lease) = self.try_lease() {
            return Ok(lease);
        }
        let deadline = tokio::time::Instant::now() + ACQUIRE_WAIT;
        loop {
            let notified = self.inner.connected.notified();
            if let Some(lease) = self.try_lease() {
                return Ok(lease);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Error::Unavailable("no connection to Postgres is up".into()));
            }
        }
    }

    fn try_lease(&self) -> Option<Lease> {
        let slots = &self.inner.slots;
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        (0..slots.len()).find_map(|offset| {
            let slot = &slots[(start + offset) % slots.len()];
            let connection = slot.live.read().unwrap_or_else(|poison| poison.into_inner()).clone()?;
            if connection.client.is_closed() {
                return None;
            }
            slot.in_flight.fetch_add(1, Ordering::Relaxed);
            Some(Lease {
                connection,
                slot: slot.clone(),
            })
        })
    }

    /// Whether Postgres answers a trivial query now.
    pub async fn ping(&self) -> Result<(), Error> {
        read_with_retry!(self, |connection| connection
            .client
            .execute(&connection.statements.ping, &[]))
        .map(|_| ())
    }

    pub fn stats(&self) -> PoolStats {
        let mut stats = PoolStats {
            size: self.inner.slots.len(),
            ..PoolStats::default()
        };
        for slot in self.inner.slots.iter() {
            let live = slot
                .live
                .read()
                .unwrap_or_else(|poison| poison.into_inner())
                .as_ref()
                .is_some_and(|connection| !connection.client.is_closed());
            let in_flight = slot.in_flight.load(Ordering::Relaxed);
            stats.connected += usize::from(live);
            stats.in_use += usize::from(live && in_flight > 0);
            stats.queries_in_flight += in_flight;
        }
        stats
    }
}

impl Deref for Lease {
    type Target = LiveConnection;

    fn deref(&self) -> &LiveConnection {
        &self.connection
    }
}

impl Lease {
    /// Empties this lease's slot if it still holds this connection (and not already the keeper's
    /// replacement): the connection was found dead while in use.
    pub fn discard(self) {
        let mut live = self.slot.live.write().unwrap_or_else(|poison| poison.into_inner());
        if live
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, &self.connection))
        {
            *live = None;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.slot.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Keeps one slot connected for as long as the `Database` lives.
struct Keeper {
    index: usize,
    slot: Arc<Slot>,
    connector: Connector,
    connected: Arc<Notify>,
    stopped: watch::Receiver<()>,
    logger: Logger,
}

impl Keeper {
    async fn run(self) {
        let mut stopped = self.stopped.clone();
        let mut backoff = RECONNECT_MIN;
        let mut failures: u32 = 0;
        loop {
            let attempt = tokio::select! {
                attempt = self.open() => attempt,
                _ = stopped.changed() => return,
            };
            match attempt {
                Ok((connection, driver)) => {
                    if failures > 0 {
                        self.logger
                            .info("postgres connection restored", &[("slot", &self.index.to_string())]);
                    }
                    failures = 0;
                    backoff = RECONNECT_MIN;
                    self.store(Some(connection));
                    let outcome = tokio::select! {
                        outcome = driver => outcome,
                        _ = stopped.changed() => return,
                    };
                    self.store(None);
                    let reason = match outcome {
                        Ok(()) => "closed by the server".to_owned(),
                        Err(error) => crate::error::chain(&error),
                    };
                    self.logger.warn(
                        "postgres connection lost",
                        &[("slot", &self.index.to_string()), ("error", &reason)],
                    );
                }
                Err(error) => {
                    failures += 1;
                    // The first failure and then one in twenty: enough to see an outage, not a flood.
                    if failures == 1 || failures.is_multiple_of(20) {
                        self.logger.warn(
                            "postgres connection failed",
                            &[
                                ("slot", &self.index.to_string()),
                                ("attempts", &failures.to_string()),
                                ("error", &crate::error::chain(&error)),
                            ],
                        );
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stopped.changed() => return,
            }
            backoff = (backoff * 2).min(RECONNECT_MAX);
        }
    }

    /// Connects and prepares; the driver runs alongside while statements are prepared.
    async fn open(&self) -> Result<(Arc<LiveConnection>, connect::Driver), tokio_postgres::Error> {
        let (client, mut driver) = self.connector.connect().await?;
        let prepared = {
            let prepare = prepare_statements(&client);
            tokio::pin!(prepare);
            tokio::select! {
                prepared = &mut prepare => prepared,
                ended = &mut driver => {
                    ended?;
                    prepare.await
                }
            }
        };
        let statements = prepared?;
        Ok((Arc::new(LiveConnection { client, statements }), driver))
    }

    fn store(&self, connection: Option<Arc<LiveConnection>>) {
        let is_up = connection.is_some();
        *self.slot.live.write().unwrap_or_else(|poison| poison.into_inner()) = connection;
        if is_up {
            self.connected.notify_waiters();
        }
    }
}

async fn prepare_statements(client: &Client) -> Result<Statements, tokio_postgres::Error> {
    Ok(Statements {
        ping: client.prepare(PING).await?,
        users: users::UserStatements::prepare(client).await?,
    })
}
