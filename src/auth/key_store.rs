//! The issuer's keys as the process holds them: fetched at start-up, again on a schedule, and
//! at once when a token names a key the process does not hold (the rules, their figures and
//! their reasons: docs/API.md, The issuer's keys).
//!
//! One task fetches; requests only read the current set. A request whose `kid` is unknown waits
//! for a fetch that started after it needed the key, since the one under way may predate it.
//! Failed fetches are logged each time: the backoff bounds them to one a minute.

use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;

use super::fetch::KeySetSource;
use super::key_set::KeySet;
use super::token_cache::RememberedTokens;
use crate::backoff::Backoff;
use crate::config::BearerSettings;
use crate::telemetry::log::Logger;
use crate::telemetry::metrics::Metrics;

/// The most one fetch (discovery and key set) may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Retries while a fetch fails: soon after the first failure, then doubling up to the cap.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// The current key set and the fetching behind it.
pub(super) struct KeyStore {
    current: RwLock<Option<Arc<KeySet>>>,
    source: KeySetSource,
    settings: BearerSettings,
    fetching: Mutex<Fetching>,
    /// Counts finished fetches, so a request can wait for the next one.
    finished: watch::Sender<u64>,
    /// Wakes the fetching task for an unknown key; shared with it, which holds the store itself
    /// only while it fetches.
    wake: Arc<Notify>,
    /// A place for each request that may wait for a fetch at once.
    waiting: Semaphore,
    /// Forgotten whenever a fetch drops a key they were verified with.
    tokens: Arc<RememberedTokens>,
    metrics: Arc<Metrics>,
    logger: Logger,
}

struct Fetching {
    /// A fetch is running (from the start: the first one begins as the store is made).
    under_way: bool,
    /// A request asked for a fetch that has not started yet.
    requested: bool,
    /// When a token's unknown `kid` last caused a fetch.
    last_for_unknown_key: Option<Instant>,
}

impl KeyStore {
    /// Starts the fetching task; the first set arrives when it does.
    pub(super) fn start(
        settings: &BearerSettings,
        max_waiting: usize,
        tokens: Arc<RememberedTokens>,
        metrics: Arc<Metrics>,
        logger: &Logger,
    ) -> Arc<KeyStore> {
        let store = Arc::new(KeyStore {
            current: RwLock::new(None),
            source: KeySetSource::new(settings.keys.clone(), settings.issuer.clone()),
            settings: settings.clone(),
            fetching: Mutex::new(Fetching {
                under_way: true,
                requested: false,
                last_for_unknown_key: None,
            }),
            finished: watch::Sender::new(0),
            wake: Arc::new(Notify::new()),
            waiting: Semaphore::new(max_waiting),
            tokens,
            metrics,
            logger: logger.clone(),
        });
        if store.source.is_plain_http() {
            store.logger.warn(
                "the issuer's keys are fetched over plain http: anyone on the path can replace them; use https outside a network you trust",
                &[("url", &store.source.describe())],
            );
        }
        tokio::spawn(keep_fetching(Arc::downgrade(&store), store.wake.clone()));
        store
    }

    /// The keys held now; `None` until a first fetch brings a key set.
    pub(super) fn current(&self) -> Option<Arc<KeySet>> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits for a fetch that starts after the key was needed (see the module doc), for a token
    /// whose `kid` the current set lacks or while none is held; only when no new fetch may be asked
    /// for is the one under way all there is. `false` when none finished for it in time, or
    /// `max_waiting` requests wait already (the fetch is still asked for).
    pub(super) async fn fetch_for_unknown_key(&self) -> bool {
        let mut finished = self.finished.subscribe();
        let keys_held = self.current().is_some();
        let (finished_before, fetches) = {
            let mut fetching = self.fetching.lock().unwrap_or_else(PoisonError::into_inner);
            let recent = fetching
                .last_for_unknown_key
                .is_some_and(|at| at.elapsed() < self.settings.unknown_key_fetch_every);
            // Before any set is held, the fetch under way is the first: nothing it could predate.
            let first_set_under_way = fetching.under_way && !keys_held;
            if !(fetching.requested || recent || first_set_under_way) {
                fetching.last_for_unknown_key = Some(Instant::now());
                fetching.requested = true;
                self.wake.notify_one();
            }
            let fetches: u64 = match (fetching.under_way, fetching.requested) {
                (true, true) => 2,
                (true, false) | (false, true) => 1,
                (false, false) => return false,
            };
            // Read under the lock that `fetch_once` counts a finished fetch under.
            (*finished.borrow_and_update(), fetches)
        };
        // A fetch asked for now starts a moment later and may take all of its own timeout. The same
        // patience for one fetch or two, so the request keeps most of its 10 s deadline: a
        // follow-up that misses it only leaves this token refused (401), as before it existed.
        let patience = FETCH_TIMEOUT + Duration::from_secs(1);
        let Ok(_place) = self.waiting.try_acquire() else {
            return false;
        };
        let waited = finished.wait_for(|count| *count >= finished_before + fetches);
        tokio::time::timeout(patience, waited)
            .await
            .is_ok_and(|waited| waited.is_ok())
    }

    /// One fetch; `true` when it left a usable key held. A key set without one counts as a
    /// fetch that succeeded, but is fetched again at the retries' pace, not the schedule's: every
    /// token is refused until the issuer lists a usable key again.
    async fn fetch_once(&self) -> bool {
        {
            let mut fetching = self.fetching.lock().unwrap_or_else(PoisonError::into_inner);
            fetching.under_way = true;
            fetching.requested = false;
        }
        let fetched = tokio::time::timeout(FETCH_TIMEOUT, self.source.fetch())
            .await
            .unwrap_or_else(|_| Err(format!("no key set within {FETCH_TIMEOUT:?}")))
            .and_then(|document| KeySet::parse(&document, &self.settings));
        let (succeeded, usable) = match fetched {
            Ok(set) => {
                let usable = !set.is_empty();
                self.replace(set);
                (true, usable)
            }
            Err(error) => {
                self.logger.warn(
                    "the issuer's keys could not be fetched",
                    &[
                        ("url", &self.source.describe()),
                        ("keys_held", &self.current().map_or(0, |set| set.len())),
                        ("error.message", &error),
                    ],
                );
                (false, false)
            }
        };
        self.metrics.record_key_fetch(succeeded);
        // One step under the lock, so a request never sees the fetch over but not yet counted.
        let mut fetching = self.fetching.lock().unwrap_or_else(PoisonError::into_inner);
        fetching.under_way = false;
        self.finished.send_modify(|count| *count += 1);
        usable
    }

    fn replace(&self, set: KeySet) {
        let set = Arc::new(set);
        let previous = self
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(set.clone());
        let url = self.source.describe();
        if set.is_empty() {
            self.logger.warn(
                "the issuer's key set lists no usable signing key (RS256 of 2048 bits or more, ES256, EdDSA): every token is refused until it does",
                &[("url", &url), ("keys_listed", &set.listed)],
            );
        } else if previous.as_ref().is_none_or(|previous| previous.is_empty()) {
            self.logger.info(
                "the issuer's keys are in: protected routes are served",
                &[("url", &url), ("keys", &set.len())],
            );
        }
        if set.over_the_limit > 0 {
            self.logger.warn(
                "the issuer's key set lists more usable keys than are held: tokens signed with the rest are refused",
                &[
                    ("url", &url),
                    ("keys", &set.len()),
                    ("keys_left_out", &set.over_the_limit),
                ],
            );
        }
        if previous.is_some_and(|previous| previous.lost_keys_in(&set)) {
            // A token verified with a key the issuer withdrew must not stay accepted.
            self.tokens.forget_all();
            self.logger.info(
                "the issuer withdrew a key: remembered tokens are verified again",
                &[("keys", &set.len())],
            );
        }
    }
}

/// Fetches until the store is dropped: on the schedule while usable keys are held, with backoff
/// while fetches fail or bring none, and at once when woken for an unknown key.
async fn keep_fetching(store: Weak<KeyStore>, wake: Arc<Notify>) {
    let mut retry = Backoff::new(RETRY_MIN, RETRY_MAX);
    loop {
        let Some(strong) = store.upgrade() else { return };
        let wait = if strong.fetch_once().await {
            retry.reset();
            strong.settings.refresh_every
        } else {
            retry.next_wait().min(strong.settings.refresh_every)
        };
        drop(strong);
        let _ = tokio::time::timeout(wait, wake.notified()).await;
    }
}
