//! The Redis cache of user bodies: cache-aside, optional for reads, and never the reason a read
//! through any replica contradicts an acknowledged write (docs/API.md, Cache). Only this module
//! knows the key format (`keys`); `{prefix}:user:{id}` holds the exact response body of
//! `GET /v1/users/{id}`. A hit is one bounded `GETRANGE`, told apart from a lease, a fence or a
//! bad value by its bytes (`stored_value`); a miss leaves a lease (`SET NX PX`) before Postgres is
//! read, and the fill stores the body only over its own lease. The other submodules (fences,
//! sweeps, the breaker, in-process copies) are mapped in ARCHITECTURE.md, Where is what.

mod calls;
mod fence;
mod health;
mod keys;
mod link;
mod local;
mod stored_value;
mod sweep;
mod tracking;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use redis::{ConnectionAddr, IntoConnectionInfo, ProtocolVersion, RedisConnectionInfo, Script};
use uuid::Uuid;

use crate::config::{CacheSettings, RedisSettings};
use crate::telemetry::log::Logger;
use crate::telemetry::metrics::{CacheFigures, Metrics};
use crate::telemetry::rate_limited::RateLimitedWarning;
pub(crate) use fence::{Fence, LiftTries};
use health::Breaker;
use keys::KeyBuf;
use link::Link;
use local::LocalCopies;
use stored_value::{BadValue, Token};

/// A failing Redis (its calls, connecting, setting tracking up) is logged at most this often.
const COMPLAIN_EVERY: Duration = Duration::from_secs(5);
/// How long a reader's fill lease lives: longer than any read of Postgres takes (9 s at most), so
/// a slow reader's lease does not expire under it; a crashed reader's lease only delays fills.
const LEASE_MILLISECONDS: u64 = 10_000;

/// Stores the body only while the reader's own lease is at the key. `pcall`, so that a value of
/// another type there makes the fill a no-op rather than an error.
const FILL_IF_LEASED: &str = r"
local held = redis.pcall('GET', KEYS[1])
if held == 'lease:' .. ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0";

/// Sets the reader's lease (`lease:` and its token ARGV[1], for ARGV[2] ms) unless a live body, lease or fence is at the
/// key (a non-empty string with a time to live, as every value this service stores has). So it
/// replaces a value of another type, an empty string, a value planted without a time to live, and
/// one the reader found bad (ARGV[3] = 1) unless that is a lease or fence by now. `STRLEN` and a
/// six-byte `GETRANGE`, not `GET`: a huge value is never copied.
const TAKE_LEASE: &str = r"
if redis.call('TYPE', KEYS[1]).ok == 'string' and redis.call('PTTL', KEYS[1]) >= 0 then
  if ARGV[3] ~= '1' and redis.call('STRLEN', KEYS[1]) > 0 then
    return 0
  end
  local kind = redis.call('GETRANGE', KEYS[1], 0, 5)
  if kind == 'lease:' or kind == 'fence:' then
    return 0
  end
end
redis.call('SET', KEYS[1], 'lease:' .. ARGV[1], 'PX', ARGV[2])
return 1";

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The stored body, to be sent as it is.
    Hit(Bytes),
    /// Read Postgres; with a lease, the body may then be filled in.
    Miss(Option<Token>),
}

/// Handle to the cache; cheap to clone. `inner` is the cache-aside path through Redis; `near`,
/// when `CACHE_LOCAL_ENTRIES` > 0, the in-process copies in front of it (client-side caching), a
/// layer the Redis path does not know about.
#[derive(Clone)]
pub(crate) struct Cache {
    inner: Arc<Inner>,
    near: Option<Arc<LocalCopies>>,
}

struct Inner {
    link: Arc<Link>,
    /// `{prefix}:user:`
    user_prefix: String,
    /// `CACHE_TTL_SECONDS`.
    ttl: Duration,
    /// `OPERATION_TIMEOUT`, unless a test lengthened it (`CacheSettings::call_timeout`).
    call_timeout: Duration,
    /// `{prefix}:copies`: exists while any replica may serve in-process copies.
    copies_key: String,
    /// When a fence's script last found `copies_key` (`Cache::copies_may_be_served`).
    copies_seen_at: Mutex<Option<tokio::time::Instant>>,
    fill_script: Script,
    lease_script: Script,
    raise_fence_script: Script,
    lift_fence_script: Script,
    breaker: Breaker,
    metrics: Arc<Metrics>,
    /// Bad values found, by `BadValue` (the cache's own figures, rendered through `figures`).
    bad_values: [AtomicU64; BadValue::ALL.len()],
    complaints: RateLimitedWarning,
}

impl Cache {
    /// Starts connecting in the background; never fails on an unreachable Redis (the first reads
    /// just miss, the first writes are refused).
    pub(crate) fn connect(
        settings: &RedisSettings,
        cache_settings: &CacheSettings,
        metrics: Arc<Metrics>,
        logger: Logger,
    ) -> redis::RedisResult<Cache> {
        let client = |protocol: ProtocolVersion| -> redis::RedisResult<redis::Client> {
            let mut redis_settings = RedisConnectionInfo::default()
                .set_skip_set_lib_name()
                .set_protocol(protocol);
            if let Some(password) = &settings.password {
                redis_settings = redis_settings.set_password(password.expose());
            }
            let info = ConnectionAddr::Tcp(settings.host.clone(), settings.port)
                .into_connection_info()?
                .set_redis_settings(redis_settings);
            redis::Client::open(info)
        };
        let user_prefix = format!("{}:user:", cache_settings.key_prefix);
        // With CACHE_TTL_SECONDS=0 nothing is cached, so there is nothing to copy either.
        let near = if cache_settings.local_entries > 0 && !cache_settings.ttl.is_zero() {
            let copies = Arc::new(LocalCopies::new(cache_settings.local_entries));
            tracking::start(
                client(ProtocolVersion::RESP3)?,
                user_prefix.clone(),
                keys::copies_key(&cache_settings.key_prefix),
                copies.clone(),
                logger.clone(),
            );
            Some(copies)
        } else {
            None
        };
        let copies = near.clone();
        let link = Link::start(
            client(ProtocolVersion::RESP2)?,
            user_prefix.clone(),
            keys::instance_key(&cache_settings.key_prefix),
            metrics.clone(),
            logger.clone(),
            Box::new(move || copies.iter().for_each(|copies| copies.invalidate_all())),
        );
        Ok(Cache {
            inner: Arc::new(Inner {
                link,
                user_prefix,
                ttl: cache_settings.ttl,
                call_timeout: cache_settings.call_timeout,
                copies_key: keys::copies_key(&cache_settings.key_prefix),
                copies_seen_at: Mutex::new(None),
                fill_script: Script::new(FILL_IF_LEASED),
                lease_script: Script::new(TAKE_LEASE),
                raise_fence_script: Script::new(fence::RAISE_FENCE),
                lift_fence_script: Script::new(fence::LIFT_FENCE),
                breaker: Breaker::new(),
                metrics,
                bad_values: std::array::from_fn(|_| AtomicU64::new(0)),
                complaints: RateLimitedWarning::new(logger, "cache unavailable; serving from postgres", COMPLAIN_EVERY),
            }),
            near,
        })
    }

    /// The cached body of a user, or a miss (with a lease when this reader may fill it): an
    /// in-process copy when there is one, else Redis, whose body then becomes a copy (`local`'s rules).
    pub(crate) async fn lookup(&self, id: Uuid) -> Lookup {
        if self.inner.ttl.is_zero() {
            // CACHE_TTL_SECONDS=0: nothing is cached; Redis only carries the writes' fences.
            return Lookup::Miss(None);
        }
        let Some(near) = self.near.as_deref() else {
            return self.inner.lookup(id, false).await.0;
        };
        if let Some(body) = near.get(id) {
            self.inner.metrics.cache_local_hits.fetch_add(1, Ordering::Relaxed);
            return Lookup::Hit(body);
        }
        let claim = near.reserve(id);
        let (found, lifetime) = self.inner.lookup(id, claim.is_some()).await;
        if let (Lookup::Hit(body), Some(claim)) = (&found, claim) {
            near.store(id, claim, body.clone(), lifetime.min(self.inner.ttl));
        }
        found
    }

    /// Drops this process's copy of a user it has just fenced or lifted: Redis tells every
    /// replica, this one too, but its own reads must not wait for that.
    fn forget_copy(&self, id: Uuid) {
        if let Some(near) = &self.near {
            near.remove(id);
        }
    }

    /// Stores a body read from Postgres, if this reader's lease is still at the key.
    pub(crate) async fn fill(&self, id: Uuid, lease: Token, body: &Bytes) {
        let inner = &*self.inner;
        let Some((mut connection, generation)) = inner.serving_connection() else {
            return;
        };
        let key = KeyBuf::body(&inner.user_prefix, id);
        let mut invocation = inner.fill_script.key(key.as_bytes());
        invocation.arg((lease.as_bytes(), body.as_ref(), inner.ttl.as_secs()));
        let call = invocation.invoke_async::<i64>(&mut connection);
        let _ = inner.bounded("fill", generation, call).await;
    }

    /// Waits until the first connection to Redis is up, or `patience` has passed; `true` if it is.
    pub(crate) async fn wait_until_connected(&self, patience: Duration) -> bool {
        self.inner.link.connection_within(patience).await.is_some()
    }

    /// Whether Redis answers a PING now (for `/ready`).
    pub(crate) async fn ping(&self) -> bool {
        let Some((mut connection, _)) = self.inner.link.connection() else {
            return false;
        };
        let command = redis::cmd("PING");
        let call = command.query_async::<String>(&mut connection);
        matches!(tokio::time::timeout(self.inner.call_timeout, call).await, Ok(Ok(_)))
    }

    /// The cache's figures for `/metrics`.
    pub(crate) fn figures(&self) -> CacheFigures {
        let inner = &*self.inner;
        CacheFigures {
            bad_values: BadValue::ALL
                .iter()
                .map(|(kind, label)| (*label, inner.bad_values[*kind as usize].load(Ordering::Relaxed)))
                .collect(),
            local_entries: self.near.as_ref().map(|near| near.len()),
        }
    }
}

/// How a call that got no answer in time is told, in the log and in a write's refusal.
fn no_answer_within(timeout: Duration) -> String {
    format!("no answer within {} ms", timeout.as_millis())
}

/// A call off the request path (a sweep, the record, tracking's round trips), bounded by `timeout`;
/// a failure as the log tells it.
async fn within<T>(timeout: Duration, call: impl Future<Output = redis::RedisResult<T>>) -> Result<T, String> {
    match tokio::time::timeout(timeout, call).await {
        Ok(answer) => answer.map_err(|error| error.to_string()),
        Err(_) => Err(no_answer_within(timeout)),
    }
}
