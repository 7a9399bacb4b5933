//! Gauges of the tokio runtime the service runs on, read at scrape time from tokio's stable
//! runtime metrics (no `tokio_unstable` build flag): how many workers, how many tasks are alive
//! (roughly one per open connection plus the background keepers), how deep the global queue is,
//! and how busy each worker has been. A queue that stays deep, or workers busy nearly all the
//! time, means the process is saturated: more replicas or cores, not more connections.

use std::fmt::Write as _;

use tokio::runtime::Handle;

/// Appends the runtime's figures; nothing when called outside a tokio runtime.
pub(crate) fn render(out: &mut String) {
    let Ok(handle) = Handle::try_current() else {
        return;
    };
    let metrics = handle.metrics();
    let gauges = [
        (
            "gravity_runtime_workers",
            "Worker threads of the tokio runtime.",
            metrics.num_workers(),
        ),
        (
            "gravity_runtime_alive_tasks",
            "Tasks alive in the tokio runtime (connections, requests in flight, background work).",
            metrics.num_alive_tasks(),
        ),
        (
            "gravity_runtime_global_queue_depth",
            "Tasks waiting in the runtime's global queue for a worker.",
            metrics.global_queue_depth(),
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
    }
    let name = "gravity_runtime_worker_busy_seconds_total";
    let _ = writeln!(
        out,
        "# HELP {name} Time each runtime worker spent running tasks rather than parked.\n# TYPE {name} counter"
    );
    for worker in 0..metrics.num_workers() {
        let busy = metrics.worker_total_busy_duration(worker).as_secs_f64();
        let _ = writeln!(out, "{name}{{worker=\"{worker}\"}} {busy}");
    }
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
