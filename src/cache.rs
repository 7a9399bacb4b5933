//! The Redis cache of user bodies: cache-aside, optional, and never the reason a request fails.
//!
//! Only this module knows the key formats: `{prefix}:user:{id}` holds the exact response body of
//! `GET /v1/users/{id}`, and `{prefix}:user:{id}:fence` marks a user written in the last few
//! seconds. A write deletes the body and sets the fence in one transaction; a fill stores a body
//! only while no fence exists (one Lua call). That closes the classic cache-aside race, where a
//! read that fetched the old row before a write stores it after the write's delete.
//!
//! Every call is bounded by `OPERATION_TIMEOUT`. A failure or timeout is counted, logged at most
//! once per `LOG_EVERY`, and opens a breaker: for `OPEN_FOR` reads go straight to Postgres, then a
//! single probe decides whether to close it. So a dead or frozen Redis costs one short wait, not
//! one per request, and tasks never pile up behind it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, Script};
use uuid::Uuid;

use crate::config::RedisSettings;
use crate::telemetry::log::Logger;
use crate::telemetry::metrics::Metrics;

/// Redis answers in well under a millisecond on a healthy network; anything near this is sick.
pub const OPERATION_TIMEOUT: Duration = Duration::from_millis(100);
/// How long reads skip the cache after a failure before one request probes it again.
const OPEN_FOR: Duration = Duration::from_secs(1);
/// How long after a write a fill is refused. A racing fill is sent right after its read, so it
/// reaches Redis within milliseconds of the write's fence; seconds leave a wide margin.
const FENCE_MILLISECONDS: u64 = 5_000;
const LOG_EVERY: Duration = Duration::from_secs(5);
/// Room for `{prefix}:user:{uuid}:fence` with the longest prefix config allows.
const KEY_CAPACITY: usize = 128;

const FILL_UNLESS_FENCED: &str = r"
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0";

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The stored body, to be sent as it is.
    Hit(Bytes),
    /// Not cached, fenced, or the cache is unreachable: read Postgres.
    Miss,
}

/// Handle to the cache; cheap to clone.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    connection: ConnectionManager,
    /// `{prefix}:user:`
    key_prefix: String,
    ttl_seconds: u64,
    fill_script: Script,
    breaker: Breaker,
    metrics: Arc<Metrics>,
    logger: Logger,
    last_logged: AtomicU64,
    suppressed: AtomicU64,
    epoch: Instant,
}

impl Cache {
    /// Sets up a lazily connecting, self-reconnecting multiplexed connection; never fails on an
    /// unreachable Redis (the first calls just miss).
    pub fn connect(
        settings: &RedisSettings,
        key_prefix: &str,
        ttl: Duration,
        metrics: Arc<Metrics>,
        logger: Logger,
    ) -> redis::RedisResult<Cache> {
        let mut redis_settings = RedisConnectionInfo::default().set_skip_set_lib_name();
        if let Some(password) = &settings.password {
            redis_settings = redis_settings.set_password(password.expose());
        }
        let info = ConnectionAddr::Tcp(settings.host.clone(), settings.port)
            .into_connection_info()?
            .set_redis_settings(redis_settings);
        let client = redis::Client::open(info)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            // Every call is already bounded by OPERATION_TIMEOUT; a second timer per command in
            // the driver would only cost time on the hot path.
            .set_response_timeout(None)
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(200))
            // The default of 50 queued commands is too few for many concurrent requests.
            .set_pipeline_buffer_size(4096);
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        let epoch = Instant::now();
        Ok(Cache {
            inner: Arc::new(Inner {
                connection,
                key_prefix: format!("{key_prefix}:user:"),
                ttl_seconds: ttl.as_secs(),
                fill_script: Script::new(FILL_UNLESS_FENCED),
                breaker: Breaker::default(),
                metrics,
                logger,
                last_logged: AtomicU64::new(0),
                suppressed: AtomicU64::new(0),
                epoch,
            }),
        })
    }

    /// The cached body of a user, if any.
    pub async fn get(&self, id: Uuid) -> Lookup {
        let inner = &*self.inner;
        if !inner.breaker.allows(inner.now_ms()) {
            inner.metrics.cache_bypassed.fetch_add(1, Ordering::Relaxed);
            return Lookup::Miss;
        }
        let key = inner.body_key(id);
        let mut connection = inner.connection.clone();
        let mut command = redis::cmd("GET");
        command.arg(key.as_bytes());
        let call = command.query_async::<Option<Bytes>>(&mut connection);
        match inner.bounded("get", call).await {
            Some(Some(body)) if !body.is_empty() => {
                inner.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
                Lookup::Hit(body)
            }
            Some(_) => {
                inner.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
                Lookup::Miss
            }
            None => Lookup::Miss,
        }
    }

    /// Stores a body read from Postgres, unless the user was written in the last few seconds.
    pub async fn fill(&self, id: Uuid, body: &Bytes) {
        let inner = &*self.inner;
        if !inner.breaker.allows(inner.now_ms()) {
            return;
        }
        let key = inner.body_key(id);
        let fence = inner.fence_key(id);
        let mut connection = inner.connection.clone();
        let mut invocation = inner.fill_script.key(key.as_bytes());
        invocation
            .key(fence.as_bytes())
            .arg(body.as_ref())
            .arg(inner.ttl_seconds);
        let call = invocation.invoke_async::<i64>(&mut connection);
        inner.bounded("fill", call).await;
    }

    /// Forgets a user after a write has committed; the fence keeps racing fills out. Runs even
    /// while the breaker is open: a stale body is worse than a slow write.
    pub async fn invalidate(&self, id: Uuid) {
        let inner = &*self.inner;
        let key = inner.body_key(id);
        let fence = inner.fence_key(id);
        let mut connection = inner.connection.clone();
        let mut pipeline = redis::pipe();
        pipeline
            .atomic()
            .del(key.as_bytes())
            .ignore()
            .cmd("SET")
            .arg(fence.as_bytes())
            .arg(1)
            .arg("PX")
            .arg(FENCE_MILLISECONDS)
            .ignore();
        let call = pipeline.query_async::<()>(&mut connection);
        inner.bounded("invalidate", call).await;
    }

    /// Whether Redis answers a PING now (for `/ready`).
    pub async fn ping(&self) -> bool {
        let mut connection = self.inner.connection.clone();
        let command = redis::cmd("PING");
        let call = command.query_async::<String>(&mut connection);
        matches!(tokio::time::timeout(OPERATION_TIMEOUT, call).await, Ok(Ok(_)))
    }
}

impl Inner {
    /// Runs one cache call within the timeout; a failure is counted, logged and opens the breaker.
    async fn bounded<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        let problem = match tokio::time::timeout(OPERATION_TIMEOUT, call).await {
            Ok(Ok(value)) => {
                self.breaker.record_success();
                return Some(value);
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {} ms", OPERATION_TIMEOUT.as_millis()),
        };
        let now = self.now_ms();
        self.breaker.record_failure(now);
        self.metrics.cache_errors.fetch_add(1, Ordering::Relaxed);
        self.log_rate_limited(now, operation, &problem);
        None
    }

    fn log_rate_limited(&self, now: u64, operation: &str, problem: &str) {
        let last = self.last_logged.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= LOG_EVERY.as_millis() as u64;
        if !due
            || self
                .last_logged
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        self.logger.warn(
            "cache unavailable; serving from postgres",
            &[
                ("operation", operation),
                ("error", problem),
                ("similar_errors_not_logged", &suppressed.to_string()),
            ],
        );
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn body_key(&self, id: Uuid) -> KeyBuf {
        let mut key = KeyBuf::new(&self.key_prefix);
        key.push_id(id);
        key
    }

    fn fence_key(&self, id: Uuid) -> KeyBuf {
        let mut key = self.body_key(id);
        key.push(b":fence");
        key
    }
}

/// A Redis key built on the stack: the hot path makes no heap allocation for it.
struct KeyBuf {
    bytes: [u8; KEY_CAPACITY],
    len: usize,
}

impl KeyBuf {
    fn new(prefix: &str) -> KeyBuf {
        let mut key = KeyBuf {
            bytes: [0; KEY_CAPACITY],
            len: 0,
        };
        key.push(prefix.as_bytes());
        key
    }

    fn push(&mut self, part: &[u8]) {
        self.bytes[self.len..self.len + part.len()].copy_from_slice(part);
        self.len += part.len();
    }

    fn push_id(&mut self, id: Uuid) {
        let end = self.len + uuid::fmt::Hyphenated::LENGTH;
        id.hyphenated().encode_lower(&mut self.bytes[self.len..end]);
        self.len = end;
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Closed (0), or open until a moment in milliseconds since the cache was made.
#[derive(Default)]
struct Breaker {
    open_until: AtomicU64,
}

impl Breaker {
    /// Whether a call may go to Redis now. When the open period has passed, exactly one caller
    /// wins the right to probe; the rest keep skipping until the probe reports.
    fn allows(&self, now: u64) -> bool {
        let open_until = self.open_until.load(Ordering::Relaxed);
        if open_until == 0 {
            return true;
        }
        if now < open_until {
            return false;
        }
        let probe_until = now + OPEN_FOR.as_millis() as u64;
        self.open_until
            .compare_exchange(open_until, probe_until, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    fn record_success(&self) {
        // Read first: a healthy cache never writes this shared cache line.
        if self.open_until.load(Ordering::Relaxed) != 0 {
            self.open_until.store(0, Ordering::Relaxed);
        }
    }

    fn record_failure(&self, now: u64) {
        self.open_until
            .store(now + OPEN_FOR.as_millis() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_contract() {
        let id = Uuid::parse_str("5B6C1F0E-9A7D-4C3B-8E21-0F4D6A7B8C9D").unwrap();
        let mut key = KeyBuf::new("gravity:user:");
        key.push_id(id);
        assert_eq!(key.as_bytes(), b"gravity:user:5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9d");
    }

    #[test]
    fn the_breaker_opens_on_failure_and_lets_one_probe_through() {
        let breaker = Breaker::default();
        assert!(breaker.allows(0));
        breaker.record_failure(10);
        assert!(!breaker.allows(500));
        let after = 10 + OPEN_FOR.as_millis() as u64;
        assert!(breaker.allows(after), "the first caller probes");
        assert!(!breaker.allows(after), "the others wait for the probe");
        breaker.record_success();
        assert!(breaker.allows(after + 1));
    }
}
