//! The RESP3 connection that keeps in-process copies coherent: Redis pushes an invalidation for
//! every change to a key under the prefix (`CLIENT TRACKING ON BCAST PREFIX {prefix}:user:`), and
//! the driver's reader hands each push to `Invalidations::send` as it arrives, in wire order, so a
//! copy is dropped before anything read after the push is handled.
//!
//! The connection is trusted only while it provably delivers: copies are served from the moment
//! tracking is set up and a PING has come back, a PING goes out every `PING_EVERY`, and one not
//! answered within `PING_TIMEOUT` (a stalled link that reports no error), a lost connection, or a
//! null invalidation drops every copy. Then it reconnects, with a capped backoff.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{AsyncPushSender, MultiplexedConnection, SendError};
use redis::{AsyncConnectionConfig, Client, PushInfo, PushKind, Value};

use super::keys::id_of_key;
use super::local::LocalCopies;
use crate::telemetry::log::Logger;

const PING_EVERY: Duration = Duration::from_millis(100);
/// A PING not answered within this drops every copy: the most a stalled connection can make a
/// copy lag a write.
pub(crate) const PING_TIMEOUT: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const RECONNECT_MIN: Duration = Duration::from_millis(50);
const RECONNECT_MAX: Duration = Duration::from_secs(1);

/// Applies Redis's pushes to the copies, inside the connection's reader.
struct Invalidations {
    local: Arc<LocalCopies>,
    user_prefix: Vec<u8>,
}

impl AsyncPushSender for Invalidations {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        match info.kind {
            PushKind::Invalidate => match info.data.first() {
                Some(Value::Array(keys)) => {
                    for key in keys {
                        if let Value::BulkString(key) = key
                            && let Some(id) = id_of_key(&self.user_prefix, key)
                        {
                            self.local.remove(id);
                        }
                    }
                }
                // A null payload: Redis flushed its data, every key changed.
                _ => self.local.invalidate_all(),
            },
            PushKind::Disconnection => self.local.flush(),
            _ => {}
        }
        Ok(())
    }
}

/// Keeps the tracking connection up for as long as the process runs.
pub(crate) fn start(client: Client, user_prefix: String, local: Arc<LocalCopies>, logger: Logger) {
    tokio::spawn(async move {
        let mut backoff = RECONNECT_MIN;
        let mut failures = 0u32;
        loop {
            local.flush();
            match tokio::time::timeout(CONNECT_TIMEOUT, subscribe(&client, &user_prefix, &local)).await {
                Ok(Ok(connection)) => {
                    if failures > 0 {
                        logger.info("redis invalidation tracking restored; local copies in use again", &[]);
                    }
                    failures = 0;
                    backoff = RECONNECT_MIN;
                    local.resume();
                    let problem = watch_health(connection).await;
                    local.flush();
                    logger.warn(
                        "redis invalidation tracking lost; local copies dropped until it is back",
                        &[("error.message", &problem)],
                    );
                }
                Ok(Err(error)) => {
                    failures += 1;
                    log_failure(&logger, failures, &error.to_string());
                }
                Err(_) => {
                    failures += 1;
                    log_failure(&logger, failures, "no answer in time");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RECONNECT_MAX);
        }
    });
}

/// Connects over RESP3 with the invalidation sink, turns tracking on for the prefix, and checks
/// that the connection answers.
async fn subscribe(
    client: &Client,
    user_prefix: &str,
    local: &Arc<LocalCopies>,
) -> redis::RedisResult<MultiplexedConnection> {
    let sink = Invalidations {
        local: local.clone(),
        user_prefix: user_prefix.as_bytes().to_vec(),
    };
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(None)
        .set_push_sender(sink);
    let mut connection = client.get_multiplexed_async_connection_with_config(&config).await?;
    redis::cmd("CLIENT")
        .arg(&["TRACKING", "ON", "BCAST", "PREFIX"][..])
        .arg(user_prefix)
        .query_async::<()>(&mut connection)
        .await?;
    redis::cmd("PING").query_async::<()>(&mut connection).await?;
    Ok(connection)
}

/// PINGs until one fails or is not answered in time; returns why.
async fn watch_health(mut connection: MultiplexedConnection) -> String {
    let mut ticks = tokio::time::interval(PING_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let ping = redis::cmd("PING");
        match tokio::time::timeout(PING_TIMEOUT, ping.query_async::<()>(&mut connection)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return error.to_string(),
            Err(_) => return format!("no answer to PING within {} ms", PING_TIMEOUT.as_millis()),
        }
    }
}

fn log_failure(logger: &Logger, failures: u32, problem: &str) {
    if failures == 1 || failures.is_multiple_of(50) {
        logger.warn(
            "redis invalidation tracking cannot be set up; local copies unused",
            &[("attempts", &failures), ("error.message", &problem)],
        );
    }
}
