//! What the service tells its operators: JSON log lines and Prometheus metrics.

mod json_writer;
pub mod log;
pub mod metrics;
mod process;
pub(crate) mod rate_limited;
mod runtime;
mod stdout_sink;
