//! Fences: how a write keeps every replica from serving the user as it was before the write (the
//! memcache paper's lease turned around, Meta's "remote markers"; the rules they keep, and why those
//! suffice: ARCHITECTURE.md, Invariants, and docs/API.md, Cache).
//! - **Raised before the write can commit**, a fence replaces whatever is at the key, and writers
//!   of one user share it (`fence:` and a token per write) until the last lifts its part. If Redis
//!   does not take it, the write is refused: only Redis could warn the other replicas. If Redis
//!   does not answer, it may have taken it: the refused write lifts it in the background.
//! - **The same script tells whether any replica may serve in-process copies**
//!   (`copies_may_be_served`); if so, a committed write answers no sooner than `VOUCHED_FOR` after
//!   its fence (why that suffices: `local`).
//! - **Lifting learns whether it held** (`HELD`): if not, it removes whatever is at the key. An
//!   unanswered lift is retried for `LIFT_PATIENCE`; after that the fence, still in a Redis that is
//!   frozen or out of reach, does the rest.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use super::Cache;
use super::keys::KeyBuf;
use super::local::VOUCHED_FOR;
use super::stored_value::Token;
use crate::backoff::Backoff;
use crate::error::Error;

/// Adds a write's token (ARGV[1]) to the fence at the key, or replaces whatever else is there with
/// a fence of that token; the fence lives ARGV[2] ms, or longer if it already did. `pcall`: a value
/// of another type is simply replaced. Returns `COPIES_KEY` and `NO_RECORD` (ARGV[3]: the
/// connection's `run_id`) as they are.
pub(super) const RAISE_FENCE: &str = r"
local held = redis.pcall('GET', KEYS[1])
local tokens = ''
local lifetime = tonumber(ARGV[2])
if type(held) == 'string' and string.sub(held, 1, 6) == 'fence:' then
  tokens = string.sub(held, 7)
  lifetime = math.max(lifetime, redis.call('PTTL', KEYS[1]))
end
redis.call('SET', KEYS[1], 'fence:' .. tokens .. ARGV[1], 'PX', lifetime)
local recorded = ARGV[3] ~= '' and redis.pcall('GET', KEYS[3]) == ARGV[3]
return redis.call('EXISTS', KEYS[2]) * 2 + (recorded and 0 or 4)";

/// Takes the write's token (ARGV[1]) out of the fence, removing the key with the last token. Without
/// it: another write's fence is left in place, anything else is removed (it may have been stored
/// while the fence was gone). Returns `HELD` if the token was there, plus `COPIES_KEY` and
/// `NO_RECORD` (ARGV[2]: the connection's `run_id`) as they are.
pub(super) const LIFT_FENCE: &str = r"
local recorded = ARGV[2] ~= '' and redis.pcall('GET', KEYS[3]) == ARGV[2]
local copies = redis.call('EXISTS', KEYS[2]) * 2 + (recorded and 0 or 4)
local held = redis.pcall('GET', KEYS[1])
if type(held) == 'string' and string.sub(held, 1, 6) == 'fence:' then
  for at = 7, #held, 16 do
    if string.sub(held, at, at + 15) == ARGV[1] then
      local rest = string.sub(held, 7, at - 1) .. string.sub(held, at + 16)
      if rest == '' then
        redis.call('DEL', KEYS[1])
      else
        redis.pcall('SET', KEYS[1], 'fence:' .. rest, 'KEEPTTL')
      end
      return 1 + copies
    end
  end
  return copies
end
redis.call('DEL', KEYS[1])
return copies";
/// The fence scripts' answers, bit by bit. The write's token was still there (`LIFT_FENCE` only).
const HELD: i64 = 1;
/// `{prefix}:copies` (KEYS[2]) exists: some replica serves in-process copies.
const COPIES_KEY: i64 = 2;
/// `{prefix}:instance` (KEYS[3]) does not record the Redis the script runs on: a flush, a restart
/// or a failover took it (or a newer one) away, and may have taken `{prefix}:copies` with it (a
/// snapshot or a replica can be older than the key's 3 s) while copies are still served on the
/// word of a round trip from before (`link`'s `RECORD_NO_SOONER_THAN`).
const NO_RECORD: i64 = 4;

/// How long a sighting of `{prefix}:copies` counts: far longer than the key is ever missing while
/// copies are served, and short enough that writes stop waiting soon after copies are turned off.
const COPIES_SIGHTING_COUNTS: Duration = Duration::from_secs(600);

/// How long a lift is tried before the write answers anyway: more than the link takes to reach a
/// Redis that is back (an attempt may hang for its 500 ms connect timeout, and the next starts at
/// most 500 ms later), plus the call itself, so a restarted Redis is reached again in time.
const LIFT_PATIENCE: Duration = Duration::from_secs(2);
/// The first wait before a lift is tried again; doubled after each failure up to the cap.
const LIFT_RETRY_FIRST: Duration = Duration::from_millis(20);
const LIFT_RETRY_CAP: Duration = Duration::from_millis(200);

/// How hard a lift tries, and what it waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LiftTries {
    /// Until Redis answers, for `LIFT_PATIENCE`, then until in-process copies cannot contradict
    /// the write: it committed (or may have, and its session has ended).
    AfterCommit,
    /// Until Redis answers, for `LIFT_PATIENCE` but not past `answer_by`: the write wrote nothing,
    /// so no copy can contradict it, but a fence left in place keeps its user uncached for the
    /// fence's lifetime; and its client is told so before its deadline.
    WroteNothing { answer_by: Instant },
    /// Once: the fence is expiring anyway (`lift_fence_as_it_expires`).
    Once,
}

/// A write's fence at one user's key, raised and not yet lifted.
#[derive(Debug)]
pub(crate) struct Fence {
    id: Uuid,
    token: Token,
    /// When replicas serving in-process copies have all heard of the fence (`None`: none may).
    copies_heard_at: Option<Instant>,
    /// When it expires: no sooner than Redis lets it (measured from before the call).
    expires_at: Instant,
}

impl Cache {
    /// Raises a fence at `id`'s key for `lifetime`: the write may go ahead only with `Ok`; else it
    /// is refused, since no other replica could be warned.
    pub(crate) async fn raise_fence(&self, id: Uuid, lifetime: Duration) -> Result<Fence, Error> {
        let inner = &*self.inner;
        // Not held back by the breaker: one slow answer to a read must not refuse every write for
        // a second; each write finds out for itself, within the call timeout.
        let Some((mut connection, generation)) = inner.link.connection_within(inner.call_timeout).await else {
            return Err(refused("redis is not connected".into()));
        };
        let mut fence = Fence {
            id,
            token: Token::new(),
            copies_heard_at: None,
            expires_at: Instant::now() + lifetime,
        };
        let key = KeyBuf::body(&inner.user_prefix, id);
        let mut invocation = inner.raise_fence_script.key(key.as_bytes());
        invocation
            .key(&inner.copies_key)
            .key(inner.link.instance_key())
            .arg(fence.token.as_bytes())
            .arg(u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX))
            .arg(&*inner.link.run_id());
        let call = invocation.invoke_async::<i64>(&mut connection);
        let answer = match inner.bounded("raise fence", generation, call).await {
            Ok(answer) => answer,
            Err(Some(error)) => return Err(refused(format!("redis refused it: {error}"))),
            Err(None) => {
                // Redis may have taken the fence and lost only its answer: lifted in the background
                // (the write is refused, so wrote nothing), it keeps no replica from caching the
                // user for the fence's lifetime.
                let (cache, answer_by) = (self.clone(), Instant::now() + LIFT_PATIENCE);
                tokio::spawn(async move { cache.lift(&fence, LiftTries::WroteNothing { answer_by }).await });
                return Err(refused(super::no_answer_within(inner.call_timeout)));
            }
        };
        // Redis tells the other replicas (their tracking connections); this one drops its copy now.
        self.forget_copy(id);
        fence.copies_heard_at = self.copies_may_be_served(answer).then(|| Instant::now() + VOUCHED_FOR);
        Ok(fence)
    }

    /// Lifts a write's fence after its commit (or after it definitely wrote nothing); if Redis never
    /// answers, the fence stays until it expires. After a commit, returns no sooner than every
    /// replica's in-process copies have heard of the fence.
    pub(crate) async fn lift_fence(&self, fence: Fence, tries: LiftTries) {
        let answer = self.lift(&fence, tries).await;
        if tries == LiftTries::AfterCommit {
            if let Some(heard_at) = fence.copies_heard_at {
                tokio::time::sleep_until(heard_at).await;
            }
            // The fence was gone, and what the lift removed in its place may have been copied (or
            // nothing was there, or another write's fence: rare enough to wait for all the same).
            if let Some((answer, answered_at)) = answer
                && answer & HELD == 0
                && self.copies_may_be_served(answer)
            {
                tokio::time::sleep_until(answered_at + VOUCHED_FOR).await;
            }
        }
    }

    /// Lifts a fence once as it expires, in the background: for a write whose outcome is unknown,
    /// which may commit until then; should Redis have lost the fence, the lift removes what a
    /// reader stored meanwhile.
    pub(crate) fn lift_fence_as_it_expires(&self, fence: Fence) {
        let cache = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(fence.expires_at).await;
            cache.lift_fence(fence, LiftTries::Once).await;
        });
    }

    /// Whether any replica may serve copies, given a fence script's `answer`: yes if Redis holds
    /// `{prefix}:copies` or lacks its record (`NO_RECORD`), if this replica keeps copies (a fleet
    /// runs one setting), or if the key was seen within `COPIES_SIGHTING_COUNTS`.
    fn copies_may_be_served(&self, answer: i64) -> bool {
        if self.near.is_some() {
            return true;
        }
        let mut seen_at = self.inner.copies_seen_at.lock().unwrap_or_else(PoisonError::into_inner);
        if answer & COPIES_KEY != 0 {
            *seen_at = Some(Instant::now());
        }
        answer & NO_RECORD != 0 || seen_at.is_some_and(|at| at.elapsed() < COPIES_SIGHTING_COUNTS)
    }

    /// `LIFT_FENCE`'s answer and when it came, or `None` when Redis never answered.
    async fn lift(&self, fence: &Fence, tries: LiftTries) -> Option<(i64, Instant)> {
        let until = match tries {
            LiftTries::AfterCommit => Instant::now() + LIFT_PATIENCE,
            LiftTries::WroteNothing { answer_by } => answer_by.min(Instant::now() + LIFT_PATIENCE),
            LiftTries::Once => Instant::now(),
        };
        let inner = &*self.inner;
        let key = KeyBuf::body(&inner.user_prefix, fence.id);
        let mut backoff = Backoff::new(LIFT_RETRY_FIRST, LIFT_RETRY_CAP);
        loop {
            // Not held back by the breaker: the lift is worth a try whenever there is a connection,
            // and worth waiting for one while the link reconnects.
            let patience = until.saturating_duration_since(Instant::now());
            if let Some((mut connection, generation)) = inner.link.connection_within(patience).await {
                let mut invocation = inner.lift_fence_script.key(key.as_bytes());
                invocation
                    .key(&inner.copies_key)
                    .key(inner.link.instance_key())
                    .arg(fence.token.as_bytes())
                    .arg(&*inner.link.run_id());
                let call = invocation.invoke_async::<i64>(&mut connection);
                if let Ok(answer) = inner.bounded("lift fence", generation, call).await {
                    self.forget_copy(fence.id);
                    return Some((answer, Instant::now()));
                }
            }
            let wait = backoff.next_wait();
            if Instant::now() + wait >= until {
                inner.metrics.cache_fences_left.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            tokio::time::sleep(wait).await;
        }
    }
}

fn refused(why: String) -> Error {
    Error::WriteRefused(format!("the cache did not take the write's fence: {why}").into())
}
