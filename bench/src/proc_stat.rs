//! Where the cores went: CPU time per process group from `/proc/PID/stat`, the whole machine's
//! busy and idle time from `/proc/stat`, and memory from `/proc/PID/status`.
//!
//! The parsing and the arithmetic are pure functions of the files' text; `sample` reads them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// CPU ticks (`CLK_TCK` per second) of each process of a group, by pid.
pub type Group = BTreeMap<u32, u64>;

/// Everything read at the start and at the end of a scenario.
#[derive(Clone, Debug, Default)]
pub struct CpuSample {
    pub wall_ms: f64,
    pub service: Group,
    pub redis: Group,
    pub postgres: Group,
    /// User + system ticks of the harness's finished children (oha), from its own `cutime + cstime`.
    pub children: u64,
    pub machine_busy: u64,
    pub machine_idle: u64,
}

/// Milliseconds of CPU each group used over one scenario. `None`: that group was not measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuUse {
    pub wall_ms: f64,
    pub service_ms: Option<f64>,
    pub redis_ms: Option<f64>,
    pub postgres_ms: Option<f64>,
    /// The load generator (oha).
    pub client_ms: f64,
    pub machine_busy_ms: f64,
    pub machine_idle_ms: f64,
}

impl CpuUse {
    pub fn between(start: &CpuSample, end: &CpuSample, ticks_per_second: u64) -> CpuUse {
        let ms = |ticks: u64| ticks as f64 * 1000.0 / ticks_per_second.max(1) as f64;
        CpuUse {
            wall_ms: end.wall_ms - start.wall_ms,
            service_ms: group_delta(&start.service, &end.service).map(ms),
            redis_ms: group_delta(&start.redis, &end.redis).map(ms),
            postgres_ms: group_delta(&start.postgres, &end.postgres).map(ms),
            client_ms: ms(end.children.saturating_sub(start.children)),
            machine_busy_ms: ms(end.machine_busy.saturating_sub(start.machine_busy)),
            machine_idle_ms: ms(end.machine_idle.saturating_sub(start.machine_idle)),
        }
    }

    /// Microseconds of CPU per request: service, redis, postgres, client, other (the rest of the
    /// machine), total, and the share of the machine that was busy.
    pub fn per_request(&self, requests: u64) -> Option<PerRequest> {
        if requests == 0 {
            return None;
        }
        let per = |ms: f64| ms * 1000.0 / requests as f64;
        let known = self.service_ms.unwrap_or(0.0)
            + self.redis_ms.unwrap_or(0.0)
            + self.postgres_ms.unwrap_or(0.0)
            + self.client_ms;
        let total = self.machine_busy_ms + self.machine_idle_ms;
        Some(PerRequest {
            service_us: self.service_ms.map(per),
            redis_us: self.redis_ms.map(per),
            postgres_us: self.postgres_ms.map(per),
            client_us: per(self.client_ms),
            other_us: per((self.machine_busy_ms - known).max(0.0)),
            total_us: per(self.machine_busy_ms),
            machine_busy: (total > 0.0).then(|| self.machine_busy_ms / total),
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PerRequest {
    pub service_us: Option<f64>,
    pub redis_us: Option<f64>,
    pub postgres_us: Option<f64>,
    pub client_us: f64,
    pub other_us: f64,
    pub total_us: f64,
    pub machine_busy: Option<f64>,
}

/// Ticks a group used between two samples, counting only processes present in both (a backend
/// that ended or started in between has no whole interval to count). `None` for an empty group.
pub fn group_delta(start: &Group, end: &Group) -> Option<u64> {
    if start.is_empty() {
        return None;
    }
    Some(
        start
            .iter()
            .filter_map(|(pid, before)| Some(end.get(pid)?.saturating_sub(*before)))
            .sum(),
    )
}

/// The fields of `/proc/PID/stat` after the command name, which is in parentheses and may itself
/// contain spaces and parentheses; the first returned field is field 3 (the state).
fn fields_after_name(stat: &str) -> Option<Vec<&str>> {
    let after = stat.get(stat.rfind(')')? + 1..)?;
    Some(after.split_whitespace().collect())
}

/// utime + stime (fields 14 and 15) of `/proc/PID/stat`: the process's own CPU, all threads.
pub fn process_ticks(stat: &str) -> Option<u64> {
    let fields = fields_after_name(stat)?;
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// cutime + cstime (fields 16 and 17): CPU of the children it has waited for.
pub fn children_ticks(stat: &str) -> Option<u64> {
    let fields = fields_after_name(stat)?;
    Some(fields.get(13)?.parse::<u64>().ok()? + fields.get(14)?.parse::<u64>().ok()?)
}

/// Busy and idle ticks of the whole machine from `/proc/stat`'s `cpu` line: busy is user, nice,
/// system, irq, softirq and steal; idle is idle and iowait. (guest time is already in user.)
pub fn machine_ticks(proc_stat: &str) -> Option<(u64, u64)> {
    let line = proc_stat.lines().find(|line| line.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|value| value.parse().ok())
        .collect::<Option<_>>()?;
    let at = |index: usize| values.get(index).copied().unwrap_or(0);
    Some((at(0) + at(1) + at(2) + at(5) + at(6) + at(7), at(3) + at(4)))
}

/// A `kB` field of `/proc/PID/status`, such as `VmRSS` or `VmHWM`.
pub fn status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// Reads the ticks of every pid of a group now; a pid that has gone is left out.
pub fn read_group(pids: &[u32]) -> Group {
    pids.iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((*pid, process_ticks(&stat)?))
        })
        .collect()
}

/// `VmRSS`/`VmHWM` of a process now, in KiB.
pub fn memory_kib(pid: u32, field: &str) -> Option<u64> {
    status_kib(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?, field)
}

/// The harness's children ticks and the machine's ticks now.
pub fn read_own_and_machine() -> (u64, u64, u64) {
    let children = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| children_ticks(&stat))
        .unwrap_or(0);
    let (busy, idle) = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|text| machine_ticks(&text))
        .unwrap_or((0, 0));
    (children, busy, idle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real line, with a command name that has a space and a parenthesis in it.
    const STAT: &str = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 1500 0 0 0 \
                        250 120 30 7 20 0 3 0 12345 123456789 900 18446744073709551615";

    #[test]
    fn process_ticks_are_utime_plus_stime_even_with_parentheses_in_the_name() {
        assert_eq!(process_ticks(STAT), Some(370));
        assert_eq!(children_ticks(STAT), Some(37));
    }

    #[test]
    fn a_truncated_stat_line_is_no_figure() {
        assert_eq!(process_ticks("4242 (x) S 1 2 3"), None);
        assert_eq!(process_ticks(""), None);
    }

    #[test]
    fn machine_busy_counts_user_nice_system_irq_softirq_steal_and_idle_counts_iowait() {
        let proc_stat = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\nintr 1 2 3\n";
        assert_eq!(machine_ticks(proc_stat), Some((100 + 5 + 50 + 3 + 2 + 1, 1000 + 20)));
        assert_eq!(machine_ticks("intr 1 2\n"), None);
    }

    #[test]
    fn status_fields_are_read_in_kib() {
        let status = "Name:\tgravity-bff\nVmHWM:\t    7168 kB\nVmRSS:\t    3686 kB\nThreads:\t3\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(3686));
        assert_eq!(status_kib(status, "VmHWM"), Some(7168));
        assert_eq!(status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn a_group_counts_only_processes_present_at_both_ends() {
        let start: Group = [(1, 100), (2, 50), (3, 10)].into();
        let end: Group = [(1, 160), (3, 15), (4, 900)].into();
        assert_eq!(group_delta(&start, &end), Some(65));
        assert_eq!(group_delta(&Group::new(), &end), None);
    }

    #[test]
    fn cpu_per_request_splits_the_machine_and_leaves_the_rest_to_other() {
        let start = CpuSample {
            wall_ms: 0.0,
            service: [(10, 1000)].into(),
            redis: [(20, 500)].into(),
            postgres: Group::new(),
            children: 40,
            machine_busy: 10_000,
            machine_idle: 5_000,
        };
        let end = CpuSample {
            wall_ms: 10_000.0,
            service: [(10, 1400)].into(),
            redis: [(20, 600)].into(),
            postgres: Group::new(),
            children: 440,
            machine_busy: 11_900,
            machine_idle: 5_100,
        };
        let used = CpuUse::between(&start, &end, 100);
        assert_eq!(used.service_ms, Some(4000.0));
        assert_eq!(used.redis_ms, Some(1000.0));
        assert_eq!(used.postgres_ms, None);
        assert_eq!(used.client_ms, 4000.0);
        assert_eq!(used.machine_busy_ms, 19_000.0);
        let per = used.per_request(1_000_000).unwrap();
        assert_eq!(per.service_us, Some(4.0));
        assert_eq!(per.redis_us, Some(1.0));
        assert_eq!(per.postgres_us, None);
        assert_eq!(per.client_us, 4.0);
        assert_eq!(per.other_us, 10.0);
        assert_eq!(per.total_us, 19.0);
        assert_eq!(per.machine_busy, Some(0.95));
        assert_eq!(used.per_request(0), None);
    }
}
