//! In-process copies of cached bodies (`CACHE_LOCAL_ENTRIES`; client-side caching, a near cache),
//! kept coherent by Redis itself. Every rule is about never keeping a copy Redis has since changed:
//! - **A copy is stored only if nothing invalidated its key since its Redis read was sent**: the
//!   reader reserves the key *before* sending its read, an invalidation (applied in wire order:
//!   `tracking`) removes the reservation, and the copy is stored only into its own.
//! - **A copy is served only while the tracking connection vouches for it**: a round trip sent on
//!   it less than `VOUCHED_FOR` ago has been answered. Redis sends a change's invalidations before
//!   it answers any command read after the change was answered, so a copy served now has missed no
//!   change answered before that round trip was sent; and a committed write answers no sooner than
//!   `VOUCHED_FOR` after its fence (`fence`), so a read after the answer finds the old copy gone.
//! - **Anything that may have lost an invalidation drops every copy**: the tracking connection's
//!   loss (none is served until it is back, `flush`) and a null invalidation (Redis flushed).
//! - **Bounded**: at most `CACHE_LOCAL_ENTRIES` copies (a full shard drops an arbitrary one), none
//!   outliving the time to live Redis reported for its key.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use uuid::Uuid;

/// Shards, so that concurrent requests rarely contend on one lock.
const SHARDS: usize = 16;

/// How long an answered round trip on the tracking connection vouches for the copies, counted
/// from when it was sent (`tracking` sends one 4 times as often). A committed write waits this long
/// after its fence before it answers, when any replica may serve copies: shorter would make that
/// wait cheaper, but copies would go unserved whenever a busy machine delays a round trip.
pub(crate) const VOUCHED_FOR: Duration = Duration::from_millis(100);

pub(crate) struct LocalCopies {
    shards: [Mutex<Shard>; SHARDS],
    capacity_per_shard: usize,
    /// Whether copies may be stored: the tracking connection is up.
    tracking_healthy: AtomicBool,
    /// Until when (µs after `clock`) the latest answered round trip on the tracking connection
    /// vouches for the copies: `VOUCHED_FOR` after it was sent; 0 until tracking's first.
    vouched_until: AtomicU64,
    clock: Instant,
    /// Tokens for placeholders, unique for the process's life.
    next_token: AtomicU64,
    /// Changes whenever copies may have been missed (a flush) or tracking is set up again: a
    /// reservation made under another epoch is never filled.
    epoch: AtomicU64,
}

type Shard = HashMap<Uuid, Entry, BuildHasherDefault<DefaultHasher>>;

enum Entry {
    /// A reader's Redis read is on its way; only that reader may turn this into a copy.
    Reserved(u64),
    Copy {
        body: Bytes,
        expires: Instant,
    },
}

/// A reader's claim on a key, taken before its Redis read is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reservation {
    token: u64,
    epoch: u64,
}

impl LocalCopies {
    pub(crate) fn new(capacity: usize) -> LocalCopies {
        LocalCopies {
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
            capacity_per_shard: capacity.div_ceil(SHARDS).max(1),
            tracking_healthy: AtomicBool::new(false),
            vouched_until: AtomicU64::new(0),
            clock: Instant::now(),
            next_token: AtomicU64::new(1),
            epoch: AtomicU64::new(0),
        }
    }

    /// Whether copies may be served and stored now: tracking is up and vouched for them lately.
    pub(crate) fn usable(&self) -> bool {
        self.tracking_healthy.load(Ordering::Acquire)
            && self.micros(Instant::now()) < self.vouched_until.load(Ordering::Acquire)
    }

    /// A PING sent at `sent` came back on the tracking connection: every invalidation Redis made
    /// before it has been applied.
    pub(crate) fn vouch(&self, sent: Instant) {
        self.vouched_until
            .fetch_max(self.micros(sent + VOUCHED_FOR), Ordering::AcqRel);
    }

    /// `at` in µs after `clock`.
    fn micros(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.clock).as_micros()).unwrap_or(u64::MAX)
    }

    /// The copy of a body, if there is a live one.
    pub(crate) fn get(&self, id: Uuid) -> Option<Bytes> {
        if !self.usable() {
            return None;
        }
        match self.shard(id).get(&id) {
            Some(Entry::Copy { body, expires }) if *expires > Instant::now() => Some(body.clone()),
            _ => None,
        }
    }

    /// Reserves `id` for a copy of what the Redis read about to be sent returns.
    pub(crate) fn reserve(&self, id: Uuid) -> Option<Reservation> {
        // The epoch first: a flush that races this makes the reservation worthless.
        let epoch = self.epoch.load(Ordering::Acquire);
        if !self.usable() {
            return None;
        }
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let mut shard = self.shard(id);
        if !shard.contains_key(&id)
            && shard.len() >= self.capacity_per_shard
            && let Some(evicted) = shard.keys().next().copied()
        {
            shard.remove(&evicted);
        }
        shard.insert(id, Entry::Reserved(token));
        Some(Reservation { token, epoch })
    }

    /// Stores the copy into its reservation, unless an invalidation or a flush removed it since.
    pub(crate) fn store(&self, id: Uuid, reservation: Reservation, body: Bytes, lifetime: Duration) {
        let mut shard = self.shard(id);
        if self.usable()
            && self.epoch.load(Ordering::Acquire) == reservation.epoch
            && let Some(entry) = shard.get_mut(&id)
            && matches!(entry, Entry::Reserved(token) if *token == reservation.token)
        {
            *entry = Entry::Copy {
                body,
                expires: Instant::now() + lifetime,
            };
        }
    }

    /// Drops the copy (or reservation) of `id`: an invalidation, or this process's own write.
    pub(crate) fn remove(&self, id: Uuid) {
        self.shard(id).remove(&id);
    }

    /// Drops every copy and reservation, and serves none until `resume`: invalidations may have
    /// been missed.
    pub(crate) fn flush(&self) {
        self.tracking_healthy.store(false, Ordering::Release);
        self.invalidate_all();
    }

    /// Drops every copy and reservation (Redis said everything changed), staying usable.
    pub(crate) fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for shard in &self.shards {
            lock(shard).clear();
        }
    }

    /// Tracking is (again) known to deliver every invalidation: copies may be used once its
    /// first round trip is answered (a round trip of an earlier connection vouches for nothing).
    pub(crate) fn resume(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.vouched_until.store(0, Ordering::Release);
        self.tracking_healthy.store(true, Ordering::Release);
    }

    /// How many entries (copies and reservations) are held.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }

    fn shard(&self, id: Uuid) -> MutexGuard<'_, Shard> {
        let index = BuildHasherDefault::<DefaultHasher>::default().hash_one(id) as usize % SHARDS;
        lock(&self.shards[index])
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIFETIME: Duration = Duration::from_secs(60);

    fn healthy(capacity: usize) -> LocalCopies {
        let copies = LocalCopies::new(capacity);
        copies.resume();
        copies.vouch(Instant::now());
        copies
    }

    #[test]
    fn a_copy_is_stored_into_its_own_reservation_and_served() {
        let copies = healthy(100);
        let id = Uuid::from_u128(1);
        let reservation = copies.reserve(id).unwrap();
        assert_eq!(copies.get(id), None, "a reservation is not a copy");
        copies.store(id, reservation, Bytes::from_static(b"body"), LIFETIME);
        assert_eq!(copies.get(id), Some(Bytes::from_static(b"body")));
    }

    #[test]
    fn an_invalidation_between_the_read_and_the_store_wins() {
        let copies = healthy(100);
        let id = Uuid::from_u128(1);
        let reservation = copies.reserve(id).unwrap();
        copies.remove(id); // the invalidation arrives while the read's answer is on its way
        copies.store(id, reservation, Bytes::from_static(b"old"), LIFETIME);
        assert_eq!(copies.get(id), None);
        let newer = copies.reserve(id).unwrap();
        copies.store(id, reservation, Bytes::from_static(b"old"), LIFETIME);
        assert_eq!(copies.get(id), None, "an older reader cannot fill a newer reservation");
        copies.store(id, newer, Bytes::from_static(b"new"), LIFETIME);
        assert_eq!(copies.get(id), Some(Bytes::from_static(b"new")));
    }

    #[test]
    fn a_flush_drops_everything_and_serves_nothing_until_tracking_resumes() {
        let copies = healthy(100);
        let id = Uuid::from_u128(1);
        let reservation = copies.reserve(id).unwrap();
        copies.store(id, reservation, Bytes::from_static(b"body"), LIFETIME);
        copies.flush();
        assert_eq!((copies.get(id), copies.reserve(id), copies.len()), (None, None, 0));
        copies.resume();
        assert_eq!(copies.get(id), None, "nothing survived the flush");
    }

    #[test]
    fn copies_are_served_only_while_a_recent_ping_vouches_for_them() {
        let copies = healthy(100);
        let id = Uuid::from_u128(1);
        let reservation = copies.reserve(id).unwrap();
        copies.store(id, reservation, Bytes::from_static(b"body"), LIFETIME);
        assert!(copies.get(id).is_some());
        std::thread::sleep(VOUCHED_FOR);
        assert_eq!(copies.get(id), None, "no PING answered lately: no copy is served");
        assert_eq!(copies.reserve(id), None, "nor reserved");
        copies.vouch(Instant::now());
        assert!(copies.get(id).is_some(), "a fresh answer vouches again");
    }

    #[test]
    fn tracking_set_up_again_serves_no_copy_before_its_own_first_answer() {
        let copies = LocalCopies::new(100);
        copies.resume();
        assert_eq!(
            copies.reserve(Uuid::from_u128(1)),
            None,
            "a fresh process: nothing vouched yet"
        );
        copies.vouch(Instant::now());
        assert!(copies.usable());
        copies.flush();
        copies.resume();
        assert!(!copies.usable(), "the lost connection's answers vouch for nothing now");
    }

    #[test]
    fn a_reservation_from_before_a_flush_is_never_filled() {
        let copies = healthy(100);
        let id = Uuid::from_u128(1);
        let before = copies.reserve(id).unwrap();
        copies.flush();
        copies.resume();
        // A reservation re-made at the same key by the old reader's token cannot exist, but even
        // a reservation that survived a racing clear is from the old epoch.
        copies.store(id, before, Bytes::from_static(b"old"), LIFETIME);
        assert_eq!(copies.get(id), None);
    }

    #[test]
    fn copies_expire_and_the_count_is_bounded() {
        let copies = healthy(SHARDS);
        let id = Uuid::from_u128(1);
        let reservation = copies.reserve(id).unwrap();
        copies.store(id, reservation, Bytes::from_static(b"body"), Duration::ZERO);
        assert_eq!(copies.get(id), None, "an expired copy is not served");
        for n in 0..10_000 {
            // Vouched again each time: on a loaded machine, 10,000 rounds can outlast one vouching.
            copies.vouch(Instant::now());
            let id = Uuid::from_u128(n);
            let reservation = copies.reserve(id).unwrap();
            copies.store(id, reservation, Bytes::from_static(b"body"), LIFETIME);
        }
        assert!(copies.len() <= SHARDS, "{} entries", copies.len());
    }
}
