//! Black-box tests of the whole service: the real server on a free port, a fresh Postgres
//! database per test (created, migrated with the project's own migrations, dropped), and the real
//! Redis with a key prefix of its own. Nothing is mocked.
//!
//! Postgres and Redis are found through TEST_PG_HOST/PORT/USER/PASSWORD and
//! TEST_REDIS_HOST/PORT (default: 127.0.0.1:5432 as postgres, 127.0.0.1:6379).

#[path = "../support/mod.rs"]
mod support;

mod helpers;

mod auth;
mod cache;
mod cache_coherence;
mod cli;
mod coalesced_creates;
mod connections;
mod cors;
mod faults;
mod first_run;
mod hostile;
mod idempotency;
mod local_copies;
mod logs;
mod migrations;
mod refusals;
mod secret_files;
mod secrets;
mod service_process;
mod shutdown;
mod slow_bodies;
mod system;
mod tls;
mod trace_context;
mod users_create;
mod users_list;
mod users_read;
mod users_write;
mod write_outcomes;
