//! The open client connections: how many there are, which are busy, and which to close for room.
//!
//! Every connection has a `Tracked` entry of atomics that its requests update (a compare-exchange
//! when a request starts, two stores when it ends: nothing shared between connections is touched
//! per request). The `Registry` lists the entries; its lock is taken only when a connection opens
//! or closes, and by the accept loop when it needs room. At `MAX_CONNECTIONS`, the least recently
//! active connection that is not being served and has been quiet for `QUIET_FOR` is told to close
//! (which ones that can be, and what their clients see: docs/API.md, Operations, Connections).

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::http::body::Arrival;

/// No request in the handler: idle between requests, reading a head, or writing an answer.
const IDLE: u8 = 0;
/// A request is in the handler.
const BUSY: u8 = 1;
/// Chosen to make room: the connection closes, and no further request on it is run.
const EVICTED: u8 = 2;
/// A request in the handler is waiting for its body.
const RECEIVING: u8 = 3;

/// How long a connection must have been quiet (nothing received, no request finished) before it
/// may be closed for room: a client that is sending delivers something many times a second, and
/// one just accepted has its head read first; but slow uploaders, which may pause up to the 5 s
/// that earns a 408, must not be able to fill the connection limit. It also bounds how fast room
/// is made: every connection at the cap can be replaced once per this long.
pub(crate) const QUIET_FOR: Duration = Duration::from_millis(100);

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
    /// Microseconds after the registry's epoch when the connection opened, last finished a
    /// request, or last received a chunk of a body.
    last_active: AtomicU64,
    /// Microseconds after the epoch when the first byte of the latest request head arrived (of a
    /// head that followed its predecessor within one read, the predecessor's: `last_active` is
    /// later then).
    head_began: AtomicU64,
    /// The request in the handler declared a body that no one has started reading: if the
    /// handler answers without it, hyper reads (and drops) it after the answer.
    body_unread: AtomicBool,
    /// Shutting down: the request that had arrived is answered, then the connection closes.
    close_after_answer: AtomicBool,
    /// Told once when the connection, not serving a request, is chosen to make room.
    evicted: Notify,
    /// Told once when the connection is chosen to make room while its request's body arrives.
    body_cut_short: Notify,
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

    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

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
            head_began: AtomicU64::new(0),
            body_unread: AtomicBool::new(false),
            close_after_answer: AtomicBool::new(false),
            evicted: Notify::new(),
            body_cut_short: Notify::new(),
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

    /// Tells the least recently active connection that is not being served (see the module doc)
    /// to close. Returns false when every connection is busy with a request.
    pub(crate) fn evict_least_recently_active(&self) -> bool {
        let entries = self.lock();
        let quiet_since = micros_since(self.epoch).saturating_sub(QUIET_FOR.as_micros() as u64);
        // A connection may start a request between the scan and the exchange; then look again.
        for _ in 0..3 {
            let candidate = entries
                .slots
                .iter()
                .flatten()
                .filter_map(|connection| {
                    let state = connection.state.load(Ordering::Relaxed);
                    let last_active = connection.last_active.load(Ordering::Relaxed);
                    let closable = matches!(state, IDLE | RECEIVING) && last_active <= quiet_since;
                    closable.then_some((connection, state, last_active))
                })
                .min_by_key(|(_, _, last_active)| *last_active);
            let Some((candidate, state, _)) = candidate else {
                return false;
            };
            if candidate.switch(state, EVICTED) {
                self.closing.fetch_add(1, Ordering::Relaxed);
                if state == RECEIVING {
                    candidate.body_cut_short.notify_one();
                } else {
                    candidate.evicted.notify_one();
                }
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
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Tracked {
    /// Marks a request as started; `None` if the connection was chosen to close, in which case
    /// the request must not run (the client sees the connection close, as after any idle close).
    pub(crate) fn begin_request(&self) -> Option<RequestInProgress<'_>> {
        self.switch(IDLE, BUSY).then(|| RequestInProgress { connection: self })
    }

    /// Records that the first byte of a request head arrived `at`.
    pub(crate) fn head_began(&self, at: Instant) {
        self.head_began.store(micros_between(self.epoch, at), Ordering::Relaxed);
    }

    /// Whether the first bytes of a request head have come since the last request ended: a request
    /// the client has begun to send, which hyper, between requests, would close on at shutdown.
    pub(crate) fn reading_a_head(&self) -> bool {
        self.between_requests()
            .is_some_and(|ended| self.head_began.load(Ordering::Relaxed) > ended)
    }

    /// How long the request being read has taken: since its head's first byte, or, for a head that
    /// came with its predecessor or is the connection's first, since that request ended or the
    /// connection opened. Not the time the connection sat idle before it.
    pub(crate) fn since_head_began(&self) -> Duration {
        let began = self
            .head_began
            .load(Ordering::Relaxed)
            .max(self.last_active.load(Ordering::Relaxed));
        Duration::from_micros(micros_since(self.epoch).saturating_sub(began))
    }

    /// Records whether the request just begun declares a body (`Content-Length` above 0, chunked).
    pub(crate) fn declares_body(&self, declared: bool) {
        self.body_unread.store(declared, Ordering::Relaxed);
    }

    /// Whether the request that ended last left its declared body unread (once: it clears).
    pub(crate) fn take_unread_body(&self) -> bool {
        self.body_unread.swap(false, Ordering::Relaxed)
    }

    /// When no request is in the handler: a mark that changes whenever a request ends (`ended_at`
    /// tells when).
    pub(crate) fn between_requests(&self) -> Option<u64> {
        if matches!(self.state.load(Ordering::Acquire), BUSY | RECEIVING) {
            return None;
        }
        Some(self.last_active.load(Ordering::Relaxed))
    }

    /// When the connection opened or finished the request that left `mark`.
    pub(crate) fn ended_at(&self, mark: u64) -> Instant {
        self.epoch + Duration::from_micros(mark)
    }

    /// Makes the next answer (or the one being prepared) the connection's last.
    pub(crate) fn close_after_answer(&self) {
        self.close_after_answer.store(true, Ordering::Relaxed);
    }

    pub(crate) fn closes_after_answer(&self) -> bool {
        self.close_after_answer.load(Ordering::Relaxed)
    }

    /// Completes when the connection has been chosen to close while not serving a request.
    pub(crate) async fn evicted(&self) {
        self.evicted.notified().await;
    }

    /// Whether the connection was chosen to close for room.
    pub(crate) fn was_evicted(&self) -> bool {
        self.state.load(Ordering::Relaxed) == EVICTED
    }

    fn mark_active(&self) {
        self.last_active.store(micros_since(self.epoch), Ordering::Relaxed);
    }

    fn switch(&self, from: u8, to: u8) -> bool {
        self.state
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }
}

impl Arrival for Tracked {
    fn receiving(&self) -> bool {
        self.body_unread.store(false, Ordering::Relaxed);
        self.mark_active();
        self.switch(BUSY, RECEIVING)
    }

    fn chunk_arrived(&self) {
        self.mark_active();
    }

    fn received(&self) -> bool {
        self.switch(RECEIVING, BUSY)
    }

    fn cut_short(&self) -> tokio::sync::futures::Notified<'_> {
        self.body_cut_short.notified()
    }
}

impl Drop for RequestInProgress<'_> {
    fn drop(&mut self) {
        let connection = self.connection;
        connection.mark_active();
        // A connection chosen to close stays so: it closes after this answer.
        if !connection.switch(BUSY, IDLE) {
            connection.switch(RECEIVING, IDLE);
        }
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
    micros_between(epoch, Instant::now())
}

fn micros_between(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_micros()).unwrap_or(u64::MAX)
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
        let just_opened = registry.register();
        tokio::time::sleep(QUIET_FOR).await;
        just_opened.tracked.mark_active();

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
        assert!(registry.evict_least_recently_active(), "the next quiet one goes next");
        assert!(
            !registry.evict_least_recently_active(),
            "one active within the last 100 ms is not closed"
        );
        drop(request);
        assert_eq!(busy.tracked.state.load(Ordering::Relaxed), IDLE);
    }

    #[tokio::test]
    async fn a_body_that_stalled_makes_its_connection_closable_and_its_reader_is_told() {
        let registry = Registry::new();
        let uploading = registry.register();
        let _request = uploading.tracked.begin_request().unwrap();
        assert!(uploading.tracked.receiving());
        assert!(
            !registry.evict_least_recently_active(),
            "a body that is arriving keeps its connection"
        );
        let stalled = micros_since(registry.epoch).saturating_sub(QUIET_FOR.as_micros() as u64 + 1);
        uploading.tracked.last_active.store(stalled, Ordering::Relaxed);
        assert!(registry.evict_least_recently_active(), "a stalled one does not");
        tokio::time::timeout(std::time::Duration::from_secs(1), uploading.tracked.cut_short())
            .await
            .expect("the body's reader is told");
        assert!(!uploading.tracked.received(), "the body is cut short");
        assert!(uploading.tracked.was_evicted());
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
