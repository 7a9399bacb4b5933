//! Coalesced lookups by id: concurrent uncached `GET /v1/users/{id}` reads go to Postgres as one
//! `WHERE id = ANY($1)` query, so one statement's round trip and per-statement work serve many.
//!
//! No timer: at most one batch per read connection is in flight; what queues meanwhile is the
//! next batch. A lone lookup therefore goes out at once (a batch of one), and only concurrent ones
//! share. Each lookup is answered from the batch: its user's body, or nothing (404).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

use super::Database;
use super::user_queries::find_users;
use crate::error::Error;

/// The most ids one query carries.
const MAX_BATCH: usize = 128;

/// Hands lookups to the batcher task; cheap to clone.
#[derive(Clone)]
pub(crate) struct LookupQueue {
    sender: mpsc::UnboundedSender<QueuedLookup>,
}

struct QueuedLookup {
    id: Uuid,
    answer: oneshot::Sender<Result<Option<Bytes>, Error>>,
}

impl LookupQueue {
    /// Starts the batcher: `in_flight` batches at most (one per read connection).
    pub(crate) fn start(db: Database, in_flight: usize) -> LookupQueue {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run_batcher(db, receiver, Arc::new(Semaphore::new(in_flight.max(1)))));
        LookupQueue { sender }
    }

    /// The body of the user with `id` (its JSON, as `GET /v1/users/{id}` answers it), looked up
    /// together with whatever else is being looked up.
    pub(crate) async fn find(&self, id: Uuid) -> Result<Option<Bytes>, Error> {
        let (answer, answered) = oneshot::channel();
        self.sender
            .send(QueuedLookup { id, answer })
            .map_err(|_| Error::Unavailable("the service is shutting down".into()))?;
        answered
            .await
            .unwrap_or_else(|_| Err(Error::internal("the lookup batcher stopped without answering")))
    }
}

async fn run_batcher(db: Database, mut queue: mpsc::UnboundedReceiver<QueuedLookup>, in_flight: Arc<Semaphore>) {
    while let Some(first) = queue.recv().await {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let db = db.clone();
        tokio::spawn(async move {
            answer(&db, batch).await;
            drop(permit);
        });
    }
}

async fn answer(db: &Database, batch: Vec<QueuedLookup>) {
    let mut ids: Vec<Uuid> = batch.iter().map(|lookup| lookup.id).collect();
    ids.sort_unstable();
    ids.dedup();
    match find_users(db, &ids).await {
        Ok(users) => {
            // Each found user is written as JSON once, however many lookups asked for it.
            let bodies: HashMap<Uuid, Bytes> = users.iter().map(|user| (user.id, user.to_json())).collect();
            for lookup in batch {
                let _ = lookup.answer.send(Ok(bodies.get(&lookup.id).cloned()));
            }
        }
        Err(error) => {
            let unavailable = matches!(error, Error::Unavailable(_));
            let cause = error.to_string();
            for lookup in batch {
                let failure = if unavailable {
                    Error::Unavailable(cause.clone().into())
                } else {
                    Error::Internal(cause.clone().into())
                };
                let _ = lookup.answer.send(Err(failure));
            }
        }
    }
}
