//! The unit tests of the bench's pure parts, run by `cargo test` (the bench itself, tests/bench/
//! main.rs, is a `harness = false` program that only `make bench` runs): reading oha's JSON and
//! the limit tools' output, `/proc` arithmetic, settings, the scenario table, a run's folder,
//! and the report's ratios, targets and verdicts.
#![allow(dead_code)]

mod http;
mod lag;
mod limits;
mod oha;
mod proc_stat;
mod report;
mod results;
mod scenarios;
mod settings;
