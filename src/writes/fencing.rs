//! A write's fence in the cache (`cache::Fence`): raised before the write can commit, lifted after
//! it has committed (or definitely wrote nothing), left in place when its outcome is unknown.
//!
//! The fence must outlive any moment at which the write could still commit, since nobody else
//! can lift it safely before that: the request's remaining time (a statement or `COMMIT` may be
//! sent until the deadline), plus the longest a sent statement may take to reach Postgres
//! (`TCP_USER_TIMEOUT`) and to run (`STATEMENT_TIMEOUT`), plus a second for the rest.

use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use super::WriteResponse;
use crate::cache::{Cache, Fence, LiftTries};
use crate::db::connect::{STATEMENT_TIMEOUT, TCP_USER_TIMEOUT};
use crate::error::Error;

/// Beyond the request's remaining time, how long a fence outlives its raising.
const FENCE_BEYOND_DEADLINE: Duration = TCP_USER_TIMEOUT
    .saturating_add(STATEMENT_TIMEOUT)
    .saturating_add(Duration::from_secs(1));

/// One write's fence, from before its commit to after it.
pub(super) struct Fencing<'a> {
    /// The cache and the user, when the write changes a user that may be cached.
    target: Option<(&'a Cache, Uuid)>,
    deadline: Instant,
    raised: Option<Fence>,
}

impl<'a> Fencing<'a> {
    pub(super) fn new(cache: Option<&'a Cache>, user: Option<Uuid>, deadline: Instant) -> Fencing<'a> {
        Fencing {
            target: cache.zip(user),
            deadline,
            raised: None,
        }
    }

    /// Raises the fence; the write may commit only after `Ok`. A refusal means nothing was written.
    pub(super) async fn raise(&mut self) -> Result<(), Error> {
        let Some((cache, id)) = self.target else {
            return Ok(());
        };
        let lifetime = self.deadline.saturating_duration_since(Instant::now()) + FENCE_BEYOND_DEADLINE;
        self.raised = Some(cache.raise_fence(id, lifetime).await?);
        Ok(())
    }

    /// After the write: lifts the fence of a write that committed (trying for up to a second) or
    /// that wrote nothing (once); leaves the fence of a write whose outcome is unknown to
    /// expire once the write can no longer commit.
    pub(super) async fn settle(self, outcome: &Result<WriteResponse, Error>) {
        let (Some((cache, _)), Some(fence)) = (self.target, self.raised) else {
            return;
        };
        let tries = match outcome {
            Err(Error::WriteOutcomeUnknown(_)) => return,
            // A committed write keeps trying for the lift's whole patience, past its deadline if
            // need be (its answer is then late, never wrong): a restarted Redis may have lost the
            // fence, and only the lift removes what readers stored meanwhile.
            Ok(_) => LiftTries::UntilAnswered,
            Err(_) => LiftTries::Once,
        };
        cache.lift_fence(fence, tries).await;
    }
}
