//! The RESP3 connection that keeps in-process copies coherent: Redis pushes an invalidation for
//! every change to a key under the prefix (`CLIENT TRACKING ON BCAST PREFIX {prefix}:user:`), and
//! the driver's reader hands each push to `Invalidations::send` in wire order, so a copy is
//! dropped before anything read after the push is handled.
//!
//! Every `PING_EVERY` a round trip (`SET {prefix}:copies 1 PX 3000`, which also tells writers that
//! some replica serves copies: `fence`) vouches for the copies (`local`); one late by
//! `PING_TIMEOUT`, a lost connection or a null invalidation drops them all, and the connection is
//! set up again. Only one round trip is ever in flight: with `BCAST`, Redis sends a command's
//! invalidations at the end of the event-loop pass that ran it, so only an answer to a command
//! sent after that pass (after the writer had its answer) vouches that they came first.
//!
//! Copies are kept only where that key cannot be evicted while it is renewed, else writers could
//! answer without waiting for them: tracking is refused under a memory limit with an eviction
//! policy that may pick a key in use (which policies, and why LRU is one: docs/API.md, Cache).

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{AsyncPushSender, MultiplexedConnection, SendError};
use redis::{AsyncConnectionConfig, Client, PushInfo, PushKind, Value};

use super::keys::id_of_key;
use super::link::{CONNECT_TIMEOUT, info_field, run_id_of_primary};
use super::local::{LocalCopies, VOUCHED_FOR};
use crate::backoff::Backoff;
use crate::telemetry::log::Logger;
use crate::telemetry::rate_limited::RateLimitedWarning;

/// A quarter of `VOUCHED_FOR`, so that a healthy connection always has a recent answer in hand.
const PING_EVERY: Duration = VOUCHED_FOR.checked_div(4).expect("a nonzero divisor");
/// Once a second, the tracked Redis is checked to be the primary it subscribed to.
const ROLE_CHECK_EVERY_PINGS: u64 = 40;
/// How long `{prefix}:copies` outlives each round trip that renews it: far longer than the
/// round trip's answer vouches for the copies (`VOUCHED_FOR`).
const COPIES_KEY_LIFETIME_MS: u64 = 3_000;
/// A round trip not answered within this counts as a lost connection: it is replaced.
pub(crate) const PING_TIMEOUT: Duration = Duration::from_millis(500);
const RECONNECT_FIRST: Duration = Duration::from_millis(50);
const RECONNECT_CAP: Duration = Duration::from_secs(1);
/// Eviction policies that may evict `{prefix}:copies` while replicas renew it every 25 ms.
const POLICIES_EVICTING_KEYS_IN_USE: [&str; 5] = [
    "volatile-ttl",
    "volatile-random",
    "allkeys-random",
    "volatile-lru",
    "allkeys-lru",
];

/// Applies Redis's pushes to the copies, inside the connection's reader.
struct Invalidations {
    local: Arc<LocalCopies>,
    user_prefix: Vec<u8>,
}

impl AsyncPushSender for Invalidations {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        match (info.kind, info.data.first()) {
            (PushKind::Invalidate, Some(Value::Array(keys))) => {
                for key in keys {
                    if let Value::BulkString(key) = key
                        && let Some(id) = id_of_key(&self.user_prefix, key)
                    {
                        self.local.remove(id);
                    }
                }
            }
            // A null payload: Redis flushed its data, every key changed.
            (PushKind::Invalidate, _) => self.local.invalidate_all(),
            (PushKind::Disconnection, _) => self.local.flush(),
            _ => {}
        }
        Ok(())
    }
}

/// Keeps the tracking connection up for as long as the process runs.
pub(crate) fn start(client: Client, user_prefix: String, copies_key: String, local: Arc<LocalCopies>, logger: Logger) {
    tokio::spawn(async move {
        let mut backoff = Backoff::new(RECONNECT_FIRST, RECONNECT_CAP);
        let failures = RateLimitedWarning::new(
            logger.clone(),
            "redis invalidation tracking cannot be set up; local copies unused",
            super::COMPLAIN_EVERY,
        );
        let mut failed = false;
        loop {
            local.flush();
            let subscribed = tokio::time::timeout(CONNECT_TIMEOUT, subscribe(&client, &user_prefix, &local)).await;
            let failed_before = std::mem::replace(&mut failed, !matches!(subscribed, Ok(Ok(_))));
            match subscribed {
                Ok(Ok((connection, run_id))) => {
                    if failed_before {
                        logger.info("redis invalidation tracking restored; local copies in use again", &[]);
                    }
                    backoff.reset();
                    local.resume();
                    let problem = watch_health(connection, &run_id, &copies_key, &local).await;
                    local.flush();
                    logger.warn(
                        "redis invalidation tracking lost; local copies dropped until it is back",
                        &[("error.message", &problem)],
                    );
                }
                Ok(Err(error)) => failures.warn(&error.to_string(), &[]),
                Err(_) => failures.warn("no answer in time", &[]),
            }
            tokio::time::sleep(backoff.next_wait()).await;
        }
    });
}

/// Connects over RESP3 with the invalidation sink, turns tracking on for the prefix, and checks
/// that the connection answers; returns it with the `run_id` of the primary it reached.
async fn subscribe(
    client: &Client,
    user_prefix: &str,
    local: &Arc<LocalCopies>,
) -> redis::RedisResult<(MultiplexedConnection, String)> {
    let sink = Invalidations {
        local: local.clone(),
        user_prefix: user_prefix.as_bytes().to_vec(),
    };
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(None)
        .set_push_sender(sink);
    let mut connection = client.get_multiplexed_async_connection_with_config(&config).await?;
    // A replica (a demoted primary) does not see the writers' fences.
    let run_id = tracked_run_id(&mut connection).await?;
    redis::cmd("CLIENT")
        .arg(&["TRACKING", "ON", "BCAST", "PREFIX"][..])
        .arg(user_prefix)
        .query_async::<()>(&mut connection)
        .await?;
    Ok((connection, run_id))
}

/// The `run_id` of the primary `connection` reached, if copies may be kept on its word: its
/// eviction policy never evicts a key renewed every 25 ms (see the module doc).
async fn tracked_run_id(connection: &mut MultiplexedConnection) -> redis::RedisResult<String> {
    let info: String = redis::cmd("INFO")
        .arg(&["server", "replication", "memory"][..])
        .query_async(connection)
        .await?;
    let limited = info_field(&info, "maxmemory").is_some_and(|bytes| bytes != "0");
    match info_field(&info, "maxmemory_policy") {
        Some(policy) if limited && POLICIES_EVICTING_KEYS_IN_USE.contains(&policy) => Err(redis::RedisError::from((
            redis::ErrorKind::Client,
            "eviction policy",
            format!("redis may evict keys in use (maxmemory-policy {policy}); copies need an LFU policy or noeviction"),
        ))),
        _ => run_id_of_primary(&info),
    }
}

/// Renews `copies_key` until a round trip fails or is not answered in time, each answer vouching
/// for the copies; returns why it stopped.
async fn watch_health(
    mut connection: MultiplexedConnection,
    run_id: &str,
    copies_key: &str,
    local: &LocalCopies,
) -> String {
    let mut ticks = tokio::time::interval(PING_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for tick in 1u64.. {
        ticks.tick().await;
        // Now and then: still the primary it subscribed to (a failover can leave it connected), and
        // still not evicting keys in use. Bounded as the round trips are, so a connection that
        // stops answering here is replaced too.
        if tick.is_multiple_of(ROLE_CHECK_EVERY_PINGS) {
            match super::within(PING_TIMEOUT, tracked_run_id(&mut connection)).await {
                Ok(now) if now == run_id => {}
                Ok(_) => return "redis is not the instance tracking subscribed to".to_owned(),
                Err(problem) => return problem,
            }
        }
        let mut renew = redis::cmd("SET");
        renew.arg(copies_key).arg(1).arg("PX").arg(COPIES_KEY_LIFETIME_MS);
        let sent = Instant::now();
        match super::within(PING_TIMEOUT, renew.query_async::<()>(&mut connection)).await {
            Ok(()) => local.vouch(sent),
            Err(problem) => return problem,
        }
    }
    unreachable!("the ticks never run out")
}
