//! Coalesced creates: the creates that are waiting when a write connection becomes free go to
//! Postgres as one statement and one commit, so one WAL flush serves them all.
//!
//! No timer: a batch is whatever has queued while the previous batches held the connections, so
//! a lone create goes out at once and a burst shares commits. Each request is answered from its
//! own row exactly as if it had been alone: a taken email is that request's 409 (and of two
//! requests with one email in a batch, one gets 201 and the other 409). If the batch statement
//! fails for another reason, its rows are run again one by one so that one bad row cannot fail
//! the others; if Postgres cancelled it at the deadline or the connection failed, every row gets
//! that answer. Creates with an Idempotency-Key are not batched (they need a transaction of their
//! own to claim the key). The rows of one batch share `created_at` (the transaction's start), so
//! the list orders them by id, as it orders any equal timestamps.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::progress::WriteProgress;
use super::single::{start_budget, statement_failure_at};
use super::transaction;
use super::{WriteResponse, created_response};
use crate::db::Database;
use crate::db::user_queries::{self, NewUserColumns, email_taken};
use crate::db::write_pool::WriteConnection;
use crate::error::Error;
use crate::user::input::NewUser;

/// The most creates one statement carries: large enough to share a flush among many, small
/// enough that one batch never holds its connection long.
const MAX_BATCH: usize = 256;

/// Hands creates to the batcher task.
pub(crate) struct CreateQueue {
    sender: mpsc::UnboundedSender<QueuedCreate>,
    /// Creates queued and not yet taken into a batch (for `/metrics`).
    waiting: Arc<AtomicUsize>,
}

struct QueuedCreate {
    user: NewUser,
    progress: Arc<WriteProgress>,
    answer: oneshot::Sender<Result<WriteResponse, Error>>,
}

impl CreateQueue {
    pub(crate) fn start(db: Database) -> CreateQueue {
        let (sender, receiver) = mpsc::unbounded_channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        tokio::spawn(run_batcher(db, receiver, waiting.clone()));
        CreateQueue { sender, waiting }
    }

    /// Creates waiting for a write connection.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Queues a create and waits for its answer. The batcher owns the write from here: it runs to
    /// completion even if this caller stops waiting.
    pub(crate) async fn submit(&self, user: NewUser, progress: Arc<WriteProgress>) -> Result<WriteResponse, Error> {
        let (answer, answered) = oneshot::channel();
        self.waiting.fetch_add(1, Ordering::Relaxed);
        self.sender
            .send(QueuedCreate { user, progress, answer })
            .map_err(|_| Error::WriteNotApplied("the service is shutting down".into()))?;
        answered
            .await
            .unwrap_or_else(|_| Err(Error::internal("the create batcher stopped without answering")))
    }
}

/// Takes the first queued create, waits for a write connection, then takes everything else that
/// queued meanwhile and runs it as one batch in a task of its own.
async fn run_batcher(db: Database, mut queue: mpsc::UnboundedReceiver<QueuedCreate>, waiting: Arc<AtomicUsize>) {
    while let Some(first) = queue.recv().await {
        let connection = match db.checkout_writer(first.progress.deadline()).await {
            Ok(connection) => connection,
            Err(error) => {
                waiting.fetch_sub(1, Ordering::Relaxed);
                let _ = first.answer.send(Err(error));
                continue;
            }
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        waiting.fetch_sub(batch.len(), Ordering::Relaxed);
        tokio::spawn(run_batch(connection, batch));
    }
}

async fn run_batch(mut connection: WriteConnection, batch: Vec<QueuedCreate>) {
    let mut budget = transaction::MAX_STATEMENT_TIME;
    let mut sending = Vec::with_capacity(batch.len());
    for create in batch {
        match start_budget(&create.progress) {
            Ok(own_budget) => {
                budget = budget.min(own_budget);
                sending.push(create);
            }
            Err(not_started) => {
                let _ = create.answer.send(Err(not_started));
            }
        }
    }
    if sending.is_empty() {
        connection.mark_clean();
        return;
    }
    let columns = NewUserColumns::of(sending.iter().map(|create| &create.user));
    let inserted = transaction::run_alone(
        &mut connection,
        budget,
        no_fence,
        async |connection| user_queries::insert_users(connection, &columns).await,
        statement_failure_at,
    )
    .await;
    match inserted {
        Ok(rows) => {
            for (create, row) in sending.into_iter().zip(rows) {
                let answer = row.map(|user| created_response(&user)).ok_or_else(email_taken);
                let _ = create.answer.send(answer);
            }
        }
        // Not a timeout, a lost connection or a failed commit: something about one row. Each alone.
        Err(Error::Internal(_)) if sending.len() > 1 => run_one_by_one(&mut connection, sending).await,
        Err(error) => answer_all(sending, &error),
    }
}

/// Every create of the batch gets the batch's failure.
fn answer_all(batch: Vec<QueuedCreate>, error: &Error) {
    for create in batch {
        let _ = create.answer.send(Err(shared_failure(error)));
    }
}

/// Runs each create alone, after a batch statement failed.
async fn run_one_by_one(connection: &mut WriteConnection, batch: Vec<QueuedCreate>) {
    for create in batch {
        let answer = match transaction::budget(create.progress.deadline()) {
            None => Err(Error::WriteNotApplied(
                "too little of the request's time was left to retry the write alone".into(),
            )),
            Some(budget) => {
                let columns = NewUserColumns::of(std::iter::once(&create.user));
                let inserted = transaction::run_alone(
                    connection,
                    budget,
                    no_fence,
                    async |connection| user_queries::insert_users(connection, &columns).await,
                    statement_failure_at,
                )
                .await;
                inserted.and_then(|rows| {
                    let user = rows.into_iter().next().flatten().ok_or_else(email_taken)?;
                    Ok(created_response(&user))
                })
            }
        };
        let _ = create.answer.send(answer);
    }
}

/// The batch's failure again, for each of its requests (causes cannot be cloned; their text can).
fn shared_failure(error: &Error) -> Error {
    let cause: crate::error::Cause = error.to_string().into();
    match error {
        Error::WriteOutcomeUnknown(_) => Error::WriteOutcomeUnknown(cause),
        Error::Internal(_) => Error::Internal(cause),
        _ => Error::WriteNotApplied(cause),
    }
}

/// A new user cannot be cached yet, so a create needs no fence before it commits.
async fn no_fence() -> Result<(), Error> {
    Ok(())
}
