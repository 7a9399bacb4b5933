//! The handles every request shares: Postgres, the cache, authentication, the CORS policy,
//! metrics and the logger. `app` builds it, `server` hands it to every connection, and the
//! handlers read it (a leaf of the module graph: ARCHITECTURE.md).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::auth::Auth;
use crate::cache::Cache;
use crate::db::Database;
use crate::db::lookup_batches::LookupQueue;
use crate::http::cors::CorsPolicy;
use crate::telemetry::log::Logger;
use crate::telemetry::metrics::Metrics;
use crate::writes::Writes;

/// Shared behind one `Arc` by every connection and request.
pub(crate) struct AppState {
    pub(crate) db: Database,
    /// Coalesced lookups of single users by id (the uncached reads).
    pub(crate) lookups: LookupQueue,
    /// `None` when the cache is turned off.
    pub(crate) cache: Option<Cache>,
    pub(crate) writes: Writes,
    pub(crate) auth: Auth,
    /// `None` when no origin is allowed: no CORS headers at all.
    pub(crate) cors: Option<CorsPolicy>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) logger: Logger,
    /// Set the first time the process is ready (`/ready`'s conditions hold): `/health?started`.
    pub(crate) has_been_ready: AtomicBool,
}
