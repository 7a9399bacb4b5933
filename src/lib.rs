//! Gravity BFF: a small, fast backend-for-frontend over Postgres with a Redis cache.
//!
//! Modules in reading order (imports run one way: `app` → `server` → `handlers` → `state` and
//! the modules below it):
//! - [`cli`]: the command line (`serve`, `--health`, `migrate …`, `--version`, `--help`) and the
//!   exit code of every failure.
//! - [`config`]: settings from the environment, each checked and typed at start-up.
//! - [`app`]: start-up (bind, connect, wait for Postgres) and running until told to stop.
//! - `server`: the accept loop under `MAX_CONNECTIONS`, HTTP/1 connections, the header and
//!   write-progress timeouts, hyper's refusals, and graceful shutdown.
//! - `handlers`: the per-request envelope (request id, deadline, metrics, log) and the dispatch
//!   from route and method to a handler; [`router`] resolves paths to routes.
//! - `state`: the handles every request shares.
//! - `auth`: bearer tokens from the OpenID Connect issuer, verified in the process, the scope
//!   each route needs, and the issuer's keys (fetched, cached, refreshed).
//! - [`http`]: response builders, request ids, W3C trace context, reading JSON bodies under the
//!   size limit, bearer tokens in `Authorization` and the refusals of RFC 6750, CORS.
//! - [`user`]: the user resource: its JSON form, the input rules (and which characters show
//!   nothing), pagination cursors.
//! - `writes`: every create, update and delete: deadlines Postgres enforces, writes that finish,
//!   coalesced creates, Idempotency-Key.
//! - [`db`]: Postgres: pipelined read connections, write connections, the queries, migrations.
//! - `cache`: the Redis cache of user bodies, its keys, timeouts and breaker.
//! - [`error`]: the one error type and its mapping to problem+json responses.
//! - `telemetry`: JSON logs and Prometheus metrics.
//! - [`health_probe`]: the `--health` command; `timestamp`: the one timestamp format;
//!   [`build_info`]: the version and source revision of this build; `backoff`: the one
//!   exponential back-off of every retry loop; `batcher`: the one coalescing of concurrent work.
//!
//! What is `pub` is what the binary, the black-box tests and the property tests use.

pub mod app;
mod auth;
mod backoff;
mod batcher;
pub mod build_info;
mod cache;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
mod handlers;
pub mod health_probe;
pub mod http;
pub mod router;
mod server;
mod state;
mod telemetry;
mod timestamp;
pub mod user;
mod writes;

pub use app::App;
pub use config::Config;
