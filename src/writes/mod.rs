//! Writes that tell the truth: every create, update and delete goes through here.
//! - **The deadline is Postgres's to enforce** (`transaction`): a write that cannot finish in the
//!   request's time is cancelled by Postgres, and the client's 503 means nothing was written.
//! - **A write, once sent, finishes** in a task of its own; the request only waits for it
//!   (`progress` says what it may tell the client if it stops waiting first).
//! - **An update or delete fences the user's cache key before it can commit** (`single`), or is
//!   refused, and lifts the fence after: no replica serves a user older than an acknowledged write.
//! - **Writes never share a connection with reads**, and writes to one row (or with one
//!   Idempotency-Key) queue in the process (`row_locks`): a row locked elsewhere delays only them.
//! - Creates are coalesced (`create_batches`); an `Idempotency-Key` (`idempotency`) is claimed, and
//!   the response recorded, in the write's own transaction.

mod create_batches;
mod idempotency;
mod progress;
mod row_locks;
mod single;
mod transaction;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use tokio::time::Instant;
use uuid::Uuid;

use crate::cache::Cache;
use crate::db::user_queries::email_taken;
use crate::db::{Database, idempotency_records};
use crate::error::Error;
use crate::telemetry::log::Logger;
use crate::user::User;
use crate::user::input::{NewUser, UserPatch};
use create_batches::CreateQueue;
pub(crate) use idempotency::IdempotencyKey;
use progress::WriteProgress;
use row_locks::RowLocks;

/// The write side of the service; cheap to clone.
#[derive(Clone)]
pub(crate) struct Writes {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    cache: Option<Cache>,
    row_locks: RowLocks,
    creates: CreateQueue,
}

/// A write as the handlers hand it over.
#[derive(Debug)]
pub(crate) enum WriteRequest {
    Create(NewUser),
    Update { id: Uuid, patch: UserPatch },
    Delete { id: Uuid },
}

/// What a write answers: the response the client gets (and, with a key, every repeat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WriteResponse {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
    /// `Location` of a created user.
    pub(crate) location: Option<String>,
    /// `true` when this is an earlier request's response, replayed for its Idempotency-Key.
    pub(crate) replayed: bool,
}

impl Writes {
    /// Starts the create batcher and the sweep of expired Idempotency-Key records.
    pub(crate) fn start(db: Database, cache: Option<Cache>, logger: Logger, sweep_every: Duration) -> Writes {
        let creates = CreateQueue::start(db.clone());
        tokio::spawn(idempotency_records::keep_sweeping(db.clone(), logger, sweep_every));
        Writes {
            inner: Arc::new(Inner {
                db,
                cache,
                row_locks: RowLocks::default(),
                creates,
            }),
        }
    }

    /// Waits, up to `patience`, until every update and delete under way has settled its fence (a
    /// stopping process whose writes have ended: `db::Database::close_writes`); whether they have.
    pub(crate) async fn until_settled(&self, patience: Duration) -> bool {
        self.inner.row_locks.until_none_held(patience).await
    }

    /// Creates waiting for a write connection, to be coalesced.
    pub(crate) fn waiting_creates(&self) -> usize {
        self.inner.creates.waiting()
    }

    /// Runs a write to completion in a task of its own and answers with its response, or, at
    /// `deadline` (or when the caller goes away), with what it may say: nothing was written if the
    /// write had not been sent, the outcome is unknown if it had.
    pub(crate) async fn perform(
        &self,
        request: WriteRequest,
        key: Option<IdempotencyKey>,
        deadline: Instant,
    ) -> Result<WriteResponse, Error> {
        let (progress, _waiting) = WriteProgress::start(deadline);
        let running = async {
            match (request, key) {
                (WriteRequest::Create(user), None) => self.inner.creates.submit(user, progress.clone()).await,
                (request, key) => {
                    let (inner, progress) = (self.inner.clone(), progress.clone());
                    tokio::spawn(async move { inner.write_alone(request, key, &progress).await })
                        .await
                        .unwrap_or_else(|panic| Err(Error::internal(panic.to_string())))
                }
            }
        };
        tokio::time::timeout_at(deadline, running)
            .await
            .unwrap_or_else(|_| Err(progress.timed_out()))
    }
}

impl WriteRequest {
    /// The user a write changes (and whose cached body it must remove); `None` for a create.
    fn user_id(&self) -> Option<Uuid> {
        match self {
            WriteRequest::Create(_) => None,
            WriteRequest::Update { id, .. } | WriteRequest::Delete { id } => Some(*id),
        }
    }
}

impl WriteResponse {
    fn new(status: StatusCode, body: Bytes) -> WriteResponse {
        WriteResponse {
            status,
            body,
            location: None,
            replayed: false,
        }
    }
}

/// A create's answer from the row its insert returned: the stored user, or `None` when its email
/// was taken (409).
fn created_response(row: Option<User>) -> Result<WriteResponse, Error> {
    let user = row.ok_or_else(email_taken)?;
    Ok(WriteResponse {
        location: Some(format!("/v1/users/{}", user.id.hyphenated())),
        ..WriteResponse::new(StatusCode::CREATED, user.to_json())
    })
}

pub(crate) fn not_found(id: Uuid) -> Error {
    Error::NotFound(format!("no user with id {}", id.hyphenated()))
}
