//! Coalesced lookups by id: concurrent uncached `GET /v1/users/{id}` reads go to Postgres as one
//! `WHERE id = ANY($1)` query, so one statement's round trip and per-statement work serve many.
//! Each lookup is answered from the batch (`batcher`): its user's body, or nothing (404).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use uuid::Uuid;

use super::Database;
use super::user_queries::find_users;
use crate::batcher::{Batcher, Batching};
use crate::error::Error;

/// Hands lookups to the batcher task.
pub(crate) struct LookupQueue(Batcher<Lookups>);

struct QueuedLookup {
    id: Uuid,
    answer: oneshot::Sender<Result<Option<Bytes>, Error>>,
}

/// A batch of lookups holds a permit: one batch in flight per read connection.
struct Lookups {
    db: Database,
    in_flight: Arc<Semaphore>,
}

impl LookupQueue {
    pub(crate) fn start(db: Database) -> LookupQueue {
        let in_flight = Arc::new(Semaphore::new(db.reads().slots.len().max(1)));
        LookupQueue(Batcher::start(Lookups { db, in_flight }))
    }

    /// The body of the user with `id` (its JSON, as `GET /v1/users/{id}` answers it), looked up
    /// together with whatever else is being looked up.
    pub(crate) async fn find(&self, id: Uuid) -> Result<Option<Bytes>, Error> {
        let (answer, answered) = oneshot::channel();
        self.0
            .submit(QueuedLookup { id, answer })
            .map_err(|_| Error::Unavailable("the service is shutting down".into()))?;
        answered
            .await
            .unwrap_or_else(|_| Err(Error::internal("the lookup batcher stopped without answering")))
    }
}

impl Batching for Lookups {
    type Item = QueuedLookup;
    type Resource = OwnedSemaphorePermit;
    type Refusal = tokio::sync::AcquireError;
    /// The most ids one query carries.
    const MAX_BATCH: usize = 128;

    async fn acquire(&self, _first: &QueuedLookup) -> Result<OwnedSemaphorePermit, Self::Refusal> {
        self.in_flight.clone().acquire_owned().await
    }

    fn refuse(&self, first: QueuedLookup, _: Self::Refusal) {
        let _ = first
            .answer
            .send(Err(Error::Unavailable("the service is shutting down".into())));
    }

    async fn run(self: Arc<Self>, _permit: OwnedSemaphorePermit, batch: Vec<QueuedLookup>) {
        let mut ids: Vec<Uuid> = batch.iter().map(|lookup| lookup.id).collect();
        ids.sort_unstable();
        ids.dedup();
        match find_users(&self.db, &ids).await {
            Ok(users) => {
                // Each found user is written as JSON once, however many lookups asked for it.
                let bodies: HashMap<Uuid, Bytes> = users.iter().map(|user| (user.id, user.to_json())).collect();
                for lookup in batch {
                    let _ = lookup.answer.send(Ok(bodies.get(&lookup.id).cloned()));
                }
            }
            Err(error) => {
                // Every lookup of the batch hears the same failure, of the same kind.
                let cause = error.to_string();
                for lookup in batch {
                    let failure = match &error {
                        Error::SchemaBehind(gap) => Error::SchemaBehind(gap.clone()),
                        Error::Unavailable(_) => Error::Unavailable(cause.clone().into()),
                        _ => Error::Internal(cause.clone().into()),
                    };
                    let _ = lookup.answer.send(Err(failure));
                }
            }
        }
    }
}
