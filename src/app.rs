//! Start-up: from a `Config` to a bound listener and the shared state, then running until told
//! to stop.
//!
//! `App::build` binds the port (the real one is reported when `API_PORT=0`, as tests use), starts
//! the Postgres keepers, the lazy Redis connection and the fetching of the issuer's keys, and
//! waits briefly for Postgres so the first requests do not race the first connection. With
//! Postgres, Redis or the issuer down it still starts, answers `/health`, reports not ready and
//! recovers by itself.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};

use crate::auth::Auth;
use crate::cache::Cache;
use crate::cli::Failure;
use crate::config::{Config, ConfigError};
use crate::db::Database;
use crate::db::connect::Connector;
use crate::db::lookup_batches::LookupQueue;
use crate::http::cors::CorsPolicy;
use crate::server::{self, ServerSettings, limits};
use crate::state::AppState;
use crate::telemetry::log::Logger;
use crate::telemetry::metrics::Metrics;
use crate::writes::Writes;

/// How long start-up waits for a first Postgres connection before serving anyway.
const FIRST_CONNECTION_WAIT: Duration = Duration::from_secs(5);
/// How long start-up waits for the first Redis connection (a reachable Redis takes milliseconds;
/// an unreachable one must not hold reads back long, since they do not need it).
const FIRST_REDIS_CONNECTION_WAIT: Duration = Duration::from_secs(1);
/// Connections the kernel completes and queues for `accept`. tokio's `bind` asks for 128; a burst
/// larger than that (a load balancer reconnecting its pool, clients arriving while every
/// connection is busy at `MAX_CONNECTIONS`) then has its SYNs dropped, and each of those clients
/// waits a second or more for TCP to try again. 1024 is what Go's and nginx-era defaults allow
/// for, and the kernel caps it at `net.core.somaxconn` anyway.
const LISTEN_BACKLOG: u32 = 1024;

/// How long a stopping process waits for stdout to take the last request lines.
const EXIT_FLUSH_PATIENCE: Duration = Duration::from_secs(1);

/// A service ready to run: the port is bound, the connections are coming up.
pub struct App {
    listener: TcpListener,
    state: Arc<AppState>,
    settings: ServerSettings,
}

/// The checks of the settings that `App::build` makes before it connects anywhere, and that
/// `gravity-bff check` makes alone (so a deployment can refuse a bad `.env` before it stops
/// anything that runs).
pub fn check(config: &Config) -> Result<(), ConfigError> {
    checked_connector(config).map(drop)
}

/// The checks, keeping what they built: the Postgres connector (its `DB_SSL_ROOT_CERT` read once).
fn checked_connector(config: &Config) -> Result<Connector, ConfigError> {
    let connector = Connector::new(&config.database, "gravity-bff")?;
    config.authentication.require_a_choice()?;
    Ok(connector)
}

impl App {
    pub async fn build(config: Config) -> Result<App, Failure> {
        let connector = checked_connector(&config)?;
        let logger = Logger::new(config.log_level);
        let metrics = Arc::new(Metrics::default());
        let db = Database::start(connector, &config.database, logger.clone());
        let cache = (config.cache.redis.as_ref())
            .map(|redis| Cache::connect(redis, &config.cache, metrics.clone(), logger.clone()))
            .transpose()
            .map_err(|error| ConfigError::new("REDIS_HOST", error.to_string()))?;
        let max_connections = connection_limit(&config, &logger);
        let auth = Auth::start(&config.authentication, max_connections, metrics.clone(), &logger)?;
        let address = SocketAddr::from((Ipv4Addr::UNSPECIFIED, config.api_port));
        let listener = listen(address).map_err(|error| Failure::Listen {
            port: config.api_port,
            error,
        })?;
        if !db.wait_until_connected(FIRST_CONNECTION_WAIT).await {
            logger.warn(
                "postgres is not reachable yet; serving 503 until it is",
                &[("host", &config.database.host), ("port", &config.database.port)],
            );
        }
        // Writes need Redis for their fences: a replica that served before its first connection
        // would refuse the writes a load balancer sends it as soon as it is up.
        if let Some(cache) = &cache
            && !cache.wait_until_connected(FIRST_REDIS_CONNECTION_WAIT).await
        {
            logger.warn(
                "redis is not reachable yet; reads skip the cache and PATCH and DELETE are refused until it is",
                &[],
            );
        }
        let lookups = LookupQueue::start(db.clone());
        let writes = Writes::start(
            db.clone(),
            cache.clone(),
            logger.clone(),
            config.idempotency_sweep_every,
        );
        Ok(App {
            listener,
            state: Arc::new(AppState {
                db,
                lookups,
                cache,
                writes,
                auth,
                cors: CorsPolicy::new(&config.cors_allowed_origins),
                metrics,
                logger,
                has_been_ready: AtomicBool::new(false),
            }),
            settings: ServerSettings {
                max_connections,
                shutdown_grace: config.shutdown_grace,
                keep_alive: config.keep_alive,
            },
        })
    }

    /// The port actually bound (useful with `API_PORT=0`).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |address| address.port())
    }

    /// Serves until `shutdown` completes, then drains in-flight requests for up to the grace period.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let logger = self.state.logger.clone();
        let (port, max_connections) = (self.port(), self.settings.max_connections);
        logger.info("listening", &[("port", &port), ("max_connections", &max_connections)]);
        server::serve(self.listener, self.state, shutdown, self.settings).await;
        logger.info("stopped", &[]);
        if !logger.flush_within(EXIT_FLUSH_PATIENCE) {
            logger.warn("stdout took no request lines for 1 s; exiting without the rest", &[]);
        }
    }
}

/// `MAX_CONNECTIONS`, or its default from the descriptor limit, raised first to its hard maximum.
fn connection_limit(config: &Config, logger: &Logger) -> usize {
    // The most Postgres connections the process opens: its pool and the extra write connections.
    let postgres_connections = config.database.pool_size + config.database.extra_write_connections;
    let descriptors = limits::raise_descriptor_limit().unwrap_or_else(|error| {
        let message = "cannot read the descriptor limit; assuming 1024";
        logger.warn(message, &[("error.message", &error.to_string())]);
        1024
    });
    let Some(chosen) = config.max_connections else {
        return limits::default_max_connections(descriptors, postgres_connections);
    };
    let room = limits::descriptors_for_clients(descriptors, postgres_connections);
    if chosen as u64 > room {
        // Not fatal: accept errors are survived, but the operator should know.
        logger.warn(
            "MAX_CONNECTIONS is above what the descriptor limit leaves for clients",
            &[
                ("max_connections", &chosen),
                ("descriptor_limit", &descriptors),
                ("room_for_clients", &room),
            ],
        );
    }
    chosen
}

/// Binds the service's port with `LISTEN_BACKLOG` (and `SO_REUSEADDR`, as `TcpListener::bind`
/// sets, so a restarted process is not refused the port while old connections linger).
fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}
