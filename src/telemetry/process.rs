//! The standard `process_*` metrics, read from `/proc` at scrape time.
//!
//! Names, types and units are the Prometheus client libraries', so dashboards and alerts for any
//! other service work unchanged; `process_open_fds` against `process_max_fds` matters most, as the
//! connection cap comes from the descriptor limit. Without `/proc` (an empty chroot) the figures
//! it cannot read are left out rather than reported as zero.

use crate::telemetry::metrics::render_one;

/// Clock ticks per second in `/proc/*/stat`: USER_HZ, fixed at 100 in Linux's user-space ABI on
/// every architecture (the Prometheus client libraries assume the same).
const TICKS_PER_SECOND: f64 = 100.0;

/// One reading of the process's figures; `None` where `/proc` did not say.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct ProcessStats {
    pub(crate) cpu_seconds: Option<f64>,
    pub(crate) open_fds: Option<u64>,
    pub(crate) max_fds: Option<u64>,
    pub(crate) resident_memory_bytes: Option<u64>,
    pub(crate) virtual_memory_bytes: Option<u64>,
    pub(crate) start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads this process's figures from `/proc/self`.
    pub(crate) fn read() -> ProcessStats {
        let read = |path| std::fs::read_to_string(path).ok();
        let times = read("/proc/self/stat").as_deref().and_then(cpu_and_start_ticks);
        let status = read("/proc/self/status");
        let limits = read("/proc/self/limits");
        let boot_time = read("/proc/stat").as_deref().and_then(boot_time_seconds);
        ProcessStats {
            cpu_seconds: times.map(|(cpu, _)| cpu as f64 / TICKS_PER_SECOND),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|entries| entries.count() as u64),
            max_fds: limits.as_deref().and_then(soft_open_files_limit),
            resident_memory_bytes: status.as_deref().and_then(|text| status_kibibytes(text, "VmRSS:")),
            virtual_memory_bytes: status.as_deref().and_then(|text| status_kibibytes(text, "VmSize:")),
            start_time_seconds: times
                .zip(boot_time)
                .map(|((_, start), boot)| boot as f64 + start as f64 / TICKS_PER_SECOND),
        }
    }

    /// Appends the Prometheus text for every figure that was read.
    pub(crate) fn render(&self, out: &mut String) {
        let count = |figure: Option<u64>| figure.map(|figure| figure as f64);
        #[rustfmt::skip]
        let families = [
            ("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", self.cpu_seconds),
            ("process_open_fds", "gauge", "Number of open file descriptors.", count(self.open_fds)),
            ("process_max_fds", "gauge", "Maximum number of open file descriptors.", count(self.max_fds)),
            ("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", count(self.resident_memory_bytes)),
            ("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", count(self.virtual_memory_bytes)),
            ("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", self.start_time_seconds),
        ];
        for (name, kind, help, figure) in families {
            if let Some(figure) = figure {
                render_one(out, name, kind, help, figure);
            }
        }
    }
}

/// User plus system CPU ticks, and the start time in ticks after boot, from `/proc/self/stat`.
fn cpu_and_start_ticks(stat: &str) -> Option<(u64, u64)> {
    // The command name (field 2) is in parentheses and may hold spaces or parentheses itself, so
    // fields are counted from the last `)`: field 3 (state) is the first after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |number: usize| fields.get(number - 3)?.parse::<u64>().ok();
    let (user, system, start) = (field(14)?, field(15)?, field(22)?);
    Some((user + system, start))
}

/// `btime` from `/proc/stat`: when the machine booted, in seconds since the epoch.
fn boot_time_seconds(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
}

/// The soft limit on open files from `/proc/self/limits` (what `open` is held to); `None` when
/// unlimited.
fn soft_open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// A `kB` figure from `/proc/self/status` (such as `VmRSS:`), in bytes.
fn status_kibibytes(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find_map(|line| line.strip_prefix(key))?;
    let kibibytes: u64 = line.split_whitespace().next()?.parse().ok()?;
    Some(kibibytes * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (gravity (bff) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    250 70 0 0 20 0 9 0 123456 70000000 900 18446744073709551615";
        assert_eq!(cpu_and_start_ticks(stat), Some((320, 123456)));
        assert_eq!(cpu_and_start_ticks("garbage"), None);
    }

    #[test]
    fn limits_boot_time_and_memory_are_read_from_their_lines() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 1048576              files     \n";
        assert_eq!(soft_open_files_limit(limits), Some(1024));
        assert_eq!(
            soft_open_files_limit("Max open files            unlimited            unlimited            files"),
            None
        );
        assert_eq!(
            boot_time_seconds("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000)
        );
        let status = "Name:\tgravity-bff\nVmSize:\t  123456 kB\nVmRSS:\t    3600 kB\n";
        assert_eq!(status_kibibytes(status, "VmRSS:"), Some(3600 * 1024));
        assert_eq!(status_kibibytes(status, "VmSize:"), Some(123_456 * 1024));
    }

    #[test]
    fn this_process_reads_its_own_figures() {
        let stats = ProcessStats::read();
        assert!(stats.open_fds.unwrap() >= 3, "{stats:?}");
        assert!(stats.max_fds.is_none_or(|max| max >= stats.open_fds.unwrap()));
        assert!(stats.resident_memory_bytes.unwrap() > 0);
        assert!(stats.virtual_memory_bytes.unwrap() >= stats.resident_memory_bytes.unwrap());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let started = stats.start_time_seconds.unwrap();
        assert!(started <= now + 1.0 && started > now - 86_400.0, "{started} vs {now}");
    }

    #[test]
    fn figures_that_could_not_be_read_are_left_out() {
        let mut out = String::new();
        ProcessStats {
            open_fds: Some(12),
            ..ProcessStats::default()
        }
        .render(&mut out);
        assert_eq!(
            out,
            "# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds 12\n"
        );
    }
}
