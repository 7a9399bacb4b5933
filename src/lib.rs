//! Gravity BFF: a small, fast backend-for-frontend over Postgres with a Redis cache.
//!
//! Modules in reading order:
//! - [`cli`]: the command line (`serve`, `--health`, `migrate …`, `--version`, `--help`).
//! - [`config`]: settings from the environment, each checked and typed at start-up.
//! - [`app`]: start-up (bind, connect, wait for Postgres) and the shared state.
//! - [`server`]: the accept loop, HTTP/1 connections, timeouts and graceful shutdown.
//! - [`handlers`]: the per-request envelope (request id, deadline, metrics, log) and the
//!   dispatch from route and method to a handler; [`router`] resolves paths to routes.
//! - [`http`]: response builders, request ids, reading JSON bodies under the size limit.
//! - [`users`]: the user resource: its JSON form, the input rules, pagination cursors.
//! - [`db`]: Postgres: shared pipelined connections, the users queries, migrations.
//! - [`cache`]: the Redis cache of user bodies, its keys, timeouts and breaker.
//! - [`error`]: the one error type and its mapping to problem+json responses.
//! - [`telemetry`]: JSON logs and Prometheus metrics.
//! - [`health_check`]: the `--health` probe; [`timestamp`]: the one timestamp format.

pub mod app;
pub mod cache;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod handlers;
pub mod health_check;
pub mod http;
pub mod router;
pub mod server;
pub mod telemetry;
pub mod timestamp;
pub mod users;

pub use app::{App, StartupError};
pub use config::Config;
