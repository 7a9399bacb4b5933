//! The cache's calls to Redis and their accounting: each bounded by `config::OPERATION_TIMEOUT`, a
//! timeout or a lost connection opening the breaker (and replacing the connection: `link`), every
//! failure counted and logged without flooding.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use redis::RedisError;
use redis::aio::MultiplexedConnection;
use uuid::Uuid;

use super::keys::KeyBuf;
use super::link::is_transport_failure;
use super::stored_value::{BadValue, Stored, Token, classify};
use super::{Inner, LEASE_MILLISECONDS, Lookup};
use crate::user::MAX_USER_JSON_LEN;

impl Inner {
    /// The cache-aside read through Redis: the stored body (a hit), or a miss with a lease when
    /// this reader may fill the key; with `with_lifetime`, also the key's remaining time to live.
    pub(super) async fn lookup(&self, id: Uuid, with_lifetime: bool) -> (Lookup, Duration) {
        let Some((mut connection, generation)) = self.serving_connection() else {
            self.metrics.cache_bypassed.fetch_add(1, Ordering::Relaxed);
            return (Lookup::Miss(None), Duration::ZERO);
        };
        let key = KeyBuf::body(&self.user_prefix, id);
        let stored = match self.read_body(&mut connection, generation, &key, with_lifetime).await {
            Ok((bytes, lifetime)) => match classify(&bytes, &key, MAX_USER_JSON_LEN) {
                Stored::Body => {
                    self.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
                    return (Lookup::Hit(bytes), lifetime);
                }
                stored => stored,
            },
            Err(Some(error)) if error.code() == Some("WRONGTYPE") => Stored::Bad(BadValue::WrongType),
            Err(_) => return (Lookup::Miss(None), Duration::ZERO),
        };
        self.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
        if let Stored::Bad(bad) = stored {
            self.bad_values[bad as usize].fetch_add(1, Ordering::Relaxed);
        }
        // Nothing (or an empty string), another reader's lease or a write's fence: `TAKE_LEASE` sets
        // this reader's lease unless a live lease or fence is there (then it fills nothing); a bad
        // value it replaces.
        let token = Token::new();
        let mut invocation = self.lease_script.key(key.as_bytes());
        invocation.arg((
            token.as_bytes(),
            LEASE_MILLISECONDS,
            u8::from(matches!(stored, Stored::Bad(_))),
        ));
        let call = invocation.invoke_async::<i64>(&mut connection);
        let lease = matches!(self.bounded("lease", generation, call).await, Ok(1)).then_some(token);
        (Lookup::Miss(lease), Duration::ZERO)
    }

    /// `GETRANGE key 0 MAX` (at most the largest body plus one byte), and with `with_lifetime` the
    /// key's remaining time to live in the same round trip (a local copy must not outlive it).
    pub(super) async fn read_body(
        &self,
        connection: &mut MultiplexedConnection,
        generation: u64,
        key: &KeyBuf,
        with_lifetime: bool,
    ) -> Result<(Bytes, Duration), Option<RedisError>> {
        let mut getrange = redis::cmd("GETRANGE");
        getrange.arg(key.as_bytes()).arg(0).arg(MAX_USER_JSON_LEN);
        if !with_lifetime {
            let read = getrange.query_async::<Bytes>(connection);
            let bytes = self.bounded("get", generation, read).await?;
            return Ok((bytes, Duration::ZERO));
        }
        let mut pipeline = redis::pipe();
        pipeline.add_command(getrange).cmd("PTTL").arg(key.as_bytes());
        let read = pipeline.query_async::<(Bytes, i64)>(connection);
        let (bytes, milliseconds) = self.bounded("get", generation, read).await?;
        Ok((bytes, Duration::from_millis(u64::try_from(milliseconds).unwrap_or(0))))
    }

    /// A connection for a read or a fill, unless the breaker is open, there is no connection, or
    /// its Redis may still hold bodies from its past (`link`).
    pub(super) fn serving_connection(&self) -> Option<(MultiplexedConnection, u64)> {
        self.breaker.allows().then(|| self.link.serving_connection()).flatten()
    }

    /// Runs one call, bounded and accounted for as the module doc says. `Err(Some(error))` is Redis
    /// refusing the command, `Err(None)` no answer.
    pub(super) async fn bounded<T>(
        &self,
        operation: &'static str,
        generation: u64,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Option<RedisError>> {
        let (problem, refusal) = match tokio::time::timeout(self.call_timeout, call).await {
            Ok(Ok(value)) => {
                self.link.answered();
                self.breaker.record_success();
                return Ok(value);
            }
            Ok(Err(error)) if error.code() == Some("WRONGTYPE") => {
                // One key's problem: not a failure of Redis.
                self.link.answered();
                return Err(Some(error));
            }
            Ok(Err(error)) if !is_transport_failure(&error) => {
                self.link.answered();
                (error.to_string(), Some(error))
            }
            Ok(Err(error)) => {
                self.link.retire(generation);
                self.breaker.record_failure();
                (error.to_string(), None)
            }
            Err(_) => {
                self.link.timed_out(generation);
                self.breaker.record_failure();
                (super::no_answer_within(self.call_timeout), None)
            }
        };
        self.metrics.cache_errors.fetch_add(1, Ordering::Relaxed);
        self.complaints.warn(&problem, &[("operation", &operation)]);
        Err(refusal)
    }
}
