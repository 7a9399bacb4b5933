//! A write's statements on its own connection, and what their failures mean for the client.
//!
//! Postgres enforces each write's deadline (the contract: docs/API.md, Writes; how: `run_alone`),
//! so a write that cannot finish in time fails with "nothing was written". Postgres answers an
//! autocommit only after the commit, so an answer means it is durable, and a connection lost once
//! it was sent leaves the outcome unknown, as one lost during a `COMMIT` does.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::error::SqlState;

use crate::db::connect::STATEMENT_TIMEOUT;
use crate::db::write_pool::WriteConnection;
use crate::error::{Error, is_connection_loss};

/// Kept free before the deadline for the commit and the answer to travel.
pub(crate) const COMMIT_MARGIN: Duration = Duration::from_millis(250);
/// A write with less time than this left is not started: it could not finish.
const LEAST_USEFUL_TIME: Duration = Duration::from_millis(20);

/// Where a failure happened, which decides what the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// An autocommitted statement: Postgres's own error means it rolled back; a lost connection
    /// leaves the outcome unknown.
    Autocommit,
    /// Before the commit was sent: the transaction dies with any failure, nothing is written.
    BeforeCommit,
    /// The commit itself: a lost connection leaves the outcome unknown.
    Commit,
    /// A keyed write's claim of its key, which may wait on another request's claim (on another
    /// replica) that may still commit: cancelled or cut off, the key's outcome is unknown.
    Claim,
}

/// How long this write's statements may run, or `None` when too little time is left to start.
pub(crate) fn budget(deadline: Instant) -> Option<Duration> {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .saturating_sub(COMMIT_MARGIN)
        .min(STATEMENT_TIMEOUT);
    (left >= LEAST_USEFUL_TIME).then_some(left)
}

/// Runs a write of one statement, committed: autocommitted when `budget` is the whole cap (the
/// connection's own timeouts bound it), else between `BEGIN` with the budget and `COMMIT`. An
/// outcome that wrote nothing (no row matched, a taken email left to `ON CONFLICT`) commits
/// nothing either way. `lock_wait`, when given, is how long the statement may wait for a lock if
/// that is shorter than its budget. `before_commit` runs before anything can commit (before the
/// statement, when it autocommits); its failure means nothing is sent, or the transaction is
/// rolled back. `failed` decides what a statement's driver error means at its stage.
pub(crate) async fn run_alone<T>(
    connection: &mut WriteConnection,
    budget: Duration,
    lock_wait: Option<Duration>,
    before_commit: impl AsyncFnOnce() -> Result<(), Error>,
    statement: impl AsyncFnOnce(&WriteConnection) -> Result<T, tokio_postgres::Error>,
    failed: impl FnOnce(tokio_postgres::Error, Stage) -> Error,
) -> Result<T, Error> {
    let lock_wait = lock_wait.unwrap_or(budget).min(budget);
    still_open(connection, "the write")?;
    if budget < STATEMENT_TIMEOUT {
        let inside = preceded_by(connection, "BEGIN; ", budget, lock_wait, statement(connection))
            .await
            .map_err(|error| failed(error, Stage::BeforeCommit));
        return finish(connection, inside, before_commit).await;
    }
    // Nothing is sent if it fails: the connection is as it was.
    before_commit().await.inspect_err(|_| connection.mark_clean())?;
    still_open(connection, "the write").inspect_err(|_| connection.mark_clean())?;
    let (outcome, reset) = if lock_wait < budget {
        // The session's lock timeout, lowered for this statement and put back, all in its round trip.
        let lower = format!("SET lock_timeout = {}", lock_wait.as_millis().max(1));
        let (lowered, outcome, reset) = tokio::join!(biased;
            connection.client.batch_execute(&lower),
            statement(connection),
            connection.client.batch_execute("RESET lock_timeout"),
        );
        // The statement's own outcome is what was written, even if the SET failed (a cancel
        // landing on it, say): the statement ran then with the session's lock timeout.
        (outcome, lowered.is_ok() && reset.is_ok())
    } else {
        (statement(connection).await, true)
    };
    // Postgres answered (a failed statement was rolled back): the connection is usable.
    if reset && outcome.as_ref().map_or_else(|error| error.code().is_some(), |_| true) {
        connection.mark_clean();
    }
    outcome.map_err(|error| failed(error, Stage::Autocommit))
}

/// Runs a later statement of a transaction with the time the write has left as its timeouts, set
/// in the same round trip: Postgres's timeouts count per statement, so without this each statement
/// of a keyed write could take the whole budget again. With no time left the statement gets 1 ms,
/// so Postgres cancels it and the transaction writes nothing.
pub(crate) async fn then_within<T>(
    connection: &WriteConnection,
    deadline: Instant,
    statement: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, tokio_postgres::Error> {
    let left = budget(deadline).unwrap_or(Duration::from_millis(1));
    preceded_by(connection, "", left, left, statement).await
}

/// Sends `{prefix}SET LOCAL statement_timeout = budget; SET LOCAL lock_timeout = lock_wait` and
/// then `statement`, pipelined in one round trip (with `prefix` "BEGIN; ", a transaction's first
/// round trip); returns the statement's outcome.
pub(crate) async fn preceded_by<T>(
    connection: &WriteConnection,
    prefix: &str,
    budget: Duration,
    lock_wait: Duration,
    statement: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, tokio_postgres::Error> {
    let sql = format!(
        "{prefix}SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {}",
        budget.as_millis().max(1),
        lock_wait.as_millis().max(1)
    );
    let set = connection.client.batch_execute(&sql);
    // Biased: the SET must be polled (and so sent) first.
    let (set, outcome) = tokio::join!(biased; set, statement);
    set?;
    outcome
}

/// Ends a transaction: commits what succeeded once `before_commit` allows it (the connection is
/// clean again once Postgres has answered), else rolls back. If even the rollback fails, the
/// connection is left unclean and is discarded rather than reused.
pub(crate) async fn finish<T>(
    connection: &mut WriteConnection,
    inside: Result<T, Error>,
    before_commit: impl AsyncFnOnce() -> Result<(), Error>,
) -> Result<T, Error> {
    let ready = match inside {
        Ok(value) => before_commit().await.map(|()| value),
        Err(error) => Err(error),
    };
    if ready.is_err() {
        roll_back(connection).await;
    }
    let value = ready?;
    // A session gone without its COMMIT was rolled back by Postgres.
    still_open(connection, "the commit")?;
    connection
        .client
        .batch_execute("COMMIT")
        .await
        .map_err(|error| failure(error, Stage::Commit))?;
    connection.mark_clean();
    Ok(value)
}

/// `Ok` while the connection is open and the process is not stopping; else `what` is not sent (a
/// stopping process sends nothing that could commit after it has exited: `db::write_pool`).
fn still_open(connection: &WriteConnection, what: &str) -> Result<(), Error> {
    let why = if connection.client.is_closed() {
        format!("the write connection was lost before {what} was sent")
    } else if connection.pool_closed() {
        format!("the service is shutting down: {what} was not sent")
    } else {
        return Ok(());
    };
    Err(Error::WriteNotApplied(why.into()))
}

/// Rolls back after a failure or a decision not to write; the connection is clean once it has.
pub(crate) async fn roll_back(connection: &mut WriteConnection) {
    if connection.client.batch_execute("ROLLBACK").await.is_ok() {
        connection.mark_clean();
    }
}

/// What a driver error at `stage` means for the client. Callers decide the errors that are the
/// client's own (a taken email) before this.
pub(crate) fn failure(error: tokio_postgres::Error, stage: Stage) -> Error {
    let cancelled_in_time = error.code().is_some_and(|code| {
        *code == SqlState::QUERY_CANCELED
            || *code == SqlState::LOCK_NOT_AVAILABLE
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
    });
    match stage {
        // The commit may have happened before the connection went: nobody can say.
        Stage::Commit | Stage::Autocommit if is_connection_loss(&error) => Error::WriteOutcomeUnknown(Box::new(error)),
        // Postgres answered the commit with an error: it rolled back.
        Stage::Commit => Error::WriteNotApplied(Box::new(error)),
        Stage::BeforeCommit | Stage::Autocommit if cancelled_in_time || is_connection_loss(&error) => {
            Error::WriteNotApplied(Box::new(error))
        }
        Stage::Claim if cancelled_in_time || is_connection_loss(&error) => Error::WriteOutcomeUnknown(Box::new(error)),
        Stage::BeforeCommit | Stage::Autocommit | Stage::Claim => Error::Internal(Box::new(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_leaves_the_commit_margin_and_never_exceeds_the_cap() {
        let now = Instant::now();
        assert_eq!(budget(now + Duration::from_secs(10)), Some(STATEMENT_TIMEOUT));
        let three_seconds = budget(now + Duration::from_secs(3)).unwrap();
        assert!(
            three_seconds <= Duration::from_secs(3) - COMMIT_MARGIN,
            "{three_seconds:?}"
        );
        assert!(three_seconds > Duration::from_secs(2), "{three_seconds:?}");
        assert_eq!(budget(now + COMMIT_MARGIN), None, "no time left for the statement");
        assert_eq!(budget(now), None);
    }
}
