//! The write connections: each write takes one for itself, for the length of its transaction.
//!
//! A write can wait on a row lock (another session holds the row) for up to its lock timeout; on a
//! pipelined connection everything queued behind it would wait too. So writes never share a
//! connection: a writer checks one out, runs its transaction, and hands it back. A connection whose
//! transaction did not end cleanly (the writer stopped half-way, or the connection failed) is
//! discarded instead of handed back, so no later writer inherits an open transaction.
//!
//! Writes to one row queue in the process (`writes::row_locks`), but as many locked rows as there
//! are write connections would hold them all, and every unrelated write would wait behind them for
//! up to the lock timeout. So when every write connection has been held longer than any ordinary
//! write takes (`STUCK_AFTER`), a writer opens an extra connection for itself (at most
//! `DB_EXTRA_WRITE_CONNECTIONS` at once), closed when its write ends.
//!
//! At shutdown the pool closes (`close`), ending the writes still running: one left running in
//! Postgres could commit after the exit, over a later, acknowledged write its client sent through
//! another replica once it saw its connection close (docs/API.md, Shutdown).

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::ACQUIRE_WAIT;
use super::connect::Connector;
use super::keeper::{self, LiveConnection, Slot};
use crate::error::Error;

/// A write connection held this long is taken to be stuck in Postgres: an ordinary write holds
/// one for a millisecond or two.
pub(crate) const STUCK_AFTER: Duration = Duration::from_millis(100);
/// After an extra connection could not be opened, none is tried for this long.
const EXTRA_PAUSE: Duration = Duration::from_millis(1_000);
/// While closing, how often the statements still running are cancelled again (a cancel that
/// reaches Postgres before its statement does is ignored), and how often the pool looks whether
/// they have ended.
const CANCEL_AGAIN: Duration = Duration::from_millis(100);
const CLOSE_RECHECK: Duration = Duration::from_millis(5);

pub(crate) struct WritePool {
    pub(crate) slots: Box<[Arc<Slot>]>,
    state: Mutex<State>,
    /// Woken when a slot is handed back, an extra connection closes, or a keeper connects one.
    pub(crate) changed: Arc<Notify>,
    connector: Connector,
    /// `DB_EXTRA_WRITE_CONNECTIONS`.
    extra_max: usize,
    /// Set by `close`: no connection is handed out any more. Read under `state`'s lock by
    /// `take_turn`, so a writer either sees it or is in `held` before `close` looks.
    closed: AtomicBool,
}

struct State {
    /// When each slot was checked out, while a writer holds it (`None`: the slot is free).
    held_since: Vec<Option<Instant>>,
    /// Extra connections open (or being opened).
    extra: usize,
    /// After Postgres refused an extra connection, none is tried again before this.
    no_extra_until: Option<Instant>,
    /// Every connection a writer holds (slots and extra ones), to cancel its statement at close.
    held: Vec<Arc<LiveConnection>>,
}

/// A write connection held by one writer until dropped.
pub(crate) struct WriteConnection {
    pool: Arc<WritePool>,
    /// The slot it came from, or `None` for an extra connection.
    index: Option<usize>,
    connection: Arc<LiveConnection>,
    /// Set once the writer's transaction has ended (committed or rolled back) on this connection.
    clean: bool,
}

/// What a writer can do now.
enum Turn {
    Slot(WriteConnection),
    /// An extra connection was reserved for this writer: open it.
    OpenExtra,
    /// Wait for a change, or until the given instant (when the held connections will count as stuck).
    Wait(Option<Instant>),
    /// No connection is up: wait for a keeper to connect one.
    NoneUp,
    /// The pool is closed (the process is stopping).
    Closed,
}

impl WritePool {
    pub(crate) fn new(
        slots: Box<[Arc<Slot>]>,
        changed: Arc<Notify>,
        connector: Connector,
        extra_max: usize,
    ) -> WritePool {
        WritePool {
            state: Mutex::new(State {
                held_since: vec![None; slots.len()],
                extra: 0,
                no_extra_until: None,
                held: Vec::new(),
            }),
            closed: AtomicBool::new(false),
            slots,
            changed,
            connector,
            extra_max,
        }
    }

    /// A live write connection of this writer's own. Waits for one until `deadline` while others
    /// hold them (opening an extra one when they are all stuck), but only `ACQUIRE_WAIT` while
    /// none is up (Postgres is away: say so soon).
    pub(crate) async fn checkout(self: &Arc<Self>, deadline: Instant) -> Result<WriteConnection, Error> {
        let mut none_up_since: Option<Instant> = None;
        let mut extras_allowed = true;
        loop {
            // Created before the look, so it hears every `notify_waiters` from then on.
            let changed = self.changed.notified();
            let (any_up, recheck) = match self.take_turn(extras_allowed) {
                Turn::Slot(connection) => return Ok(connection),
                Turn::OpenExtra => match self.open_extra(deadline).await {
                    Some(connection) => return Ok(connection),
                    // Postgres refused one more connection: wait for the pool's own.
                    None => {
                        extras_allowed = false;
                        continue;
                    }
                },
                Turn::Wait(recheck) => (true, recheck),
                Turn::NoneUp => (false, None),
                Turn::Closed => return Err(Error::WriteNotApplied("the service is shutting down".into())),
            };
            let give_up_at = if any_up {
                none_up_since = None;
                deadline
            } else {
                let since = *none_up_since.get_or_insert_with(Instant::now);
                deadline.min(since + ACQUIRE_WAIT)
            };
            let wake_at = recheck.map_or(give_up_at, |recheck| recheck.min(give_up_at));
            if tokio::time::timeout_at(wake_at, changed).await.is_err() && wake_at == give_up_at {
                return Err(match (any_up, self.connector.schema.gap()) {
                    (true, _) => Error::WriteNotApplied("no write connection to Postgres became free in time".into()),
                    (false, Some(gap)) => Error::SchemaBehind(gap.to_string()),
                    (false, None) => Error::WriteNotApplied("no connection to Postgres is up".into()),
                });
            }
        }
    }

    fn take_turn(self: &Arc<Self>, extras_allowed: bool) -> Turn {
        let mut state = self.state();
        if self.closed.load(Ordering::Acquire) {
            return Turn::Closed;
        }
        let now = Instant::now();
        let live = |index: usize| self.slots[index].connection();
        let free_live = (0..self.slots.len())
            .filter(|&index| state.held_since[index].is_none())
            .find_map(|index| Some((index, live(index)?)));
        if let Some((index, connection)) = free_live {
            state.held_since[index] = Some(now);
            state.held.push(connection.clone());
            self.slots[index].in_flight.store(1, Ordering::Relaxed);
            return Turn::Slot(WriteConnection {
                pool: self.clone(),
                index: Some(index),
                connection,
                clean: false,
            });
        }
        // No live slot is free: every live one is held. When was the latest taken?
        let latest_held = (0..self.slots.len())
            .filter(|&index| live(index).is_some())
            .filter_map(|index| state.held_since[index])
            .max();
        let Some(latest_held) = latest_held else {
            return Turn::NoneUp;
        };
        let paused = state.no_extra_until.is_some_and(|until| now < until);
        let extra_possible = extras_allowed && !paused && state.extra < self.extra_max;
        let stuck_at = latest_held + STUCK_AFTER;
        if extra_possible && now >= stuck_at {
            state.extra += 1;
            return Turn::OpenExtra;
        }
        Turn::Wait(extra_possible.then_some(stuck_at))
    }

    /// Opens the extra connection reserved by `take_turn`; `None` (and the reservation returned) if
    /// Postgres does not take it within `ACQUIRE_WAIT` or before the deadline. The reservation is
    /// returned as well if the writer stops waiting meanwhile (this future is dropped).
    async fn open_extra(self: &Arc<Self>, deadline: Instant) -> Option<WriteConnection> {
        let reservation = ExtraReservation(self);
        // Not the whole deadline: a pool connection may well come free meanwhile.
        let give_up_at = deadline.min(Instant::now() + ACQUIRE_WAIT);
        let opened = tokio::time::timeout_at(give_up_at, keeper::open(&self.connector)).await;
        let Ok(Ok((connection, driver))) = opened else {
            // Postgres is refusing (e.g. at max_connections) or slow: let the pool's own serve.
            self.state().no_extra_until = Some(Instant::now() + EXTRA_PAUSE);
            return None;
        };
        // Ends when the connection is closed, i.e. when the writer drops it.
        tokio::spawn(driver);
        let mut state = self.state();
        if self.closed.load(Ordering::Acquire) {
            // Closed meanwhile: `checkout` finds it so (the reservation is given back first).
            drop(state);
            return None;
        }
        state.held.push(connection.clone());
        drop(state);
        // From here the connection gives the reservation back when it is dropped.
        std::mem::forget(reservation);
        Some(WriteConnection {
            pool: self.clone(),
            index: None,
            connection,
            clean: false,
        })
    }

    /// Closes the pool for good (every writer waiting for a connection, and every later one, is
    /// told nothing was written) and cancels the statement on each connection still held, again
    /// every `CANCEL_AGAIN`, until every writer has handed its connection back (its statement
    /// ended: committed, or cancelled and so rolled back; or, its connection lost, its session
    /// ended or given up on, which `lost_sessions` logs) or `patience` runs out. Returns how many
    /// were still held then: Postgres did not answer, so their statements may yet commit.
    pub(crate) async fn close(&self, patience: Duration) -> usize {
        let give_up_at = Instant::now() + patience;
        self.closed.store(true, Ordering::Release);
        self.changed.notify_waiters();
        let mut next_cancel = Instant::now();
        // A round of cancels at a time: a Postgres that does not answer gets no pile of them.
        let mut cancelling = tokio::task::JoinSet::new();
        loop {
            while cancelling.try_join_next().is_some() {}
            let now = Instant::now();
            {
                let state = self.state();
                if state.held.is_empty() || now >= give_up_at {
                    return state.held.len();
                }
                if now >= next_cancel && cancelling.is_empty() {
                    next_cancel = now + CANCEL_AGAIN;
                    for connection in &state.held {
                        cancelling.spawn(self.connector.cancel(&connection.client));
                    }
                }
            }
            tokio::time::sleep(CLOSE_RECHECK).await;
        }
    }

    pub(crate) fn extra_connections(&self) -> usize {
        self.state().extra
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An extra connection counted in `State::extra` that is not open yet: given back when dropped,
/// unless forgotten once it became a `WriteConnection`.
struct ExtraReservation<'pool>(&'pool WritePool);

impl Drop for ExtraReservation<'_> {
    fn drop(&mut self) {
        self.0.state().extra -= 1;
        self.0.changed.notify_waiters();
    }
}

impl WriteConnection {
    /// Records that the transaction ended (COMMIT or ROLLBACK answered): the connection can serve
    /// the next writer.
    pub(crate) fn mark_clean(&mut self) {
        self.clean = true;
    }

    /// Whether the pool was closed since: the process is stopping, and sends no more writes.
    pub(crate) fn pool_closed(&self) -> bool {
        self.pool.closed.load(Ordering::Acquire)
    }
}

impl Deref for WriteConnection {
    type Target = LiveConnection;

    fn deref(&self) -> &LiveConnection {
        &self.connection
    }
}

impl Drop for WriteConnection {
    fn drop(&mut self) {
        let mut state = self.pool.state();
        match self.index {
            Some(index) => {
                let slot = &self.pool.slots[index];
                if !self.clean {
                    slot.discard(&self.connection);
                }
                slot.in_flight.store(0, Ordering::Relaxed);
                state.held_since[index] = None;
            }
            // Closed once this last handle to its client is gone.
            None => state.extra -= 1,
        }
        if let Some(at) = state.held.iter().position(|held| Arc::ptr_eq(held, &self.connection)) {
            state.held.swap_remove(at);
        }
        drop(state);
        self.pool.changed.notify_waiters();
    }
}
