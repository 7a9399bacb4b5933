//! The cache after a write whose outcome is unknown: its statement reached Postgres, or may have,
//! and can still commit after the client was told so (Postgres may be running it, e.g. waiting on
//! a row lock, until its statement timeout). A removal alone would let the next read store the row
//! as it was before that late commit, for the whole time to live.
//!
//! So the key holds a fence for the rest of that window instead: a lease nobody holds, which every
//! reader takes for a fill in progress, so reads go to Postgres and none stores a body; it expires
//! by itself when the window is over, and the next read fills the key again. A fence Redis does
//! not take is retried, with backoff, for as long as the window lasts: each try replaces whatever
//! a reader stored meanwhile. Meanwhile the key is a pending removal, which holds back this
//! process's cached bodies. If no try succeeds, the key is removed (a pending removal again if
//! that fails) once the window is over.

use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use super::keys::KeyBuf;
use super::{Cache, Inner, LeaseToken};

/// The first wait before a fence is tried again, doubled after each failure up to the cap.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_CAP: Duration = Duration::from_millis(1_000);

impl Cache {
    /// Forgets a user after a write whose outcome is unknown; it may still commit for `window`.
    pub(crate) async fn remove_unsettled(&self, id: Uuid, window: Duration) {
        let until = Instant::now() + window;
        let fenced = self.inner.fence(id, until).await;
        self.inner.drop_local_copy(id);
        if fenced {
            return;
        }
        self.inner.pending.add(id);
        let cache = self.clone();
        tokio::spawn(async move {
            let mut wait = RETRY_FIRST;
            while Instant::now() + wait < until {
                tokio::time::sleep(wait).await;
                if cache.inner.fence(id, until).await {
                    return;
                }
                wait = (wait * 2).min(RETRY_CAP);
            }
            tokio::time::sleep_until(until).await;
            cache.remove(id).await;
        });
    }
}

impl Inner {
    /// Sets the fence at the key until `until`, replacing whatever is there; whether Redis took it.
    async fn fence(&self, id: Uuid, until: Instant) -> bool {
        let left = until.saturating_duration_since(Instant::now());
        let milliseconds = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
        if milliseconds == 0 {
            return false;
        }
        let Some((mut connection, generation)) = self.live_connection() else {
            return false;
        };
        let key = KeyBuf::body(&self.user_prefix, id);
        let mut command = redis::cmd("SET");
        command
            .arg(key.as_bytes())
            .arg(LeaseToken::new().as_bytes())
            .arg("PX")
            .arg(milliseconds);
        let call = command.query_async::<()>(&mut connection);
        self.bounded("fence", generation, call).await.is_ok()
    }
}
