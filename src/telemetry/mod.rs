//! What the service tells its operators: JSON log lines and Prometheus metrics.

pub mod log;
pub mod metrics;
