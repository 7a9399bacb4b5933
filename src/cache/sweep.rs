//! Sweeps: removing every cached body and lease under the prefix from a Redis whose contents
//! cannot be trusted, before any replica serves from it (`link` decides when): one that restarted,
//! failed over or was flushed may hold bodies restored from disk that acknowledged writes had
//! removed. Fences stay: they stand for writes on their way.

use redis::aio::MultiplexedConnection;
use std::time::Duration;

use super::keys::id_of_key;

/// The keys one `SCAN` step looks at, and the most one call removes.
const SWEEP_BATCH: usize = 1_000;
/// A sweep call may take longer than a request's call: it is off the request path.
const SWEEP_CALL_TIMEOUT: Duration = Duration::from_millis(1_000);

/// Removes the keys given unless they hold a fence.
const REMOVE_UNLESS_FENCED: &str = r"
local removed = 0
for _, key in ipairs(KEYS) do
  if redis.call('TYPE', key).ok ~= 'string' or redis.call('GETRANGE', key, 0, 5) ~= 'fence:' then
    removed = removed + redis.call('UNLINK', key)
  end
end
return removed";

/// Removes every body and lease under `user_prefix` (`SCAN` the keyspace, then the script above on
/// what it found); `Ok` once the scan came back to its start.
pub(super) async fn sweep(connection: &mut MultiplexedConnection, user_prefix: &str) -> Result<(), String> {
    let pattern = format!("{user_prefix}*");
    let script = redis::Script::new(REMOVE_UNLESS_FENCED);
    let mut cursor: u64 = 0;
    loop {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor).arg(("MATCH", &pattern)).arg(("COUNT", SWEEP_BATCH));
        let (next, mut keys) =
            super::within(SWEEP_CALL_TIMEOUT, scan.query_async::<(u64, Vec<Vec<u8>>)>(connection)).await?;
        keys.retain(|key| id_of_key(user_prefix.as_bytes(), key).is_some());
        if !keys.is_empty() {
            super::within(SWEEP_CALL_TIMEOUT, script.key(&keys).invoke_async::<i64>(connection)).await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}
