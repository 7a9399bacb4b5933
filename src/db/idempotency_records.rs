//! The `idempotency_keys` table: claiming a key, recording the response, replaying it, and
//! sweeping expired records. SQL beside the function that runs it.
//!
//! A key is claimed at the start of the write's transaction (the claim row is invisible to others
//! until the commit, and a concurrent claim of the same key waits on it), and the response is
//! recorded in the same transaction just before the commit. So a record exists exactly when its
//! write does. The fingerprint is computed by Postgres (`sha256`), so no hashing code ships here.
//! A record belongs to the subject that claimed it (`Recorded::Different`).

use std::time::Duration;

use crate::db::Database;
use crate::db::connect::STATEMENT_TIMEOUT;
use crate::db::keeper::LiveConnection;
use crate::error::Error;
use crate::telemetry::log::Logger;

/// How long a record is replayed, in seconds (as `make_interval` takes them); then the key is free.
const LIFETIME_SECONDS: f64 = 24.0 * 3600.0;

/// How many expired records one sweep statement deletes, so a sweep never holds many row locks.
const SWEEP_BATCH: i64 = 1_000;

/// Inserts the claim, or takes over an expired record; a live record (or a concurrent claim that
/// then commits) leaves nothing returned. A concurrent claim still in progress makes this wait.
pub(super) const CLAIM: &str = "INSERT INTO idempotency_keys (key, subject, fingerprint) VALUES ($1, $2, sha256($3)) \
     ON CONFLICT (key) DO UPDATE SET subject = EXCLUDED.subject, fingerprint = EXCLUDED.fingerprint, \
       status = NULL, body = NULL, location = NULL, created_at = now() \
     WHERE idempotency_keys.created_at < now() - make_interval(secs => $4) \
     RETURNING key";

pub(super) const RECORD: &str = "UPDATE idempotency_keys SET status = $2, body = $3, location = $4 WHERE key = $1";

pub(super) const LOOK_UP: &str = "SELECT subject = $2 AND fingerprint = sha256($3), status, body, location \
     FROM idempotency_keys \
     WHERE key = $1 AND created_at >= now() - make_interval(secs => $4) AND status IS NOT NULL";

/// Deletes a batch of expired records. A record a claim is taking over is locked: it is skipped,
/// and the expiry is checked again on the row as it is when deleted, so a takeover that committed
/// meanwhile (a fresh record, its write made) is never deleted.
pub(super) const SWEEP: &str = "DELETE FROM idempotency_keys \
     WHERE created_at < now() - make_interval(secs => $2) AND key IN ( \
       SELECT key FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $2) \
       LIMIT $1 FOR UPDATE SKIP LOCKED \
     )";

/// What a record is found by: the key, and the subject it belongs to ('' for anonymous callers).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RecordKey {
    pub(crate) subject: String,
    pub(crate) key: String,
}

/// A first response, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredResponse {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    pub(crate) location: Option<String>,
}

/// What a look-up found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// The same request was made before: here is its response.
    Same(StoredResponse),
    /// The key was used for another request, or by another subject.
    Different,
    /// No live record (never used, expired, or its write rolled back).
    Nothing,
}

/// Claims `key` for the request whose fingerprint input is `request`; `false` when a live
/// record holds it.
pub(crate) async fn claim(
    connection: &LiveConnection,
    key: &RecordKey,
    request: &[u8],
) -> Result<bool, tokio_postgres::Error> {
    let rows = connection
        .client
        .query(
            &connection.statements.claim,
            &[&key.key, &key.subject, &request, &LIFETIME_SECONDS],
        )
        .await?;
    Ok(!rows.is_empty())
}

/// Records the response of the claimed key, inside the write's transaction.
pub(crate) async fn record(
    connection: &LiveConnection,
    key: &RecordKey,
    response: &StoredResponse,
) -> Result<(), tokio_postgres::Error> {
    let status = i16::try_from(response.status).unwrap_or(i16::MAX);
    connection
        .client
        .execute(
            &connection.statements.record,
            &[&key.key, &status, &response.body, &response.location],
        )
        .await?;
    Ok(())
}

/// What is recorded for `key`, compared with the request at hand and its subject.
pub(crate) async fn look_up(
    connection: &LiveConnection,
    key: &RecordKey,
    request: &[u8],
) -> Result<Recorded, tokio_postgres::Error> {
    let row = connection
        .client
        .query_opt(
            &connection.statements.look_up,
            &[&key.key, &key.subject, &request, &LIFETIME_SECONDS],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Recorded::Nothing);
    };
    if !row.try_get::<_, bool>(0)? {
        return Ok(Recorded::Different);
    }
    let status: i16 = row.try_get(1)?;
    Ok(Recorded::Same(StoredResponse {
        status: u16::try_from(status).unwrap_or_default(),
        body: row.try_get(2)?,
        location: row.try_get(3)?,
    }))
}

/// Whether `key` is recorded for another request than `request`, or by another subject (read on a
/// shared connection): a request that writes nothing is refused for reusing a key all the same.
pub(crate) async fn used_for_another(db: &Database, key: &RecordKey, request: &[u8]) -> Result<bool, Error> {
    let recorded = read_with_retry!(db.reads(), |connection| look_up(connection, key, request))?;
    Ok(recorded == Recorded::Different)
}

/// Deletes expired records every `every`, for as long as the process runs. Every replica does it;
/// they do not get in each other's way (each deletes a batch at a time).
pub(crate) async fn keep_sweeping(db: Database, logger: Logger, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let deadline = tokio::time::Instant::now() + STATEMENT_TIMEOUT;
        let Ok(mut connection) = db.checkout_writer(deadline).await else {
            continue;
        };
        match sweep_expired(&connection).await {
            Ok(deleted) => {
                connection.mark_clean();
                if deleted > 0 {
                    logger.info("expired idempotency keys deleted", &[("count", &deleted)]);
                }
            }
            Err(error) => logger.warn(
                "expired idempotency keys could not be deleted",
                &[("error.message", &crate::error::chain(&error))],
            ),
        }
    }
}

/// Deletes expired records, a batch at a time; returns how many were deleted.
pub(crate) async fn sweep_expired(connection: &LiveConnection) -> Result<u64, tokio_postgres::Error> {
    let mut deleted = 0;
    loop {
        let batch = connection
            .client
            .execute(&connection.statements.sweep, &[&SWEEP_BATCH, &LIFETIME_SECONDS])
            .await?;
        deleted += batch;
        if batch < SWEEP_BATCH as u64 {
            return Ok(deleted);
        }
    }
}
