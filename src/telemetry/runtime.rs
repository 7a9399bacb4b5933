//! Gauges of the tokio runtime (docs/OPERATIONS.md lists them), read at scrape time from its
//! stable metrics (no `tokio_unstable`). A queue that stays deep, or workers busy nearly all the
//! time, mean the process is saturated: more replicas or cores, not more connections.

use tokio::runtime::Handle;

use crate::telemetry::metrics::{render_labelled, render_one};

/// Appends the runtime's figures; nothing when called outside a tokio runtime.
pub(crate) fn render(out: &mut String) {
    let Ok(handle) = Handle::try_current() else {
        return;
    };
    let metrics = handle.metrics();
    let name = "gravity_runtime_workers";
    let help = "Worker threads of the tokio runtime.";
    render_one(out, name, "gauge", help, metrics.num_workers());
    let name = "gravity_runtime_alive_tasks";
    let help = "Tasks alive in the tokio runtime (connections, requests in flight, background work).";
    render_one(out, name, "gauge", help, metrics.num_alive_tasks());
    let name = "gravity_runtime_global_queue_depth";
    let help = "Tasks waiting in the runtime's global queue for a worker.";
    render_one(out, name, "gauge", help, metrics.global_queue_depth());
    let name = "gravity_runtime_worker_busy_seconds_total";
    let help = "Time each runtime worker spent running tasks rather than parked.";
    let busy =
        (0..metrics.num_workers()).map(|worker| (worker, metrics.worker_total_busy_duration(worker).as_secs_f64()));
    render_labelled(out, name, "counter", help, "worker", busy);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_runtime_nothing_is_rendered() {
        let mut out = String::new();
        render(&mut out);
        assert!(out.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inside_a_runtime_its_workers_and_tasks_are_rendered() {
        let mut out = String::new();
        render(&mut out);
        assert!(out.contains("gravity_runtime_workers 2\n"), "{out}");
        assert!(out.contains("gravity_runtime_alive_tasks "), "{out}");
        assert!(
            out.contains("gravity_runtime_worker_busy_seconds_total{worker=\"1\"} "),
            "{out}"
        );
    }
}
