//! A write on a write connection of its own: updates, deletes, and creates with an Idempotency-Key.
//!
//! The write waits for its turn (writes with the same key, then to the same row, queue in the
//! process), checks out a write connection, and runs: without a key, its one statement alone
//! (`transaction::run_alone`: autocommitted, or in a transaction when it has less than the whole
//! statement budget left); with a key, in a transaction that claims the key in the same round
//! trip as `BEGIN`, runs the statement, records its response and commits; a key already claimed
//! is replayed (or refused, for another request). The user's cache key is fenced before anything
//! can commit (before an autocommitted statement is sent, or before `COMMIT`), and the fence is
//! lifted before anyone is told the write happened (`fencing`).

use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use tokio::time::Instant;

use super::fencing::Fencing;
use super::idempotency::IdempotencyKey;
use super::progress::WriteProgress;
use super::row_locks::RowKey;
use super::transaction::{self, Stage};
use super::{Inner, WriteRequest, WriteResponse, created_response, not_found, user_response};
use crate::db::idempotency_records::{self, Recorded, StoredResponse};
use crate::db::user_queries::{self, NewUserColumns, email_taken, is_email_conflict};
use crate::db::write_pool::WriteConnection;
use crate::error::Error;

impl Inner {
    /// One write in a transaction of its own: the path of updates, deletes and keyed creates.
    pub(super) async fn write_alone(
        &self,
        request: WriteRequest,
        key: Option<IdempotencyKey>,
        progress: &WriteProgress,
    ) -> Result<WriteResponse, Error> {
        let deadline = progress.deadline();
        let queued = async {
            let key_turn = match &key {
                Some(key) => Some(self.row_locks.lock(RowKey::IdempotencyKey(key.queue_hash())).await),
                None => None,
            };
            let row_turn = match request.user_id() {
                Some(id) => Some(self.row_locks.lock(RowKey::User(id)).await),
                None => None,
            };
            let connection = self.db.checkout_writer(deadline).await?;
            Ok::<_, Error>((key_turn, row_turn, connection))
        };
        let (_key_turn, _row_turn, mut connection) = tokio::time::timeout_at(deadline, queued)
            .await
            .map_err(|_| Error::WriteNotApplied("the write waited for its turn past the deadline".into()))??;
        let mut fencing = Fencing::new(self.cache.as_ref(), request.user_id(), deadline);
        let outcome = match &key {
            None => write_once(&mut connection, &request, progress, &mut fencing).await,
            Some(key) => write_once_keyed(&mut connection, &request, key, progress, &mut fencing).await,
        };
        // The row's turn is kept until the fence is settled; the connection is not needed.
        drop(connection);
        fencing.settle(&outcome).await;
        outcome
    }
}

async fn write_once(
    connection: &mut WriteConnection,
    request: &WriteRequest,
    progress: &WriteProgress,
    fencing: &mut Fencing<'_>,
) -> Result<WriteResponse, Error> {
    let budget = start_budget(progress)?;
    let outcome = transaction::run_alone(
        connection,
        budget,
        None,
        async || fencing.raise().await,
        async |connection| run_statement(connection, request).await,
        statement_failure_at,
    )
    .await;
    outcome?
}

async fn write_once_keyed(
    connection: &mut WriteConnection,
    request: &WriteRequest,
    key: &IdempotencyKey,
    progress: &WriteProgress,
    fencing: &mut Fencing<'_>,
) -> Result<WriteResponse, Error> {
    let budget = start_budget(progress)?;
    let claim = idempotency_records::claim(connection, &key.key, &key.request);
    let inside = match transaction::begin_with(connection, budget, claim).await {
        Ok(true) => run_keyed(connection, request, key, progress.deadline()).await,
        Ok(false) => {
            transaction::roll_back(connection).await;
            return replay(connection, key).await;
        }
        Err(error) => Err(transaction::failure(error, Stage::BeforeCommit)),
    };
    let ready = match inside {
        Ok(response) => fencing.raise().await.map(|()| response),
        Err(error) => Err(error),
    };
    match ready {
        Ok(response) => {
            transaction::commit(connection).await?;
            Ok(response)
        }
        Err(error) => {
            transaction::roll_back(connection).await;
            Err(error)
        }
    }
}

/// The statement of a keyed write and the record of its response, inside the transaction that
/// claimed the key; the caller commits or rolls back.
async fn run_keyed(
    connection: &WriteConnection,
    request: &WriteRequest,
    key: &IdempotencyKey,
    deadline: Instant,
) -> Result<WriteResponse, Error> {
    let statement = run_statement(connection, request);
    let response = transaction::then_within(connection, deadline, statement)
        .await
        .map_err(statement_failure)??;
    let stored = StoredResponse {
        status: response.status.as_u16(),
        body: response.body.to_vec(),
        location: response.location.clone(),
    };
    let recorded = idempotency_records::record(connection, &key.key, &stored);
    transaction::then_within(connection, deadline, recorded)
        .await
        .map_err(|error| transaction::failure(error, Stage::BeforeCommit))?;
    Ok(response)
}

/// The time the first statement may take, after marking the write as sent; a write abandoned by
/// its request, or with too little time left, is not started.
pub(super) fn start_budget(progress: &WriteProgress) -> Result<Duration, Error> {
    let budget = transaction::budget(progress.deadline())
        .ok_or_else(|| Error::WriteNotApplied("too little of the request's time was left to start the write".into()))?;
    if !progress.mark_sent() {
        return Err(Error::WriteNotApplied(
            "the request was abandoned before the write was sent".into(),
        ));
    }
    Ok(budget)
}

/// Runs the write's statement: `Ok(Ok(response))` to commit, `Ok(Err(refusal))` for an answer that
/// writes nothing (404, 409), `Err` for a driver failure.
async fn run_statement(
    connection: &WriteConnection,
    request: &WriteRequest,
) -> Result<Result<WriteResponse, Error>, tokio_postgres::Error> {
    let outcome = match request {
        WriteRequest::Create(user) => {
            let columns = NewUserColumns::of(std::iter::once(user));
            let created = user_queries::insert_users(connection, &columns).await?;
            match created.into_iter().next().flatten() {
                Some(user) => Ok(created_response(&user)),
                None => Err(email_taken()),
            }
        }
        // A taken email fails the statement: `statement_failure_at` makes that the client's 409.
        WriteRequest::Update { id, patch } => match user_queries::update_user(connection, *id, patch).await? {
            Some(user) => Ok(user_response(StatusCode::OK, &user)),
            None => Err(not_found(*id)),
        },
        WriteRequest::Delete { id } => {
            if user_queries::delete_user(connection, *id).await? {
                Ok(WriteResponse::new(StatusCode::NO_CONTENT, Bytes::new()))
            } else {
                Err(not_found(*id))
            }
        }
    };
    Ok(outcome)
}

/// A statement's own failure: a taken email is the client's 409, anything else is decided by
/// where it happened.
pub(super) fn statement_failure_at(error: tokio_postgres::Error, stage: Stage) -> Error {
    if is_email_conflict(&error) {
        email_taken()
    } else {
        transaction::failure(error, stage)
    }
}

/// A failure of the statement of a keyed write, inside its transaction.
fn statement_failure(error: tokio_postgres::Error) -> Error {
    statement_failure_at(error, Stage::BeforeCommit)
}

/// The first response of a key already used, or why it cannot be replayed.
async fn replay(connection: &mut WriteConnection, key: &IdempotencyKey) -> Result<WriteResponse, Error> {
    let recorded = idempotency_records::look_up(connection, &key.key, &key.request)
        .await
        .map_err(|error| transaction::failure(error, Stage::BeforeCommit))?;
    match recorded {
        Recorded::Same(stored) => Ok(WriteResponse {
            status: StatusCode::from_u16(stored.status).map_err(Error::internal)?,
            body: Bytes::from(stored.body),
            location: stored.location,
            replayed: true,
        }),
        Recorded::Different => Err(Error::IdempotencyKeyReused),
        // The record that held the key is gone (expired and swept between the two statements):
        // nothing was written, and a retry starts afresh.
        Recorded::Nothing => Err(Error::WriteNotApplied(
            "the Idempotency-Key's record changed while it was being read; retry".into(),
        )),
    }
}
