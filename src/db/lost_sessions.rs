//! Ending the Postgres session of a write whose connection was lost once its statement was sent:
//! Postgres notices the loss only when it next reads from the connection, so the statement could
//! run on and commit over the client's next write to that user (docs/API.md, Writes). So before
//! such a write answers, and before the next write to its user may start, its session is
//! terminated over another connection and the write waits until Postgres no longer lists it:
//! whatever the statement did is then final. A session is named by its process id and start time,
//! as a process id alone may be reused.

use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_postgres::Client;

use super::Database;
use super::keeper::LiveConnection;

/// How often a session that is still listed is terminated and looked for again.
const RECHECK: std::time::Duration = std::time::Duration::from_millis(10);

const IDENTIFY: &str = "SELECT pg_backend_pid(), backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()";
/// A row while the session is listed (it was sent the signal again), none once it has ended.
pub(crate) const TERMINATE: &str =
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = $1 AND backend_start = $2";

/// One connection's session in Postgres.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Session {
    pid: i32,
    started: OffsetDateTime,
}

impl Session {
    pub(crate) async fn of(client: &Client) -> Result<Session, tokio_postgres::Error> {
        let row = client.query_one(IDENTIFY, &[]).await?;
        Ok(Session {
            pid: row.try_get(0)?,
            started: row.try_get(1)?,
        })
    }
}

impl Database {
    /// Terminates the session of `lost` (a write connection that is gone) and waits until Postgres
    /// no longer lists it, up to `until`; `true` once it has ended (the write's outcome is final,
    /// if unknown). While Postgres cannot be reached it keeps trying: the session may still be
    /// running the statement. Giving up is logged: that write may still commit.
    pub(crate) async fn end_lost_session(&self, lost: &LiveConnection, until: Instant) -> bool {
        let Session { pid, started } = lost.session;
        loop {
            let listed = async {
                read_with_retry!(self.reads(), |connection| connection
                    .client
                    .query(&connection.statements.terminate, &[&pid, &started]))
            };
            // Bounded: a Postgres that does not answer must not hold the write past `until`.
            let listed = tokio::time::timeout_at(until, listed).await;
            if listed.is_ok_and(|listed| listed.is_ok_and(|rows| rows.is_empty())) {
                return true;
            }
            if Instant::now() + RECHECK >= until {
                self.inner.logger.warn(
                    "postgres could not be reached to end the session of a write whose connection was lost; \
                     it may still commit",
                    &[("db.pid", &pid.unsigned_abs())],
                );
                return false;
            }
            tokio::time::sleep(RECHECK).await;
        }
    }
}
