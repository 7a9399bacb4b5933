//! The open client connections: how many there are, which are busy, and which to close for room.
//!
//! Every connection has a `Tracked` entry of atomics that its requests update (a compare-exchange
//! when a request starts, two stores when it ends: nothing shared between connections is touched
//! per request). The `Registry` lists the entries; its lock is taken only when a connection opens
//! or closes, and by the accept loop when it needs room. At `MAX_CONNECTIONS`, the least recently
//! active connection that has no request in progress (an idle keep-alive, a client still sending
//! its head, or one that stopped reading its answers) is told to close. A connection with a
//! request in its handler is never chosen, so a request that has started always gets its answer.

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// No request in the handler: idle between requests, reading a head, or writing an answer.
const IDLE: u8 = 0;
/// A request is in the handler.
const BUSY: u8 = 1;
/// Chosen to make room: the connection closes, and no further request on it is run.
const EVICTED: u8 = 2;

/// All open client connections.
pub(crate) struct Registry {
    entries: Mutex<Entries>,
    /// How many are open; read without the lock.
    open: AtomicUsize,
    /// How many of those were told to close and have not yet.
    closing: AtomicUsize,
    /// Wakes the accept loop when a connection has closed.
    closed: Notify,
    /// The zero of every `Tracked::last_active`.
    epoch: Instant,
}

/// One connection's state, shared by its task and its requests.
pub(crate) struct Tracked {
    state: AtomicU8,
    /// Microseconds after the registry's epoch when the connection opened or last finished a request.
    last_active: AtomicU64,
    /// Told once when the connection is chosen to make room.
    evicted: Notify,
    /// Position in the registry, fixed for the connection's life.
    slot: usize,
    epoch: Instant,
}

/// Marks a request in progress on a connection until dropped.
pub(crate) struct RequestInProgress<'a> {
    connection: &'a Tracked,
}

/// Removes a connection from the registry when its task ends, however it ends.
pub(crate) struct Registration {
    registry: Arc<Registry>,
    pub(crate) tracked: Arc<Tracked>,
}

/// A slab: closed connections leave a hole that the next one fills, so slots stay few.
#[derive(Default)]
struct Entries {
    slots: Vec<Option<Arc<Tracked>>>,
    free: Vec<usize>,
}

impl Registry {
    pub(crate) fn new() -> Arc<Registry> {
        Arc::new(Registry {
            entries: Mutex::new(Entries::default()),
            open: AtomicUsize::new(0),
            closing: AtomicUsize::new(0),
            closed: Notify::new(),
            epoch: Instant::now(),
        })
    }

    /// Open connections now.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections told to close that are still open.
    pub(crate) fn closing(&self) -> usize {
        self.closing.load(Ordering::Relaxed)
    }

    /// Records a new connection; dropping the registration removes it again.
    pub(crate) fn register(self: &Arc<Self>) -> Registration {
        let mut entries = self.lock();
        let slot = entries.free.pop().unwrap_or_else(|| {
            entries.slots.push(None);
            entries.slots.len() - 1
        });
        let tracked = Arc::new(Tracked {
            state: AtomicU8::new(IDLE),
            last_active: AtomicU64::new(micros_since(self.epoch)),
            evicted: Notify::new(),
            slot,
            epoch: self.epoch,
        });
        entries.slots[slot] = Some(tracked.clone());
        self.open.fetch_add(1, Ordering::Relaxed);
        Registration {
            registry: self.clone(),
            tracked,
        }
    }

    /// Tells the least recently active connection without a request in progress to close.
    /// Returns false when every connection is busy with a request.
    pub(crate) fn evict_least_recently_active(&self) -> bool {
        let entries = self.lock();
        // A connection may start a request between the scan and the exchange; then look again.
        for _ in 0..3 {
            let candidate = entries
                .slots
                .iter()
                .flatten()
                .filter(|connection| connection.state.load(Ordering::Relaxed) == IDLE)
                .min_by_key(|connection| connection.last_active.load(Ordering::Relaxed));
            let Some(candidate) = candidate else {
                return false;
            };
            if candidate
                .state
                .compare_exchange(IDLE, EVICTED, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                self.closing.fetch_add(1, Ordering::Relaxed);
                candidate.evicted.notify_one();
                return true;
            }
        }
        false
    }

    /// Completes when a connection has closed since the last call (or now, if one has).
    pub(crate) async fn wait_for_a_close(&self) {
        self.closed.notified().await;
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // Nothing is ever left half-updated under this lock, so a poisoned one is still sound.
        self.entries.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

impl Tracked {
    /// Marks a request as started; `None` if the connection was chosen to close, in which case
    /// the request must not run (the client sees the connection close, as after any idle close).
    pub(crate) fn begin_request(&self) -> Option<RequestInProgress<'_>> {
        self.state
            .compare_exchange(IDLE, BUSY, Ordering::AcqRel, Ordering::Relaxed)
            .ok()
            .map(|_| RequestInProgress { connection: self })
    }

    /// How long since the connection opened or last finished a request.
    pub(crate) fn idle_for(&self) -> Duration {
        let now = micros_since(self.epoch);
        Duration::from_micros(now.saturating_sub(self.last_active.load(Ordering::Relaxed)))
    }

    /// Completes when the connection has been chosen to close.
    pub(crate) async fn evicted(&self) {
        self.evicted.notified().await;
    }
}

impl Drop for RequestInProgress<'_> {
    fn drop(&mut self) {
        let connection = self.connection;
        connection
            .last_active
            .store(micros_since(connection.epoch), Ordering::Relaxed);
        connection.state.store(IDLE, Ordering::Release);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut entries = self.registry.lock();
        entries.slots[self.tracked.slot] = None;
        entries.free.push(self.tracked.slot);
        drop(entries);
        if self.tracked.state.load(Ordering::Relaxed) == EVICTED {
            self.registry.closing.fetch_sub(1, Ordering::Relaxed);
        }
        self.registry.open.fetch_sub(1, Ordering::Relaxed);
        // One waiter at most (the accept loop); a close with nobody waiting leaves a permit.
        self.registry.closed.notify_one();
    }
}

fn micros_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_least_recently_active_idle_connection_is_chosen() {
        let registry = Registry::new();
        let oldest = registry.register();
        let busy = registry.register();
        let newer = registry.register();
        oldest.tracked.last_active.store(10, Ordering::Relaxed);
        busy.tracked.last_active.store(0, Ordering::Relaxed);
        newer.tracked.last_active.store(20, Ordering::Relaxed);
        let request = busy
            .tracked
            .begin_request()
            .expect("an idle connection takes a request");

        assert!(registry.evict_least_recently_active());
        assert_eq!(oldest.tracked.state.load(Ordering::Relaxed), EVICTED);
        tokio::time::timeout(std::time::Duration::from_secs(1), oldest.tracked.evicted())
            .await
            .expect("the chosen connection is told");
        assert!(
            oldest.tracked.begin_request().is_none(),
            "no request runs on it any more"
        );
        assert_eq!(newer.tracked.state.load(Ordering::Relaxed), IDLE);
        drop(request);
        assert_eq!(busy.tracked.state.load(Ordering::Relaxed), IDLE);
    }

    #[tokio::test]
    async fn nothing_is_chosen_when_every_connection_is_busy() {
        let registry = Registry::new();
        let first = registry.register();
        let second = registry.register();
        let _one = first.tracked.begin_request().unwrap();
        let _two = second.tracked.begin_request().unwrap();
        assert!(!registry.evict_least_recently_active());
    }

    #[tokio::test]
    async fn closing_frees_the_slot_and_wakes_the_accept_loop() {
        let registry = Registry::new();
        let first = registry.register();
        let slot = first.tracked.slot;
        assert_eq!(registry.open(), 1);
        drop(first);
        assert_eq!(registry.open(), 0);
        tokio::time::timeout(std::time::Duration::from_secs(1), registry.wait_for_a_close())
            .await
            .expect("the close is signalled");
        assert_eq!(registry.register().tracked.slot, slot, "the hole is reused");
    }
}
