//! The connection to Redis: one multiplexed connection that every request shares, replaced when
//! it fails or stops answering, and a check at every (re)connection for a Redis that restarted.
//!
//! Three timeouts in a row, or any transport error, retire the connection: a Redis behind a
//! stalled proxy never reports an error, it just stops answering, and a fresh connection is the
//! only way out. Reconnecting happens in one background task at a time with a capped backoff;
//! meanwhile callers find no connection and fail fast (the breaker then keeps reads away).
//!
//! A Redis that restarted may have come back with data it had persisted — including bodies that
//! acknowledged writes removed after the snapshot. So a new connection whose server has another
//! `run_id` than the last one seen makes the pending removals sweep the whole prefix before any
//! cached body is served again (`PendingRemovals::require_sweep`), and it is only published after
//! that is recorded.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError};

use super::pending::PendingRemovals;
use crate::telemetry::log::Logger;
use crate::telemetry::metrics::Metrics;

/// Connecting (TCP, AUTH, the `INFO` check) may take this long before the attempt counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const RECONNECT_MIN: Duration = Duration::from_millis(20);
const RECONNECT_MAX: Duration = Duration::from_millis(500);
/// Timeouts in a row after which the connection is taken for stalled and replaced.
const TIMEOUTS_BEFORE_REPLACING: u32 = 3;

/// Shared handle to the connection; cheap to clone.
#[derive(Clone)]
pub(crate) struct RedisLink {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    config: AsyncConnectionConfig,
    current: RwLock<Option<(MultiplexedConnection, u64)>>,
    generation: AtomicU64,
    connecting: AtomicBool,
    timeouts_in_a_row: AtomicU32,
    last_run_id: Mutex<Option<String>>,
    pending: Arc<PendingRemovals>,
    metrics: Arc<Metrics>,
    logger: Logger,
}

/// How a call on the connection went, as far as the connection is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallOutcome {
    /// Redis answered (with a value or with an error of its own).
    Answered,
    TimedOut,
    /// The connection failed.
    Broken,
}

impl RedisLink {
    /// Starts connecting in the background; never fails on an unreachable Redis.
    pub(crate) fn start(
        client: Client,
        pending: Arc<PendingRemovals>,
        metrics: Arc<Metrics>,
        logger: Logger,
    ) -> RedisLink {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            // Every call is bounded by the cache's own timeout; a second timer per command in the
            // driver would only cost time on the hot path.
            .set_response_timeout(None)
            // The default of 50 queued commands is too few for many concurrent requests.
            .set_pipeline_buffer_size(4096);
        let link = RedisLink {
            inner: Arc::new(Inner {
                client,
                config,
                current: RwLock::new(None),
                generation: AtomicU64::new(0),
                connecting: AtomicBool::new(false),
                timeouts_in_a_row: AtomicU32::new(0),
                last_run_id: Mutex::new(None),
                pending,
                metrics,
                logger,
            }),
        };
        link.ensure_connecting();
        link
    }

    /// The current connection and its generation, or `None` while (re)connecting.
    pub(crate) fn connection(&self) -> Option<(MultiplexedConnection, u64)> {
        let current = self
            .inner
            .current
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        if current.is_none() {
            self.ensure_connecting();
        }
        current
    }

    /// Records how a call on connection `generation` went; retires the connection when it failed.
    pub(crate) fn report(&self, generation: u64, outcome: CallOutcome) {
        let inner = &self.inner;
        match outcome {
            CallOutcome::Answered => {
                if inner.timeouts_in_a_row.load(Ordering::Relaxed) != 0 {
                    inner.timeouts_in_a_row.store(0, Ordering::Relaxed);
                }
            }
            CallOutcome::TimedOut => {
                if inner.timeouts_in_a_row.fetch_add(1, Ordering::Relaxed) + 1 >= TIMEOUTS_BEFORE_REPLACING {
                    self.retire(generation);
                }
            }
            CallOutcome::Broken => self.retire(generation),
        }
    }

    fn retire(&self, generation: u64) {
        let mut current = self.inner.current.write().unwrap_or_else(|poison| poison.into_inner());
        if current.as_ref().is_some_and(|(_, live)| *live == generation) {
            *current = None;
            drop(current);
            self.inner.timeouts_in_a_row.store(0, Ordering::Relaxed);
            self.ensure_connecting();
        }
    }

    fn ensure_connecting(&self) {
        if self.inner.connecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let mut backoff = RECONNECT_MIN;
            let mut failures = 0u32;
            loop {
                match tokio::time::timeout(CONNECT_TIMEOUT, inner.open()).await {
                    Ok(Ok(())) => break,
                    Ok(Err(error)) => inner.connect_failed(&mut failures, &error.to_string()),
                    Err(_) => inner.connect_failed(&mut failures, "no answer in time"),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RECONNECT_MAX);
            }
            inner.connecting.store(false, Ordering::Release);
        });
    }
}

impl Inner {
    /// Connects, checks for a restarted server, and publishes the connection.
    async fn open(&self) -> Result<(), RedisError> {
        let mut connection = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let info: String = redis::cmd("INFO").arg("server").query_async(&mut connection).await?;
        let run_id = info
            .lines()
            .find_map(|line| line.strip_prefix("run_id:"))
            .map(|id| id.trim().to_owned());
        let restarted = {
            let mut last = self.last_run_id.lock().unwrap_or_else(|poison| poison.into_inner());
            let restarted = matches!((&*last, &run_id), (Some(before), Some(now)) if before != now);
            if run_id.is_some() {
                *last = run_id;
            }
            restarted
        };
        if restarted {
            self.logger.warn(
                "redis restarted; removing every cached body under the prefix before serving any",
                &[],
            );
            self.pending.require_sweep();
        }
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *self.current.write().unwrap_or_else(|poison| poison.into_inner()) = Some((connection, generation));
        Ok(())
    }

    fn connect_failed(&self, failures: &mut u32, problem: &str) {
        *failures += 1;
        self.metrics.cache_errors.fetch_add(1, Ordering::Relaxed);
        if *failures == 1 || failures.is_multiple_of(50) {
            self.logger.warn(
                "cache unavailable: cannot connect to redis; serving from postgres",
                &[("attempts", &*failures), ("error.message", &problem)],
            );
        }
    }
}

/// Whether an error means the connection itself failed (rather than Redis refusing a command).
pub(crate) fn is_transport_failure(error: &RedisError) -> bool {
    error.is_io_error() || error.is_connection_dropped() || error.is_unrecoverable_error()
}
