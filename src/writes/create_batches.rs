//! Coalesced creates: the creates waiting when a write connection becomes free go to Postgres as
//! one statement and one commit, so one WAL flush serves them all (a lone create goes out at once:
//! `batcher`). Each request is answered from its own row as if it had been alone: a taken email
//! is that request's 409, and a batch that waits too long for a row lock, holds a row Postgres
//! rejects, or runs past the shortest deadline among its creates, runs again one by one
//! (`run_one_by_one`), each create with its own time. With its connection lost, every row gets
//! that answer. Keyed creates are not batched (each claims its key in a transaction of its own).
//! A batch shares one `created_at` (docs/API.md).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_postgres::error::SqlState;

use super::progress::WriteProgress;
use super::single::{start_budget, statement_failure_at};
use super::{WriteResponse, created_response, transaction};
use crate::batcher::{Batcher, Batching};
use crate::db::Database;
use crate::db::connect::STATEMENT_TIMEOUT;
use crate::db::user_queries;
use crate::db::write_pool::WriteConnection;
use crate::error::Error;
use crate::user::User;
use crate::user::input::NewUser;

/// How long a batch of several creates may wait for a row lock: far longer than an insert takes
/// without contention, short enough that an email held by another session's open transaction
/// delays the rest of its batch only briefly before they go one by one.
const BATCH_LOCK_WAIT: Duration = Duration::from_millis(100);

/// Hands creates to the batcher task.
pub(crate) struct CreateQueue(Batcher<Creates>);

struct QueuedCreate {
    user: NewUser,
    progress: Arc<WriteProgress>,
    answer: oneshot::Sender<Result<WriteResponse, Error>>,
}

/// A batch of creates holds a write connection.
struct Creates {
    db: Database,
}

impl CreateQueue {
    pub(crate) fn start(db: Database) -> CreateQueue {
        CreateQueue(Batcher::start(Creates { db }))
    }

    /// Creates waiting for a write connection.
    pub(crate) fn waiting(&self) -> usize {
        self.0.waiting()
    }

    /// Queues a create and waits for its answer. The batcher owns the write from here: it runs to
    /// completion even if this caller stops waiting.
    pub(crate) async fn submit(&self, user: NewUser, progress: Arc<WriteProgress>) -> Result<WriteResponse, Error> {
        let (answer, answered) = oneshot::channel();
        self.0
            .submit(QueuedCreate { user, progress, answer })
            .map_err(|_| Error::WriteNotApplied("the service is shutting down".into()))?;
        answered
            .await
            .unwrap_or_else(|_| Err(Error::internal("the create batcher stopped without answering")))
    }
}

impl Batching for Creates {
    type Item = QueuedCreate;
    type Resource = WriteConnection;
    type Refusal = Error;
    /// Large enough to share a flush among many, small enough that one batch never holds its
    /// connection long.
    const MAX_BATCH: usize = 256;

    async fn acquire(&self, first: &QueuedCreate) -> Result<WriteConnection, Error> {
        self.db.checkout_writer(first.progress.deadline).await
    }

    fn refuse(&self, first: QueuedCreate, refusal: Error) {
        let _ = first.answer.send(Err(refusal));
    }

    async fn run(self: Arc<Self>, mut connection: WriteConnection, batch: Vec<QueuedCreate>) {
        let mut budget = STATEMENT_TIMEOUT;
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
        let several = sending.len() > 1;
        let lock_wait = several.then_some(BATCH_LOCK_WAIT);
        let (inserted, refusal) = insert(&self.db, &mut connection, &sending, budget, lock_wait).await;
        match inserted {
            Ok(rows) => {
                for (create, row) in sending.into_iter().zip(rows) {
                    let _ = create.answer.send(created_response(row));
                }
            }
            // Postgres refused the statement for one of its rows (a row it rejects, an email locked by
            // another session), or cancelled it at the shortest deadline of the batch, which the
            // others may outlast: the statement wrote nothing, so each create alone finds out.
            Err(_) if several && refusal != Refusal::None => run_one_by_one(&self.db, &mut connection, sending).await,
            Err(error) => {
                for create in sending {
                    let _ = create.answer.send(Err(shared_failure(&error)));
                }
            }
        }
    }
}

/// Runs each create alone, after a batch statement failed, with the batch's short lock wait, so
/// that a locked email holds up no other create; those that waited for a lock go round again with
/// the same short wait, until one is left to wait alone for the time it has left. So a lock
/// released elsewhere lets its create through within a round, however long another stays.
async fn run_one_by_one(db: &Database, connection: &mut WriteConnection, mut batch: Vec<QueuedCreate>) {
    while !batch.is_empty() {
        let lock_wait = (batch.len() > 1).then_some(BATCH_LOCK_WAIT);
        let mut locked = Vec::new();
        for create in batch {
            match insert_alone(db, connection, &create, lock_wait).await {
                (_, Refusal::LockWait) if lock_wait.is_some() => locked.push(create),
                (answer, _) => {
                    let _ = create.answer.send(answer);
                }
            }
        }
        batch = locked;
    }
}

/// Whether Postgres itself refused an insert statement, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// It did not (it succeeded, or failed otherwise: a lost connection, a decode).
    None,
    /// It gave up waiting for a row lock (`lock_timeout`).
    LockWait,
    /// It was cancelled (`statement_timeout`: a batch's is the shortest time left among its
    /// creates; or the process stopping, which then sends nothing more).
    Cancelled,
    /// It rejected the statement, which rolled back, for what it holds (a SQLSTATE outside the
    /// classes of the server's own state: 08 connection, 53 resources, 57 operator intervention
    /// and timeouts, 58 system, XX internal): one row breaks a rule, and alone the others pass.
    Rejected,
}

/// One create alone, waiting at most `lock_wait` for a row lock: the answer, and whether Postgres
/// refused it.
async fn insert_alone(
    db: &Database,
    connection: &mut WriteConnection,
    create: &QueuedCreate,
    lock_wait: Option<Duration>,
) -> (Result<WriteResponse, Error>, Refusal) {
    let Some(budget) = transaction::budget(create.progress.deadline) else {
        let late = "too little of the request's time was left to retry the write alone";
        return (Err(Error::WriteNotApplied(late.into())), Refusal::None);
    };
    let (inserted, refusal) = insert(db, connection, std::slice::from_ref(create), budget, lock_wait).await;
    let answer = inserted.and_then(|rows| created_response(rows.into_iter().next().flatten()));
    (answer, refusal)
}

/// Inserts the creates in one statement: a row per create (`None` for a taken email), and whether
/// Postgres refused the statement. If the connection was lost once it was sent, its session is
/// ended before anyone is told, or until the last of their deadlines (`db::lost_sessions`).
async fn insert(
    db: &Database,
    connection: &mut WriteConnection,
    creates: &[QueuedCreate],
    budget: Duration,
    lock_wait: Option<Duration>,
) -> (Result<Vec<Option<User>>, Error>, Refusal) {
    let mut refusal = Refusal::None;
    let inserted = transaction::run_alone(
        connection,
        budget,
        lock_wait,
        // A new user cannot be cached yet, so a create needs no fence before it commits.
        async || Ok(()),
        async |connection| user_queries::insert_users(connection, creates.iter().map(|create| &create.user)).await,
        |error, stage| {
            refusal = match error.code() {
                Some(&SqlState::LOCK_NOT_AVAILABLE) => Refusal::LockWait,
                Some(&SqlState::QUERY_CANCELED) => Refusal::Cancelled,
                Some(code) if !["08", "53", "57", "58", "XX"].contains(&&code.code()[..2]) => Refusal::Rejected,
                _ => Refusal::None,
            };
            statement_failure_at(error, stage)
        },
    )
    .await;
    let last_deadline = creates.iter().map(|create| create.progress.deadline).max();
    if let (Err(Error::WriteOutcomeUnknown(_)), Some(until)) = (&inserted, last_deadline) {
        db.end_lost_session(connection, until).await;
    }
    (inserted, refusal)
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
