//! Coalescing without a timer: what queues while the previous batches hold their resources (read
//! connections, write connections) goes out together as the next batch. A lone item therefore
//! goes out at once (a batch of one), and only concurrent ones share a round trip or a commit.
//!
//! The batcher takes the first queued item, waits for the resource a batch needs, then takes what
//! queued meanwhile (up to `MAX_BATCH`) and runs the batch in a task of its own. Uncached lookups
//! by id (`db::lookup_batches`) and creates (`writes::create_batches`) both go this way.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

/// What a kind of batch needs and does.
pub(crate) trait Batching: Send + Sync + 'static {
    type Item: Send + 'static;
    /// What a batch holds while it runs (a permit, a connection).
    type Resource: Send + 'static;
    /// Why the resource could not be had: the first item is refused with it.
    type Refusal;
    /// The most items one batch carries.
    const MAX_BATCH: usize;

    /// The resource for a batch that starts with `first`.
    fn acquire(&self, first: &Self::Item) -> impl Future<Output = Result<Self::Resource, Self::Refusal>> + Send;
    /// Answers `first` when no resource could be had for it.
    fn refuse(&self, first: Self::Item, refusal: Self::Refusal);
    /// Runs a batch, answering each of its items.
    fn run(self: Arc<Self>, resource: Self::Resource, batch: Vec<Self::Item>) -> impl Future<Output = ()> + Send;
}

/// Hands items to the batcher task.
pub(crate) struct Batcher<B: Batching> {
    sender: mpsc::UnboundedSender<B::Item>,
    /// Items queued and not yet taken into a batch (for `/metrics`).
    waiting: Arc<AtomicUsize>,
}

impl<B: Batching> Batcher<B> {
    /// Starts the batcher task, which runs until the `Batcher` is dropped.
    pub(crate) fn start(batching: B) -> Batcher<B> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        tokio::spawn(run_batches(Arc::new(batching), receiver, waiting.clone()));
        Batcher { sender, waiting }
    }

    /// Queues an item; gives it back if the batcher has stopped (the process is shutting down).
    pub(crate) fn submit(&self, item: B::Item) -> Result<(), B::Item> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        self.sender.send(item).map_err(|unsent| {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            unsent.0
        })
    }

    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

async fn run_batches<B: Batching>(
    batching: Arc<B>,
    mut queue: mpsc::UnboundedReceiver<B::Item>,
    waiting: Arc<AtomicUsize>,
) {
    while let Some(first) = queue.recv().await {
        let resource = match batching.acquire(&first).await {
            Ok(resource) => resource,
            Err(refusal) => {
                waiting.fetch_sub(1, Ordering::Relaxed);
                batching.refuse(first, refusal);
                continue;
            }
        };
        let mut batch = vec![first];
        while batch.len() < B::MAX_BATCH
            && let Ok(next) = queue.try_recv()
        {
            batch.push(next);
        }
        waiting.fetch_sub(batch.len(), Ordering::Relaxed);
        tokio::spawn(batching.clone().run(resource, batch));
    }
}
