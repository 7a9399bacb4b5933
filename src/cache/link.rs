//! The connection to Redis: one multiplexed connection that every request shares, replaced when
//! it fails or stops answering (three timeouts in a row, or any transport error: a Redis behind a
//! stalled proxy just stops answering). One background task at a time reconnects, with a capped
//! back-off; meanwhile callers find no connection and fail fast.
//!
//! A new connection carries fences at once, but serves cached bodies only once its Redis is known
//! to hold nothing older than the writes acknowledged before: its `run_id` is the one recorded at
//! `{prefix}:instance`, or a sweep has made it so (`sweep`). While the record does not name the
//! Redis, every write waits for in-process copies (`fence`): it is written after a sweep, and again
//! if it goes from a Redis a connection serves, each time `RECORD_NO_SOONER_THAN` after a marker
//! that a flush or restart in between removes. A retired connection takes the in-process copies
//! with it: it may have been reading from a Redis that is no primary any more.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError};
use tokio::sync::Notify;

use super::local::VOUCHED_FOR;
use super::stored_value::Token;
use super::sweep::sweep;
use crate::backoff::Backoff;
use crate::telemetry::log::Logger;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::rate_limited::RateLimitedWarning;

/// Connecting (TCP, AUTH, `INFO`; `tracking`'s subscribing too) may take this long before failing.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const RECONNECT_FIRST: Duration = Duration::from_millis(20);
const RECONNECT_CAP: Duration = Duration::from_millis(500);
/// How often the current connection's Redis is checked to be the primary it was.
const INSTANCE_CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long after the last flush or restart a record is written: a replica may serve a copy for
/// `VOUCHED_FOR` on the word of a round trip sent before the event that took the record away, with
/// `{prefix}:copies` (`fence`); the rest is a margin of two renewals of that key.
const RECORD_NO_SOONER_THAN: Duration = VOUCHED_FOR.saturating_add(Duration::from_millis(50));
/// The marker of a record to be written lives far longer than the wait, and goes by itself.
const MARKER_LIFETIME_MS: u64 = 10_000;
/// Writes the record (KEYS[1], ARGV[1]) if its marker (KEYS[2]) is still there, removing it: a
/// flush or a restart since the marker was set removed it.
const RECORD_IF_MARKED: &str = r"
if redis.call('DEL', KEYS[2]) == 0 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
return 1";
/// Timeouts in a row after which the connection is taken for stalled and replaced.
const TIMEOUTS_BEFORE_REPLACING: u32 = 3;

/// The connection, shared (in an `Arc`) by the cache, the reconnecting task and the watcher.
pub(crate) struct Link {
    client: Client,
    config: AsyncConnectionConfig,
    current: RwLock<Option<(MultiplexedConnection, u64)>>,
    generation: AtomicU64,
    /// The generation whose Redis is known to hold no body older than an acknowledged write; only
    /// that connection serves and fills cached bodies.
    serving: AtomicU64,
    connecting: AtomicBool,
    /// Woken whenever a new connection is published.
    connected: Notify,
    timeouts_in_a_row: AtomicU32,
    /// `{prefix}:user:`, what a sweep removes.
    user_prefix: String,
    /// `{prefix}:instance`: the `run_id` of the Redis whose bodies are current.
    instance_key: Vec<u8>,
    metrics: Arc<Metrics>,
    logger: Logger,
    connect_failures: RateLimitedWarning,
    record_failures: RateLimitedWarning,
    /// The `run_id` of the Redis the current connection reached.
    run_id: Mutex<Arc<str>>,
    record_script: redis::Script,
    /// Called when a connection is retired, after it can no longer be taken.
    forget_reads: Box<dyn Fn() + Send + Sync>,
}

impl Link {
    /// Starts connecting in the background; never fails on an unreachable Redis. `forget_reads`
    /// drops whatever the process kept of reads through a connection it retires.
    pub(crate) fn start(
        client: Client,
        user_prefix: String,
        instance_key: Vec<u8>,
        metrics: Arc<Metrics>,
        logger: Logger,
        forget_reads: Box<dyn Fn() + Send + Sync>,
    ) -> Arc<Link> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            // Every call is bounded by the cache's own timeout; a second timer per command in the
            // driver would only cost time on the hot path.
            .set_response_timeout(None)
            // The default of 50 queued commands is too few for many concurrent requests.
            .set_pipeline_buffer_size(4096);
        let warning = |message| RateLimitedWarning::new(logger.clone(), message, super::COMPLAIN_EVERY);
        let link = Arc::new(Link {
            client,
            config,
            current: RwLock::new(None),
            generation: AtomicU64::new(0),
            serving: AtomicU64::new(0),
            connecting: AtomicBool::new(false),
            connected: Notify::new(),
            timeouts_in_a_row: AtomicU32::new(0),
            user_prefix,
            instance_key,
            metrics,
            run_id: Mutex::new(Arc::from("")),
            connect_failures: warning("cache unavailable: cannot connect to redis; serving from postgres"),
            record_failures: warning(
                "cannot record the redis as current; every write waits for in-process copies until it is",
            ),
            logger,
            record_script: redis::Script::new(RECORD_IF_MARKED),
            forget_reads,
        });
        link.ensure_connecting();
        tokio::spawn(watch_the_instance(Arc::downgrade(&link)));
        link
    }

    /// `{prefix}:instance`, which the fence scripts check too.
    pub(crate) fn instance_key(&self) -> &[u8] {
        &self.instance_key
    }

    /// The `run_id` of the Redis the current connection reached (or one opened since).
    pub(crate) fn run_id(&self) -> Arc<str> {
        self.run_id.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The current connection, if its Redis may serve cached bodies (see the module doc).
    pub(crate) fn serving_connection(self: &Arc<Self>) -> Option<(MultiplexedConnection, u64)> {
        self.connection()
            .filter(|(_, generation)| *generation == self.serving.load(Ordering::Acquire))
    }

    /// The current connection and its generation, or `None` while (re)connecting.
    pub(crate) fn connection(self: &Arc<Self>) -> Option<(MultiplexedConnection, u64)> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner).clone();
        if current.is_none() {
            self.ensure_connecting();
        }
        current
    }

    /// The current connection, waiting up to `patience` for one while (re)connecting: a write
    /// arriving just as a replica starts, or just after a reconnect began, need not be refused.
    pub(crate) async fn connection_within(
        self: &Arc<Self>,
        patience: Duration,
    ) -> Option<(MultiplexedConnection, u64)> {
        let until = tokio::time::Instant::now() + patience;
        loop {
            // Registered before the check, so a connection published in between is not missed.
            let published = self.connected.notified();
            tokio::pin!(published);
            published.as_mut().enable();
            let current = self.connection();
            if current.is_some() || tokio::time::timeout_at(until, published).await.is_err() {
                return current;
            }
        }
    }

    /// A call was answered, with a value or with an error of Redis's own.
    pub(crate) fn answered(&self) {
        if self.timeouts_in_a_row.load(Ordering::Relaxed) != 0 {
            self.timeouts_in_a_row.store(0, Ordering::Relaxed);
        }
    }

    /// A call on connection `generation` got no answer in time; the last of
    /// `TIMEOUTS_BEFORE_REPLACING` in a row retires it.
    pub(crate) fn timed_out(self: &Arc<Self>, generation: u64) {
        if self.timeouts_in_a_row.fetch_add(1, Ordering::Relaxed) + 1 >= TIMEOUTS_BEFORE_REPLACING {
            self.retire(generation);
        }
    }

    /// Replaces connection `generation`, unless that is done already: a call on it failed, or it
    /// reaches another Redis than it did.
    pub(crate) fn retire(self: &Arc<Self>, generation: u64) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.take_if(|(_, live)| *live == generation).is_some() {
            drop(current);
            (self.forget_reads)();
            self.timeouts_in_a_row.store(0, Ordering::Relaxed);
            self.ensure_connecting();
        }
    }

    fn ensure_connecting(self: &Arc<Self>) {
        if self.connecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.clone();
        tokio::spawn(async move {
            let mut backoff = Backoff::new(RECONNECT_FIRST, RECONNECT_CAP);
            let opened = loop {
                let problem = match tokio::time::timeout(CONNECT_TIMEOUT, inner.open()).await {
                    Ok(Ok(opened)) => break opened,
                    Ok(Err(error)) => error.to_string(),
                    Err(_) => "no answer in time".to_owned(),
                };
                inner.metrics.cache_errors.fetch_add(1, Ordering::Relaxed);
                inner.connect_failures.warn(&problem, &[]);
                tokio::time::sleep(backoff.next_wait()).await;
            };
            inner.connecting.store(false, Ordering::Release);
            if let Some((connection, generation, run_id)) = opened {
                inner.sweep_until_current(connection, generation, &run_id).await;
            }
        });
    }

    /// Connects and publishes the connection. It serves at once if its Redis is the instance
    /// recorded as current; otherwise the connection, its generation and the Redis's `run_id` come
    /// back for a sweep.
    async fn open(&self) -> Result<Option<(MultiplexedConnection, u64, String)>, RedisError> {
        let mut connection = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let run_id = primary_run_id(&mut connection).await?;
        // Anything but a record (another type at the key, an error) means a sweep: always safe.
        let get = redis::Cmd::get(&self.instance_key);
        let recorded = get.query_async::<Option<Vec<u8>>>(&mut connection).await.ok().flatten();
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        // Before the connection is published: a fence on it compares the record with its `run_id`.
        *self.run_id.lock().unwrap_or_else(PoisonError::into_inner) = Arc::from(run_id.as_str());
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some((connection.clone(), generation));
        self.connected.notify_waiters();
        if !run_id.is_empty() && recorded.as_deref() == Some(run_id.as_bytes()) {
            self.serving.store(generation, Ordering::Release);
            return Ok(None);
        }
        Ok(Some((connection, generation, run_id)))
    }

    /// Sweeps a Redis not recorded as current, trying again until it succeeds or the connection is
    /// replaced; then lets the connection serve, and records the Redis as current.
    async fn sweep_until_current(&self, mut connection: MultiplexedConnection, generation: u64, run_id: &str) {
        let mut backoff = Backoff::new(RECONNECT_FIRST, RECONNECT_CAP);
        while self.generation.load(Ordering::Acquire) == generation {
            match sweep(&mut connection, &self.user_prefix).await {
                Ok(()) => {
                    self.metrics.cache_sweeps.fetch_add(1, Ordering::Relaxed);
                    // Only if it is still the current connection: a newer one decides for itself.
                    let _ = self.serving.fetch_max(generation, Ordering::AcqRel);
                    self.logger.info(
                        "redis was not the instance recorded as current (a first start, a restart, a \
                         failover or a flush): every cached body under the prefix removed before serving any",
                        &[("run_id", &run_id)],
                    );
                    // Should this fail, `watch_the_instance` writes the missing record.
                    self.write_record(&mut connection, run_id).await;
                    return;
                }
                Err(problem) => {
                    self.metrics.cache_errors.fetch_add(1, Ordering::Relaxed);
                    self.logger.warn(
                        "sweeping a redis not recorded as current failed; serving no cached body until it succeeds",
                        &[("error.message", &problem)],
                    );
                    tokio::time::sleep(backoff.next_wait()).await;
                }
            }
        }
    }

    /// Writes the record of the Redis that `connection` serves from again if it went (a flush, a
    /// `DEL`, an eviction) or holds something else: its bodies are still no older than the writes
    /// acknowledged, since taking keys away stores none.
    async fn restore_record(&self, connection: &mut MultiplexedConnection, run_id: &str) {
        let get = redis::Cmd::get(&self.instance_key);
        let answer = tokio::time::timeout(CONNECT_TIMEOUT, get.query_async::<Option<Vec<u8>>>(connection)).await;
        if answer.is_ok_and(|recorded| recorded.ok().flatten().as_deref() != Some(run_id.as_bytes()))
            && self.write_record(connection, run_id).await
        {
            self.logger.info(
                "the record of the redis serving as current was missing or another's (a flush?); written again",
                &[("run_id", &run_id)],
            );
        }
    }

    /// Records `run_id` at `{prefix}:instance` `RECORD_NO_SOONER_THAN` from now, unless a flush or a
    /// restart (which the wait must follow) took the marker set now; whether Redis wrote it.
    async fn write_record(&self, connection: &mut MultiplexedConnection, run_id: &str) -> bool {
        // A Redis that tells no `run_id` is never recorded: writes to it always wait for copies.
        if run_id.is_empty() {
            return false;
        }
        let marker = [&self.instance_key[..], b":pending:", Token::new().as_bytes()].concat();
        let mut mark = redis::cmd("SET");
        mark.arg(&marker).arg(1).arg("PX").arg(MARKER_LIFETIME_MS);
        let mut record = self.record_script.key(&self.instance_key);
        record.key(&marker).arg(run_id);
        let marked_then_recorded = async {
            super::within(CONNECT_TIMEOUT, mark.query_async::<()>(connection)).await?;
            tokio::time::sleep(RECORD_NO_SOONER_THAN).await;
            super::within(CONNECT_TIMEOUT, record.invoke_async::<i64>(connection)).await
        };
        // 0: the marker went (a flush or a restart came), and the next check starts again.
        marked_then_recorded
            .await
            .inspect_err(|problem| self.record_failures.warn(problem, &[("run_id", &run_id)]))
            .is_ok_and(|written| written == 1)
    }
}

/// Whether an error means the connection itself failed, or reached a Redis that is no primary any
/// more (a failover that left the connection open): either way it must be replaced.
pub(crate) fn is_transport_failure(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_unrecoverable_error()
        || matches!(error.code(), Some("READONLY" | "MASTERDOWN"))
}

/// The `run_id` of the Redis `connection` reached, if it is a primary: a replica (a demoted
/// primary after a failover) may hold bodies the primary has removed, and takes no fences.
pub(crate) async fn primary_run_id(connection: &mut MultiplexedConnection) -> Result<String, RedisError> {
    let info: String = redis::cmd("INFO")
        .arg(&["server", "replication"][..])
        .query_async(connection)
        .await?;
    run_id_of_primary(&info)
}

/// `primary_run_id` of an `INFO` answer that has the server and replication sections.
pub(crate) fn run_id_of_primary(info: &str) -> Result<String, RedisError> {
    match info_field(info, "role").unwrap_or("master") {
        "master" => Ok(info_field(info, "run_id").unwrap_or_default().to_owned()),
        role => Err(RedisError::from((
            redis::ErrorKind::Client,
            "not a primary",
            format!("this redis is a {role}"),
        ))),
    }
}

/// The value of `name` in an `INFO` answer.
pub(crate) fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':').map(str::trim))
}

/// Once a second, checks that the current connection still reaches the primary it reached when it
/// was opened: a failover that keeps clients connected to the demoted node, or a restart behind a
/// proxy, shows only this way. A change retires the connection; the next one is checked (and the
/// Redis swept if need be) as any new one is.
async fn watch_the_instance(link: std::sync::Weak<Link>) {
    let mut ticks = tokio::time::interval(INSTANCE_CHECK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(link) = link.upgrade() else {
            return;
        };
        let Some((mut connection, generation)) = link.connection() else {
            continue;
        };
        let expected = link.run_id();
        match tokio::time::timeout(CONNECT_TIMEOUT, primary_run_id(&mut connection)).await {
            Ok(Ok(run_id)) if *run_id == *expected => {
                let serving = link.serving_connection();
                if serving.is_some_and(|(_, serving)| serving == generation) {
                    link.restore_record(&mut connection, &expected).await;
                }
            }
            Ok(_) => link.retire(generation),
            // No answer retires nothing: the calls' own timeouts decide whether it is stalled.
            Err(_) => {}
        }
    }
}
