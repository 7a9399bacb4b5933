//! Keeping one connection slot connected: connect, prepare every statement, publish the ready
//! connection in the slot, drive it, and when it dies (Postgres restarted, the backend was
//! terminated, a user discarded it) empty the slot and reconnect with a short capped backoff.
//! Both pools are made of such slots.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_postgres::Client;

use super::Statements;
use super::connect::{Connector, Driver};
use super::lost_sessions::Session;
use super::schema::{self, SchemaGap};
use crate::backoff::Backoff;
use crate::telemetry::log::Logger;
use crate::telemetry::rate_limited::RateLimitedWarning;

/// Reconnect back-off: the cap keeps the recovery after Postgres returns well under a second.
const RECONNECT_FIRST: Duration = Duration::from_millis(50);
const RECONNECT_CAP: Duration = Duration::from_millis(500);
/// Failed attempts of one slot are logged at most this often: enough to see an outage, not a flood.
const FAILURES_LOGGED_EVERY: Duration = Duration::from_secs(5);
/// A schema behind this release is looked at again this often (only a migration fixes it).
const SCHEMA_RECHECK_EVERY: Duration = Duration::from_secs(1);

/// Postgres 14+: a statement whose client is gone (a process killed without its drain) ends within a
/// second rather than running on to commit over the client's next write (docs/API.md, Writes).
const CHECK_CLIENT: &str = "SET client_connection_check_interval = 1000";

/// One connection's place in a pool: empty while (re)connecting.
#[derive(Default)]
pub(crate) struct Slot {
    live: RwLock<Option<Arc<LiveConnection>>>,
    /// Queries sent on this slot's connection and not yet answered (read pool), or 1 while a
    /// writer holds it (write pool).
    pub(crate) in_flight: AtomicUsize,
}

/// A connected client with its statements prepared.
pub(crate) struct LiveConnection {
    pub(crate) client: Client,
    pub(crate) statements: Statements,
    /// Its session in Postgres, to end it if the connection is lost under a write.
    pub(crate) session: Session,
}

impl Slot {
    /// The slot's connection, if it is up and not known to be closed.
    pub(crate) fn connection(&self) -> Option<Arc<LiveConnection>> {
        let connection = self.live.read().unwrap_or_else(PoisonError::into_inner).clone()?;
        (!connection.client.is_closed()).then_some(connection)
    }

    /// Empties the slot if it still holds `connection` (and not already the keeper's replacement).
    /// Dropping the last handle to the client closes it; the keeper then reconnects.
    pub(crate) fn discard(&self, connection: &Arc<LiveConnection>) {
        let mut live = self.live.write().unwrap_or_else(PoisonError::into_inner);
        if live.as_ref().is_some_and(|current| Arc::ptr_eq(current, connection)) {
            *live = None;
        }
    }

    fn store(&self, connection: Option<Arc<LiveConnection>>) {
        *self.live.write().unwrap_or_else(PoisonError::into_inner) = connection;
    }
}

/// Keeps `slot` connected until `stopped` fires (the last `Database` is gone), waking `connected`
/// whenever the slot gets a fresh connection; `name` (`read 0`, `write 1`, …) is for the log.
pub(crate) async fn keep(
    name: String,
    slot: Arc<Slot>,
    connector: Connector,
    connected: Arc<Notify>,
    mut stopped: watch::Receiver<()>,
    logger: Logger,
) {
    let mut backoff = Backoff::new(RECONNECT_FIRST, RECONNECT_CAP);
    let warning = |message| RateLimitedWarning::new(logger.clone(), message, FAILURES_LOGGED_EVERY);
    let failures = warning("postgres connection failed");
    let schema_behind = warning("postgres schema is not this release's; serving 503 until it is migrated");
    let mut failed = false;
    loop {
        let attempt = tokio::select! {
            attempt = open(&connector) => attempt,
            _ = stopped.changed() => return,
        };
        let failed_before = std::mem::replace(&mut failed, attempt.is_err());
        match attempt {
            Ok((connection, driver)) => {
                if failed_before {
                    logger.info("postgres connection restored", &[("slot", &name)]);
                }
                backoff.reset();
                slot.store(Some(connection));
                connected.notify_waiters();
                let outcome = tokio::select! {
                    outcome = driver => outcome,
                    _ = stopped.changed() => return,
                };
                slot.store(None);
                let reason = match outcome {
                    Ok(()) => "closed by the server".to_owned(),
                    Err(error) => crate::error::chain(&error),
                };
                logger.warn(
                    "postgres connection lost",
                    &[("slot", &name), ("error.message", &reason)],
                );
            }
            Err(OpenError::Postgres(error)) => failures.warn(&crate::error::chain(&error), &[("slot", &name)]),
            Err(OpenError::Schema(gap)) => schema_behind.warn(&gap.to_string(), &[("slot", &name)]),
        }
        let floor = connector.schema.gap().map_or(Duration::ZERO, |_| SCHEMA_RECHECK_EVERY);
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_wait().max(floor)) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Why a connection could not be opened.
pub(crate) enum OpenError {
    Postgres(tokio_postgres::Error),
    /// Postgres answered, but its schema is not this release's (recorded in `connector.schema`).
    Schema(SchemaGap),
}

/// Connects, checks the schema (recording what it found in `connector.schema`) and prepares,
/// driving the connection meanwhile; the caller drives the returned driver from then on.
pub(crate) async fn open(connector: &Connector) -> Result<(Arc<LiveConnection>, Driver), OpenError> {
    let (client, mut driver) = connector.connect().await.map_err(OpenError::Postgres)?;
    let (statements, session) = {
        let prepare = async {
            let gap = schema::check(&client).await.map_err(OpenError::Postgres)?;
            connector.schema.record(gap);
            match gap {
                Some(gap) => Err(OpenError::Schema(gap)),
                None => {
                    let prepared = async { tokio::try_join!(Statements::prepare(&client), Session::of(&client)) };
                    // Postgres 13 does not know the setting, and goes without it.
                    let (prepared, _) = tokio::join!(prepared, client.batch_execute(CHECK_CLIENT));
                    prepared.map_err(OpenError::Postgres)
                }
            }
        };
        tokio::pin!(prepare);
        tokio::select! {
            prepared = &mut prepare => prepared,
            ended = &mut driver => {
                ended.map_err(OpenError::Postgres)?;
                prepare.await
            }
        }
    }?;
    let connection = LiveConnection {
        client,
        statements,
        session,
    };
    Ok((Arc::new(connection), driver))
}
