//! The repairer: one task per cache that retries the removals Redis has not confirmed (and the
//! sweeps of the whole prefix) until it does, with backoff, for as long as the cache exists.
//! A confirmed removal also drops the in-process copies it concerns before the hold-back lifts.

use std::sync::atomic::Ordering;

use uuid::Uuid;

use super::keys::{KeyBuf, id_of_key};
use super::link::{CallOutcome, is_transport_failure};
use super::pending::{Work, retry_delay};
use super::{Inner, REPAIR_BATCH, REPAIR_TIMEOUT};

/// The repairer: retries pending removals (and sweeps) until Redis confirms them, for as long as
/// the cache exists.
pub(super) async fn repair(cache: std::sync::Weak<Inner>) {
    let mut failures = 0u32;
    loop {
        let Some(inner) = cache.upgrade() else {
            return;
        };
        let pending = inner.pending.clone();
        drop(inner);
        let work = pending.next_work(REPAIR_BATCH).await;
        let Some(inner) = cache.upgrade() else {
            return;
        };
        let done = match &work {
            Work::Remove(attempt) => {
                let confirmed = inner.delete_keys(attempt.iter().map(|(id, _)| *id)).await;
                if confirmed {
                    // A copy read from Redis before this DEL must not outlive the hold-back: its
                    // invalidation may still be on its way.
                    for (id, _) in attempt {
                        inner.drop_local_copy(*id);
                    }
                    pending.confirmed(attempt);
                }
                confirmed
            }
            Work::Sweep(covered) => {
                let swept = inner.sweep_prefix().await;
                if swept {
                    inner.metrics.cache_sweeps.fetch_add(1, Ordering::Relaxed);
                    if let Some(local) = &inner.local {
                        local.invalidate_all();
                    }
                    pending.swept(covered);
                } else {
                    pending.sweep_failed();
                }
                swept
            }
        };
        drop(inner);
        if done {
            failures = 0;
        } else {
            tokio::time::sleep(retry_delay(failures)).await;
            failures += 1;
        }
    }
}

impl Inner {
    /// One `DEL` of every key given; `true` once Redis confirmed it.
    async fn delete_keys(&self, ids: impl Iterator<Item = Uuid>) -> bool {
        let Some((mut connection, generation)) = self.link.connection() else {
            return false;
        };
        let mut command = redis::cmd("DEL");
        for id in ids {
            command.arg(KeyBuf::body(&self.user_prefix, id).as_bytes());
        }
        self.metrics.cache_removals_retried.fetch_add(1, Ordering::Relaxed);
        self.repair_call("retry removal", generation, command.query_async::<i64>(&mut connection))
            .await
    }

    /// Removes every key under the user prefix: `SCAN` the whole keyspace for it, `UNLINK` what is
    /// found. `true` once the scan came back to its start.
    async fn sweep_prefix(&self) -> bool {
        let Some((mut connection, generation)) = self.link.connection() else {
            return false;
        };
        let pattern = format!("{}*", self.user_prefix);
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(REPAIR_BATCH);
            let call = scan.query_async::<(u64, Vec<Vec<u8>>)>(&mut connection);
            let Ok(Ok((next, keys))) = tokio::time::timeout(REPAIR_TIMEOUT, call).await else {
                self.link.report(generation, CallOutcome::Broken);
                return false;
            };
            let ours: Vec<&Vec<u8>> = keys
                .iter()
                .filter(|key| id_of_key(self.user_prefix.as_bytes(), key).is_some())
                .collect();
            if !ours.is_empty() {
                let mut unlink = redis::cmd("UNLINK");
                unlink.arg(ours);
                if !self
                    .repair_call("sweep", generation, unlink.query_async::<i64>(&mut connection))
                    .await
                {
                    return false;
                }
            }
            if next == 0 {
                return true;
            }
            cursor = next;
        }
    }

    async fn repair_call(
        &self,
        operation: &'static str,
        generation: u64,
        call: impl Future<Output = redis::RedisResult<i64>>,
    ) -> bool {
        match tokio::time::timeout(REPAIR_TIMEOUT, call).await {
            Ok(Ok(_)) => {
                self.link.report(generation, CallOutcome::Answered);
                self.breaker.record_success();
                true
            }
            Ok(Err(error)) => {
                let outcome = if is_transport_failure(&error) {
                    CallOutcome::Broken
                } else {
                    CallOutcome::Answered
                };
                self.link.report(generation, outcome);
                self.complaints
                    .warn("cache removal still pending", operation, &error.to_string());
                false
            }
            Err(_) => {
                self.link.report(generation, CallOutcome::TimedOut);
                self.complaints
                    .warn("cache removal still pending", operation, "no answer in time");
                false
            }
        }
    }
}
