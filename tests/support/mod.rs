//! What every test harness of the project shares: free ports, signals, a `redis-server` of its
//! own, the test Postgres and Redis named by the environment with throwaway databases on them,
//! a private Postgres cluster that a test may stop, freeze or restart, and a token issuer with
//! keys, tokens and a JWKS endpoint of its own.
//!
//! Included with `#[path = "../support/mod.rs"] mod support;` by tests/api and tests/chaos (as
//! hyper's examples share their `support` module); not every harness uses every piece.
#![allow(dead_code)]

pub mod cluster;
pub mod http;
pub mod issuer;
pub mod proxy;
pub mod redis_server;
pub mod service;
pub mod services;

use std::process::Command;

/// The value of one series of a `/metrics` page, by its full name with labels, e.g.
/// `gravity_cache_hits_total` or `gravity_db_queries_in_flight{pool="read"}`.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// A loopback port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

/// Sends a signal by name (`STOP`, `CONT`, `TERM`, `KILL`, …) with kill(1).
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(status.success(), "kill -{name} {pid} failed");
}
