//! The report of one run: the table of scenarios with their ratios, targets and verdicts, the
//! invalidation lag, the physical limits, memory, and CPU per request per process group. It is a
//! pure function of a `Run` (and of an optional baseline `Run`), printed for the terminal and as
//! Markdown for docs/BENCHMARKS.md. `targets` judges, `rows` lays out, `text` formats.

mod rows;
mod targets;
#[cfg(test)]
mod tests;
mod text;

use std::fmt::Write as _;

use crate::results::Run;

use rows::{cpu_rows, table_rows};
pub use targets::{Check, Verdict};
use targets::{global_checks, scenario_checks};
use text::{aligned, markdown_table, milliseconds, thousands};

pub struct Report {
    pub title: String,
    pub notes: Vec<String>,
    pub header: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
    pub lag_rows: Vec<Vec<String>>,
    pub cpu_rows: Vec<Vec<String>>,
    pub summary: Vec<String>,
    pub checks: Vec<Check>,
}

pub(crate) const LAG_HEADER: [&str; 9] = [
    "scenario",
    "writes",
    "lag p50 µs",
    "lag p99 µs",
    "lag max µs",
    "stale reads",
    "latest stale µs",
    "not pre-warmed",
    "unconverged",
];
const CPU_HEADER: [&str; 8] = [
    "scenario",
    "service",
    "redis",
    "postgres",
    "oha",
    "other",
    "total",
    "machine busy",
];

impl Report {
    pub fn build(run: &Run, baseline: Option<&Run>) -> Report {
        let mut header = vec![
            "scenario",
            "req/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "non-2xx",
            "ratio (target)",
            "met",
            "of physical limit",
        ];
        if baseline.is_some() {
            header.push("× before");
        }
        let (rows, lag_rows) = table_rows(run, baseline);
        let mut checks = scenario_checks(run, baseline);
        checks.extend(global_checks(run));
        Report {
            title: title(run),
            notes: notes(run, baseline),
            header,
            rows,
            lag_rows,
            cpu_rows: cpu_rows(run),
            summary: summary_lines(run),
            checks,
        }
    }

    pub fn terminal(&self) -> String {
        let mut lines = vec![self.title.clone()];
        lines.extend(self.notes.iter().cloned());
        lines.push(String::new());
        lines.extend(aligned(&self.header, &self.rows, &[1, 2, 3, 4, 5]));
        if !self.lag_rows.is_empty() {
            lines.push(String::new());
            lines.push("invalidation lag: PATCH through A, then GET through B until it shows the new body".to_owned());
            lines.extend(aligned(&LAG_HEADER, &self.lag_rows, &[1, 2, 3, 4, 5, 6, 7, 8]));
        }
        lines.push(String::new());
        lines.extend(self.summary.iter().cloned());
        if !self.cpu_rows.is_empty() {
            lines.push(String::new());
            lines.push("CPU per request, µs (from /proc; `other` is the rest of the machine):".to_owned());
            lines.extend(aligned(&CPU_HEADER, &self.cpu_rows, &[1, 2, 3, 4, 5, 6, 7]));
        }
        lines.push(String::new());
        lines.push("targets:".to_owned());
        lines.extend(
            self.checks
                .iter()
                .map(|check| format!("  {:5} {}", check.verdict.word(), check_text(check))),
        );
        lines.join("\n")
    }

    pub fn markdown(&self) -> String {
        let mut text = format!("_{}_\n", self.title);
        for note in &self.notes {
            let _ = writeln!(text, "_{}_", note.trim());
        }
        text.push('\n');
        text += &markdown_table(&self.header, &self.rows, &[1, 2, 3, 4, 5]);
        if !self.lag_rows.is_empty() {
            text += "\nInvalidation lag (PATCH through A, GET through B until it shows the new body):\n\n";
            text += &markdown_table(&LAG_HEADER, &self.lag_rows, &[1, 2, 3, 4, 5, 6, 7, 8]);
        }
        text.push('\n');
        for line in &self.summary {
            match line.strip_prefix("  ") {
                Some(item) => {
                    let _ = writeln!(text, "  - {item}");
                }
                None => {
                    let _ = writeln!(text, "- {line}");
                }
            }
        }
        if !self.cpu_rows.is_empty() {
            text += "\nCPU per request, µs (`other` is the rest of the machine):\n\n";
            text += &markdown_table(&CPU_HEADER, &self.cpu_rows, &[1, 2, 3, 4, 5, 6, 7]);
        }
        text += "\nTargets:\n\n";
        for check in &self.checks {
            let _ = writeln!(text, "- {} {}", check.verdict.word(), check_text(check));
        }
        text
    }
}

fn check_text(check: &Check) -> String {
    match &check.verdict {
        Verdict::NotApplicable(reason) => format!("{}: {} ({reason})", check.what, check.value),
        _ => format!("{}: {}", check.what, check.value),
    }
}

fn title(run: &Run) -> String {
    let meta = &run.meta;
    let label = meta
        .label
        .as_ref()
        .map(|label| format!(" ({label})"))
        .unwrap_or_default();
    format!(
        "gravity-bff bench {}{label} · {} · {} cores {} · {:.1} GiB · {} s per scenario at {} connections · {}",
        meta.run_id,
        meta.date,
        meta.nproc,
        meta.cpu,
        meta.mem_total_kib as f64 / 1_048_576.0,
        meta.duration_s,
        meta.connections,
        meta.oha
    )
}

fn notes(run: &Run, baseline: Option<&Run>) -> Vec<String> {
    let meta = &run.meta;
    let mut notes = vec![format!(
        "load average before {}, after {}; binary {} ({}); {}",
        meta.load_before,
        meta.load_after.as_deref().unwrap_or("?"),
        meta.binary.as_deref().unwrap_or("—"),
        meta.git.as_deref().unwrap_or("no git"),
        meta.mode
    )];
    if let Some(baseline) = baseline {
        notes.push(format!(
            "× before: this run's req/s over run {}{} ({})",
            baseline.meta.run_id,
            baseline
                .meta
                .label
                .as_ref()
                .map(|label| format!(", {label}"))
                .unwrap_or_default(),
            baseline.meta.binary.as_deref().unwrap_or("—")
        ));
    }
    notes
}

fn summary_lines(run: &Run) -> Vec<String> {
    let meta = &run.meta;
    let mut lines = Vec::new();
    if !run.limits.is_empty() {
        lines.push("physical limits (same machine, same run, no HTTP in the way):".to_owned());
        for (limit, result) in &run.limits {
            let mut line = format!("  {}: {} per second", limit.label(), thousands(result.per_second));
            let latencies: Vec<String> = [
                ("p50", result.p50_ms),
                ("p99", result.p99_ms),
                ("avg", result.average_ms),
            ]
            .into_iter()
            .filter_map(|(what, value)| Some(format!("{what} {} ms", milliseconds(Some(value?)))))
            .collect();
            if !latencies.is_empty() {
                line += &format!(" ({})", latencies.join(", "));
            }
            line += &match limit {
                crate::scenarios::Limit::RedisGet => format!(", -c {}", meta.connections),
                _ => format!(", -M prepared, {} clients", meta.pg_clients),
            };
            lines.push(line);
        }
    }
    let memory = &meta.memory;
    let mib = |kib: Option<u64>| kib.map_or("—".to_owned(), |kib| format!("{:.1} MiB", kib as f64 / 1024.0));
    lines.push(format!(
        "memory (VmRSS, VmHWM): idle {}, peak {}, after the run {}; cache-off instance peak {}; local-copies instance peak {}; static binary {}",
        mib(memory.idle_rss_kib),
        mib(memory.peak_rss_kib),
        mib(memory.end_rss_kib),
        mib(memory.cold_peak_rss_kib),
        mib(memory.local_peak_rss_kib),
        mib(meta.binary_bytes.map(|bytes| bytes / 1024)),
    ));
    for (instance, hits) in &meta.cache_warm {
        lines.push(format!(
            "hot ids answering X-Cache: HIT after warming ({instance}): {hits}"
        ));
    }
    lines
}
