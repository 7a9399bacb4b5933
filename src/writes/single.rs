//! A write on a write connection of its own: updates, deletes, and creates with an Idempotency-Key.
//!
//! The write waits for its turn (writes with the same key, then to the same row, queue in the
//! process) and a write connection. Without a key, its one statement runs alone
//! (`transaction::run_alone`); with one, a transaction claims the key in the same round trip as
//! `BEGIN`, runs the statement and records its response, and a key already claimed is replayed
//! (or refused, for another request). The user's cache key is fenced before anything can commit,
//! and the fence is lifted before anyone is told the write happened (`Fencing`).

use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::idempotency::IdempotencyKey;
use super::progress::WriteProgress;
use super::row_locks::RowKey;
use super::transaction::{self, Stage};
use super::{Inner, WriteRequest, WriteResponse, created_response, not_found};
use crate::cache::{Cache, Fence, LiftTries};
use crate::db::connect::{STATEMENT_TIMEOUT, TCP_USER_TIMEOUT};
use crate::db::idempotency_records::{self, Recorded, StoredResponse};
use crate::db::user_queries::{self, email_taken, is_email_conflict};
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
        let deadline = progress.deadline;
        // Behind a request with the same key (a retry of one still running) until the deadline:
        // that request may yet succeed, so this one is told it is in progress, not that nothing
        // was written.
        let _key_turn = match &key {
            Some(key) => {
                progress.set_behind_its_key(true);
                let turn = self.row_locks.lock(RowKey::IdempotencyKey(key.queue_hash()));
                let turn = tokio::time::timeout_at(deadline, turn).await;
                progress.set_behind_its_key(false);
                Some(turn.map_err(|_| Error::IdempotencyKeyInProgress)?)
            }
            None => None,
        };
        let queued = async {
            let row_turn = match request.user_id() {
                Some(id) => Some(self.row_locks.lock(RowKey::User(id)).await),
                None => None,
            };
            let connection = self.db.checkout_writer(deadline).await?;
            Ok::<_, Error>((row_turn, connection))
        };
        let (_row_turn, mut connection) = tokio::time::timeout_at(deadline, queued)
            .await
            .map_err(|_| Error::WriteNotApplied("the write waited for its turn past the deadline".into()))??;
        let mut fencing = Fencing {
            target: self.cache.as_ref().zip(request.user_id()),
            deadline,
            raised: None,
        };
        let outcome = write_once(&mut connection, &request, key.as_ref(), progress, &mut fencing).await;
        // The connection was lost once something that could commit was sent: its session is
        // ended before anyone is told, or the next write to this user may start.
        let lost = matches!(outcome, Err(Error::WriteOutcomeUnknown(_)));
        let ended = lost && self.db.end_lost_session(&connection, deadline).await;
        // A repeat cut off while reading its key's record leaves a session that holds the claim's
        // lock on the record, and would keep every retry of the key waiting: it is ended too.
        if matches!(outcome, Err(Error::ReplayRefused(_))) && connection.client.is_closed() {
            self.db.end_lost_session(&connection, deadline).await;
        }
        // The row's turn is kept until the fence is settled; the connection is not needed.
        drop(connection);
        fencing.settle(&outcome, ended).await;
        outcome
    }
}

/// The write's statement alone, or with a key, in the transaction that claims it (or its replay).
async fn write_once(
    connection: &mut WriteConnection,
    request: &WriteRequest,
    key: Option<&IdempotencyKey>,
    progress: &WriteProgress,
    fencing: &mut Fencing<'_>,
) -> Result<WriteResponse, Error> {
    let budget = start_budget(progress)?;
    let Some(key) = key else {
        return transaction::run_alone(
            connection,
            budget,
            None,
            async || fencing.raise().await,
            async |connection| run_statement(connection, request).await,
            statement_failure_at,
        )
        .await?;
    };
    let claim = idempotency_records::claim(connection, &key.key, &key.request);
    // The claim waits only for a transaction that claimed the same key and has not ended: its
    // lock timeout fires before the statement's, so that wait is told apart.
    let claim_wait = budget.saturating_sub(CLAIM_WAIT_MARGIN);
    let inside = match transaction::preceded_by(connection, "BEGIN; ", budget, claim_wait, claim).await {
        Ok(true) => run_keyed(connection, request, key, progress.deadline).await,
        Ok(false) => {
            // Read in the claim's transaction: its `now()` found the record live and finds it so
            // again (a repeat at the end of the record's 24 hours), and the claim's lock on the
            // record keeps the sweeps from deleting it meanwhile.
            let replayed = replay(connection, key, progress.deadline).await;
            transaction::roll_back(connection).await;
            let replayed = replayed?;
            // Its COMMIT may have landed after its own fence expired, and a reader cached the user
            // as before it: the replay fences and lifts as a write does (docs/API.md, Writes).
            fencing.raise_for_replay().await?;
            return Ok(replayed);
        }
        Err(error) if error.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => Err(Error::IdempotencyKeyInProgress),
        Err(error) => Err(transaction::failure(error, Stage::Claim)),
    };
    transaction::finish(connection, inside, async || fencing.raise().await).await
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
        .map_err(|error| statement_failure_at(error, Stage::BeforeCommit))??;
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
    let budget = transaction::budget(progress.deadline)
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
    Ok(match request {
        WriteRequest::Create(user) => {
            let created = user_queries::insert_users(connection, std::iter::once(user)).await?;
            created_response(created.into_iter().next().flatten())
        }
        // A taken email fails the statement: `statement_failure_at` makes that the client's 409.
        WriteRequest::Update { id, patch } => match user_queries::update_user(connection, *id, patch).await? {
            Some(user) => Ok(WriteResponse::new(StatusCode::OK, user.to_json())),
            None => Err(not_found(*id)),
        },
        WriteRequest::Delete { id } => match user_queries::delete_user(connection, *id).await? {
            true => Ok(WriteResponse::new(StatusCode::NO_CONTENT, Bytes::new())),
            false => Err(not_found(*id)),
        },
    })
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

/// The first response of a key already used, or why it cannot be replayed.
async fn replay(connection: &WriteConnection, key: &IdempotencyKey, deadline: Instant) -> Result<WriteResponse, Error> {
    // The key's write has committed: a record that cannot be read now holds back only its answer.
    let look_up = idempotency_records::look_up(connection, &key.key, &key.request);
    let recorded = transaction::then_within(connection, deadline, look_up)
        .await
        .map_err(|error| match transaction::failure(error, Stage::BeforeCommit) {
            Error::WriteNotApplied(cause) => Error::ReplayRefused(cause),
            other => other,
        })?;
    match recorded {
        Recorded::Same(stored) => Ok(WriteResponse {
            status: StatusCode::from_u16(stored.status).map_err(Error::internal)?,
            body: Bytes::from(stored.body),
            location: stored.location,
            replayed: true,
        }),
        Recorded::Different => Err(Error::IdempotencyKeyReused),
        // Not expected: the claim found the record live, and holds it, in this transaction. Should
        // it be gone all the same, this request wrote nothing, and a retry starts afresh.
        Recorded::Nothing => Err(Error::WriteNotApplied(
            "the Idempotency-Key's record changed while it was being read; retry".into(),
        )),
    }
}

/// Beyond the request's remaining time, how long a fence outlives its raising: it must outlive any
/// moment at which the write could still commit, since nobody else can lift it safely before then.
/// A statement or `COMMIT` may be sent until the deadline, then take `TCP_USER_TIMEOUT` to reach
/// Postgres and `STATEMENT_TIMEOUT` to run; a second more for the rest.
const FENCE_BEYOND_DEADLINE: Duration = TCP_USER_TIMEOUT
    .saturating_add(STATEMENT_TIMEOUT)
    .saturating_add(Duration::from_secs(1));

/// How much sooner than the statement timeout a keyed write's claim gives up waiting for another
/// transaction's claim of the same key: Postgres counts the lock wait from when it starts and the
/// statement from when it arrives, so this is room for a claim that starts waiting a little late.
const CLAIM_WAIT_MARGIN: Duration = Duration::from_millis(100);

/// A replay's fence outlives its lift (tried for two seconds) with room to spare; should that lift go
/// unanswered, the user is cached again within seconds rather than the 40 s a write's fence lasts.
const REPLAY_FENCE_LIFETIME: Duration = Duration::from_secs(5);

/// One write's fence in the cache (`cache::Fence`), from its raising to its lift (`settle`).
struct Fencing<'a> {
    /// The cache and the user, when the write changes a user that may be cached.
    target: Option<(&'a Cache, Uuid)>,
    deadline: Instant,
    raised: Option<Fence>,
}

impl Fencing<'_> {
    /// Raises the fence; the write may commit only after `Ok`. A refusal means nothing was written.
    async fn raise(&mut self) -> Result<(), Error> {
        let lifetime = self.deadline.saturating_duration_since(Instant::now()) + FENCE_BEYOND_DEADLINE;
        self.raise_living(lifetime).await
    }

    /// Raises the fence of a replay, which stands for no commit (the write it reports has
    /// committed): it need only replace what is at the key, so it lives `REPLAY_FENCE_LIFETIME`.
    /// A refusal is `ReplayRefused`: the write was made, only its answer is held back.
    async fn raise_for_replay(&mut self) -> Result<(), Error> {
        match self.raise_living(REPLAY_FENCE_LIFETIME).await {
            Err(Error::WriteRefused(cause)) => Err(Error::ReplayRefused(cause)),
            other => other,
        }
    }

    async fn raise_living(&mut self, lifetime: Duration) -> Result<(), Error> {
        if let Some((cache, id)) = self.target {
            self.raised = Some(cache.raise_fence(id, lifetime).await?);
        }
        Ok(())
    }

    /// Lifts the fence of a write that committed, or whose unknown outcome is final (its session
    /// `ended`), for the lift's whole patience, past the deadline if need be (a restarted Redis
    /// may have lost the fence, and only the lift removes what readers stored meanwhile); of one
    /// that wrote nothing, for that patience too but not past the time its answer must leave, and
    /// without waiting for copies. A write whose outcome is unknown and whose session may live on
    /// may commit until its fence expires, and is lifted once then.
    async fn settle(self, outcome: &Result<WriteResponse, Error>, ended: bool) {
        let (Some((cache, _)), Some(fence)) = (self.target, self.raised) else {
            return;
        };
        let tries = match outcome {
            Err(Error::WriteOutcomeUnknown(_)) if !ended => return cache.lift_fence_as_it_expires(fence),
            Ok(_) | Err(Error::WriteOutcomeUnknown(_)) => LiftTries::AfterCommit,
            // Its client learns that nothing was written before the deadline turns it into "unknown".
            Err(_) => LiftTries::WroteNothing {
                answer_by: self
                    .deadline
                    .checked_sub(transaction::COMMIT_MARGIN)
                    .unwrap_or(self.deadline),
            },
        };
        cache.lift_fence(fence, tries).await;
    }
}
